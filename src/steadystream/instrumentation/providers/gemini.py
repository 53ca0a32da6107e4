"""The Gemini wire format: ``GenerateContentResponse`` chunks of ``generate_content_stream``
(``google-genai`` SDK objects), their JSON dicts, and raw ``streamGenerateContent?alt=sse``.

A Gemini stream has no event types: every item is a whole ``GenerateContentResponse``. Reading
one (the first candidate; the SDK's snake_case fields and the wire's camelCase alike):

* the text of ``candidates[0].content.parts[]`` is content; a part marked ``thought`` (a thought
  summary) is not, nor is a ``function_call`` or inline data part. A chunk with no content
  text and no finish reason is lifecycle (it proves the stream alive without being a token).
* ``finish_reason`` ends the answer: ``STOP`` is a clean end (:data:`~.base.END`); any other
  (``MAX_TOKENS``, ``SAFETY``, ``RECITATION``, ...) a legitimate but truncated end, read like
  the Responses API's incomplete response (``response_incomplete``). ``prompt_feedback`` with a
  ``block_reason`` and no candidate (the prompt itself was refused) reads the same way.
* ``{"error": {"code": 503, "message": ..., "status": "UNAVAILABLE"}}``, Google's error shape,
  is an in-band error (``upstream_error_event``) carrying ``code`` as the HTTP status it stands
  for, so the retry policy retries it like that status. (The SDK raises such a chunk as an
  ``APIError`` on the 200 response; :mod:`.failures` reads it through :func:`error_status`.)
* ``usage_metadata`` and ``response_id`` are read by :func:`usage` and :func:`response_id`.

One reading per item: a chunk that carries text *and* its finish reason (the usual last chunk
of the real API) is content. So the shells of passive ``monitor.wrap`` cannot tell a stream cut
cleanly after such a chunk from a finished one; the resilient
:func:`steadystream.instrumentation.gemini.generate_content_stream` reads the finish reason of
every chunk itself (:func:`finish_reason`) and treats an end without one as a cut.
"""

from __future__ import annotations

from typing import Any, Final

from ... import conventions as c
from .base import (
    CONTENT,
    END,
    ERROR,
    KEEPALIVE,
    LIFECYCLE,
    MISS,
    BaseFormat,
    FastPath,
    Reading,
    ResponseMeta,
    attr,
    get,
    text_fast_path,
    with_field,
)

__all__ = [
    "FINISH_STOP",
    "GEMINI",
    "GeminiFormat",
    "error_status",
    "finish_reason",
    "is_final",
    "response_id",
    "usage",
]

#: The finish reason of an answer that ended normally.
FINISH_STOP: Final = "STOP"

_LIFECYCLE: Final = Reading(LIFECYCLE)
_KEEPALIVE: Final = Reading(KEEPALIVE)
_END: Final = Reading(END)
_INCOMPLETE: Final = Reading(ERROR, error_class=c.ERROR_CLASS_RESPONSE_INCOMPLETE)


def _field(obj: Any, snake: str, camel: str) -> Any:
    """A field of an SDK object (``snake``) or a wire dict (``camel``; the SDK's own dicts use
    snake_case too)."""
    if isinstance(obj, dict):
        value = obj.get(camel)
        return obj.get(snake) if value is None else value
    return attr(obj, snake)


def _candidates(item: Any) -> Any:
    return item.get("candidates") if isinstance(item, dict) else attr(item, "candidates")


def _is_chunk(item: Any) -> bool:
    """A ``GenerateContentResponse``: it has candidates, usage or prompt feedback."""
    if isinstance(item, dict):
        return (
            "candidates" in item
            or "usageMetadata" in item
            or "usage_metadata" in item
            or "promptFeedback" in item
            or "prompt_feedback" in item
        )
    return (
        isinstance(attr(item, "candidates"), list)
        or attr(item, "usage_metadata") is not None
        or attr(item, "prompt_feedback") is not None
    )


def _first(item: Any) -> Any:
    candidates = _candidates(item)
    if isinstance(candidates, list) and candidates:
        return candidates[0]
    return None


def _text(candidate: Any) -> str:
    """The answer text of a candidate: its parts' text, thought parts excluded."""
    content = get(candidate, "content")
    parts = get(content, "parts") if content is not None else None
    if not parts:
        return ""
    if len(parts) == 1:
        part = parts[0]
        text = get(part, "text")
        return text if isinstance(text, str) and not get(part, "thought") else ""
    out = []
    for part in parts:
        text = get(part, "text")
        if isinstance(text, str) and not get(part, "thought"):
            out.append(text)
    return "".join(out)


def _reason_name(value: Any) -> str | None:
    """A finish or block reason as its name (the SDK gives an enum, the wire a string)."""
    if value is None:
        return None
    name = getattr(value, "value", value)
    return name if isinstance(name, str) and name else None


def finish_reason(item: Any) -> str | None:
    """The first candidate's ``finish_reason`` (``STOP``, ``MAX_TOKENS``, ``SAFETY``...), or
    ``None`` while the answer goes on (or for an item that is not a Gemini chunk)."""
    candidate = _first(item)
    if candidate is None:
        return None
    return _reason_name(_field(candidate, "finish_reason", "finishReason"))


def _block_reason(item: Any) -> str | None:
    feedback = _field(item, "prompt_feedback", "promptFeedback")
    if feedback is None:
        return None
    return _reason_name(_field(feedback, "block_reason", "blockReason"))


def is_final(item: Any) -> bool:
    """Whether ``item`` ends the answer: a finish reason, or a refused prompt
    (``prompt_feedback.block_reason``)."""
    if not _is_chunk(item):
        return False
    return finish_reason(item) is not None or (
        _first(item) is None and _block_reason(item) is not None
    )


def usage(item: Any) -> tuple[int | None, int | None]:
    """``(input_tokens, output_tokens)`` a chunk's ``usage_metadata`` reports: the prompt's
    tokens, and the candidates' plus the thoughts' (both billed as output)."""
    meta = _field(item, "usage_metadata", "usageMetadata") if _is_chunk(item) else None
    if meta is None:
        return None, None
    prompt = _field(meta, "prompt_token_count", "promptTokenCount")
    out = _field(meta, "candidates_token_count", "candidatesTokenCount")
    thoughts = _field(meta, "thoughts_token_count", "thoughtsTokenCount")
    i = prompt if isinstance(prompt, int) else None
    o = out if isinstance(out, int) else None
    if isinstance(thoughts, int):
        o = (o or 0) + thoughts
    return i, o


def response_id(item: Any) -> str | None:
    """The chunk's ``response_id`` (the same on every chunk of one answer), when it has one."""
    if not _is_chunk(item):
        return None
    rid = _field(item, "response_id", "responseId")
    return rid if isinstance(rid, str) and rid else None


def _google_error(item: Any) -> Any:
    """The ``error`` object of Google's error shape (an int ``code`` and a ``status`` name),
    else ``None`` (OpenAI's ``{"error": ...}`` has neither)."""
    if not isinstance(item, dict):
        return None
    err = item.get("error")
    if not isinstance(err, dict):
        return None
    code = err.get("code")
    if isinstance(code, int) and not isinstance(code, bool) and isinstance(err.get("status"), str):
        return err
    return None


def error_status(body: Any) -> int | None:
    """The HTTP status a Google error body (``{"error": {"code": ...}}``) stands for."""
    err = _google_error(body)
    return err["code"] if err is not None else None


def _meta(item: Any, reason: str | None) -> ResponseMeta | None:
    """What a chunk says about the answer as a whole: ``usage_metadata`` (:func:`usage`), the
    finish reason, and the model that answered (``model_version``); None when it says
    nothing. Read off the fast path only: content chunks without a finish reason never
    carry a final count."""
    i, o = usage(item)
    model = _field(item, "model_version", "modelVersion")
    model = model if isinstance(model, str) and model else None
    if i is None and o is None and reason is None and model is None:
        return None
    return ResponseMeta(
        input_tokens=i,
        output_tokens=o,
        finish_reasons=(reason,) if reason else (),
        response_model=model,
    )


def _read_chunk(item: Any) -> Reading:
    candidate = _first(item)
    if candidate is None:
        if _block_reason(item) is None:
            return _LIFECYCLE
        meta = _meta(item, _block_reason(item))
        return (
            _INCOMPLETE
            if meta is None
            else Reading(_INCOMPLETE.kind, error_class=_INCOMPLETE.error_class, meta=meta)
        )
    text = _text(candidate)
    reason = _reason_name(_field(candidate, "finish_reason", "finishReason"))
    meta = _meta(item, reason)
    if text:
        return Reading(CONTENT, text, response_id=response_id(item), meta=meta)
    if reason is None:
        return _LIFECYCLE if meta is None else Reading(LIFECYCLE, meta=meta)
    end = _END if reason == FINISH_STOP else _INCOMPLETE
    return end if meta is None else Reading(end.kind, error_class=end.error_class, meta=meta)


def _dict_text(core: Any, item: dict[str, Any]) -> str | None:
    """The text of a parsed chunk in the everyday shape: one candidate without a finish reason,
    one non-thought text part, the response id the core has (or none); ``None`` for any
    other chunk (:data:`.base.DeltaText`)."""
    candidates = item.get("candidates")
    if type(candidates) is not list or len(candidates) != 1:
        return None
    candidate = candidates[0]
    if type(candidate) is not dict:
        return None
    if candidate.get("finishReason") is not None or candidate.get("finish_reason") is not None:
        return None
    rid = item.get("responseId") or item.get("response_id")
    if rid and rid != core.response_id:
        return None  # the general reading records the response id when it changes
    content = candidate.get("content")
    parts = content.get("parts") if type(content) is dict else None
    if type(parts) is not list or len(parts) != 1:
        return None
    part = parts[0]
    if type(part) is not dict or part.get("thought"):
        return None
    text = part.get("text")
    return text if type(text) is str and text else None


def _object_text(core: Any, item: Any) -> str | None:
    """:func:`_dict_text` for an SDK chunk."""
    # The item's own fields come from its instance __dict__ (see .base.attr); the nested
    # candidate, content and part are read as plain attributes, every one a declared field of
    # the SDK's models (cheaper than their __dict__, and never pydantic's __getattr__).
    fields = getattr(item, "__dict__", None)
    if fields is None:
        return None
    candidates = fields.get("candidates")
    if type(candidates) is not list or len(candidates) != 1:
        return None
    rid = fields.get("response_id")
    if rid and rid != core.response_id:
        return None  # the general reading records the response id when it changes
    try:
        candidate = candidates[0]
        if candidate.finish_reason is not None:
            return None
        parts = candidate.content.parts
        if type(parts) is not list or len(parts) != 1:
            return None
        part = parts[0]
        if part.thought:
            return None
        text = part.text
    except AttributeError:
        return None
    return text if type(text) is str and text else None


_fast_dict = text_fast_path(_dict_text)
_fast_object = text_fast_path(_object_text)


def _with_text(item: Any, text: str) -> Any:
    """A copy of a one-candidate content chunk whose text is ``text`` (the text in its first
    non-thought text part; other text parts emptied), or :data:`MISS`."""
    candidate = _first(item)
    content = get(candidate, "content") if candidate is not None else None
    parts = get(content, "parts") if content is not None else None
    if not parts:
        return MISS
    new_parts = []
    placed = False
    for part in parts:
        value = get(part, "text")
        if isinstance(value, str) and not get(part, "thought"):
            value, placed = (text, True) if not placed else ("", placed)
            part = (
                {**part, "text": value}
                if isinstance(part, dict)
                else with_field(part, "text", value)
            )
        new_parts.append(part)
    if not placed:
        return MISS
    if isinstance(item, dict):
        new_content = {**content, "parts": new_parts}
        new_candidate = {**candidate, "content": new_content}
        return {**item, "candidates": [new_candidate, *item["candidates"][1:]]}
    new_content = with_field(content, "parts", new_parts)
    new_candidate = with_field(candidate, "content", new_content)
    return with_field(item, "candidates", [new_candidate, *attr(item, "candidates")[1:]])


class GeminiFormat(BaseFormat):
    """:class:`~.base.WireFormat` of Gemini ``GenerateContentResponse`` chunks (see the module
    docstring)."""

    name = "gemini"

    def read(self, item: Any) -> Reading | None:
        if _google_error(item) is not None:
            return Reading(
                ERROR, error_class=c.ERROR_CLASS_UPSTREAM_EVENT, status=error_status(item)
            )
        if not _is_chunk(item):
            return None
        return _read_chunk(item)

    def fast_path(self, item: Any) -> FastPath | None:
        if _google_error(item) is not None or not _is_chunk(item):
            return None
        return _fast_dict if type(item) is dict else _fast_object

    def replace_text(self, item: Any, old: str, new: str) -> Any:
        if not _is_chunk(item) or not _text(_first(item)):
            return MISS
        return _with_text(item, new)

    def merge_key(self, item: Any) -> tuple[Any, ...] | None:
        if not _is_chunk(item):
            return None
        candidate = _first(item)
        if candidate is None or len(_candidates(item)) != 1 or not _text(candidate):
            return None
        if _field(candidate, "finish_reason", "finishReason") is not None:
            return None  # the last chunk carries the end: never merged away
        return ("text",)

    def with_text(self, item: Any, text: str) -> Any:
        return _with_text(item, text)

    def describe_error(self, item: Any) -> str | None:
        err = _google_error(item)
        if err is None:
            return None
        parts = ["error", f"[{err['code']} {err['status']}]"]
        message = err.get("message")
        if message:
            parts.append(str(message))
        return " ".join(parts)


#: The Gemini format, registered by :mod:`.registry`.
GEMINI: Final = GeminiFormat()
