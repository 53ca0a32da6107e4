"""The OpenAI Chat Completions wire format (chunks as SDK objects or dicts).

* ``choices[i].delta`` with ``content``, ``refusal``, ``reasoning_content`` or
  ``tool_calls[j].function.arguments`` is content; a chunk without any is lifecycle. ``id`` is
  the response id.
* A dict with an ``error`` member (and no ``choices``) is an in-band error; one of type
  ``server_error`` stands for a 500 (:data:`ERROR_STATUS`), so the resilient path retries it
  before content like the status. The openai SDK raises such a chunk as an ``APIError``
  (without a status) instead of yielding it: :func:`in_band_error` turns that exception back
  into the chunk.
* Over SSE, a ``data: [DONE]`` line ends the stream. The SDK swallows it, so what ends a
  stream its consumer sees is the chunk with a ``finish_reason`` (:func:`finishes`), followed,
  when the request set ``stream_options: {"include_usage": true}``, by the usage chunk
  (:func:`reports_usage`).

Usage, finish reasons and the response model (:class:`~.base.ResponseMeta`) are read from
the chunks that carry no content (the opening role chunk, the closing chunk, the
``include_usage`` chunk: ``usage.prompt_tokens`` / ``completion_tokens``) and from the rare
content chunk that also carries a ``finish_reason`` (vLLM puts the last text and the reason in
one chunk). The chunk's ``model`` is the response model.

There is no resume by sequence number (Chat Completions has none); a replayed chunk can still
be trimmed at a checkpoint offset.

The fast path: a chunk in its everyday shape (one choice whose delta carries only ``content``,
read from the pydantic objects' ``__dict__``) goes straight to ``core.on_content``.
"""

from __future__ import annotations

from typing import Any, Final

from ... import conventions as c
from .base import (
    CONTENT,
    END,
    ERROR,
    LIFECYCLE,
    MISS,
    BaseFormat,
    FastPath,
    Reading,
    ResponseMeta,
    attr,
    declare_delta_text,
    deep_copy,
    get,
    int_field,
    str_field,
    text_fast_path,
)

__all__ = [
    "CHAT",
    "DONE",
    "ERROR_STATUS",
    "ChatFormat",
    "carries_content",
    "finishes",
    "in_band_error",
    "reports_usage",
]

#: The SSE ``data`` line that ends a Chat Completions stream.
DONE: Final = "[DONE]"
_TEXT_FIELDS: Final = ("content", "refusal", "reasoning_content")
_END = Reading(END)
#: The HTTP status an in-band error chunk stands for, by its ``error.type``.
ERROR_STATUS: Final[dict[str, int]] = {"server_error": 500}


def _chunk_meta(item: Any, reasons: list[str]) -> ResponseMeta:
    u = get(item, "usage")
    return ResponseMeta(
        input_tokens=int_field(u, "prompt_tokens"),
        output_tokens=int_field(u, "completion_tokens"),
        finish_reasons=tuple(reasons),
        response_model=str_field(item, "model"),
    )


def _read_chunk(item: Any, choices: Any) -> Reading:
    rid = get(item, "id")
    rid = rid if isinstance(rid, str) else None
    parts: list[str] = []
    reasons: list[str] = []
    for choice in choices or ():
        reason = get(choice, "finish_reason")
        if isinstance(reason, str) and reason:
            reasons.append(reason)
        delta = get(choice, "delta")
        if delta is None:
            continue
        for key in _TEXT_FIELDS:
            val = get(delta, key)
            if isinstance(val, str) and val:
                parts.append(val)
        for call in get(delta, "tool_calls") or ():
            fn = get(call, "function")
            args = get(fn, "arguments") if fn is not None else None
            if isinstance(args, str) and args:
                parts.append(args)
    if parts:
        text = parts[0] if len(parts) == 1 else "".join(parts)
        if reasons:  # the last text and the finish reason in one chunk
            return Reading(CONTENT, text, None, rid, meta=_chunk_meta(item, reasons))
        return Reading(CONTENT, text, None, rid)
    return Reading(LIFECYCLE, "", None, rid, meta=_chunk_meta(item, reasons))


def _object_text(core: Any, item: Any) -> str | None:
    """:func:`_plain_text` for an object that may lack any field (read with ``.get``)."""
    fields = getattr(item, "__dict__", None)
    if fields is None:
        return None
    choices = fields.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return None
    choice = getattr(choices[0], "__dict__", None)
    delta = choice.get("delta") if choice is not None else None
    d = getattr(delta, "__dict__", None)
    if d is None:
        return None
    text = d.get("content")
    if type(text) is not str or not text:
        return None
    if d.get("refusal") or d.get("tool_calls") or d.get("reasoning_content"):
        return None
    if choice.get("finish_reason") is not None:
        return None  # the last text with its finish reason: the general path reads both
    extra = getattr(delta, "__pydantic_extra__", None)
    if extra and extra.get("reasoning_content"):
        return None
    # The id is the response id, which the general path records when it changes.
    rid = fields.get("id")
    if rid is not None and rid != core.response_id:
        return None
    return text


def _plain_text(core: Any, item: Any) -> str | None:
    """The text of a chunk in the everyday shape: one choice, no finish reason, a delta that
    carries only ``content``, the response id the core has; ``None`` for any other chunk
    (:data:`.base.DeltaText`; the shells' loops call it for every chunk of the class). Read
    by subscript from a pydantic chunk's ``__dict__``; a chunk missing a field is read by
    :func:`_object_text`, which decides."""
    try:
        fields = item.__dict__
        choices = fields["choices"]
        if type(choices) is not list or len(choices) != 1:
            return None
        choice = choices[0].__dict__
        delta = choice["delta"]
        d = delta.__dict__
        text = d["content"]
        if (
            type(text) is not str
            or not text
            or d["refusal"]
            or d["tool_calls"]
            or choice["finish_reason"] is not None
        ):
            return None
        extra = delta.__pydantic_extra__
        rid = fields["id"]
    except (AttributeError, KeyError):
        return _object_text(core, item)
    if (
        d.get("reasoning_content")
        or (extra and extra.get("reasoning_content"))
        # The id is the response id, which the general reading records when it changes.
        or (rid is not None and rid != core.response_id)
    ):
        return None
    return text  # type: ignore[no-any-return]


_fast_object = text_fast_path(_object_text)


def _fast_model(core: Any, item: Any, t: float) -> Any:
    # Chunks of a class whose instances keep their fields in __dict__ (the SDK's pydantic
    # models). A chunk _plain_text does not take (the role, the finish reason, the usage, tool
    # calls...) is read here as read() reads it: a format asked before this one that read it
    # would have kept the class off this fast path (registry.fast_path). The core is called
    # outside _plain_text: an error inside it must not be taken for a field missing.
    text = _plain_text(core, item)
    if text is not None:
        return core.on_content(text, None, t)
    choices = getattr(item, "choices", None)
    if choices is None:
        return MISS
    return core.on_reading(_read_chunk(item, choices), t)


# Its plain chunks' text, as the shells take it without calling it (see DeltaText).
declare_delta_text(_fast_model, _plain_text)


def _replace_in_choices(choices: Any, old: str, new: str, *, dict_like: bool) -> bool:
    """Trim the one content field of a single-choice chunk whose value is ``old``."""
    for choice in choices or ():
        delta = choice.get("delta") if dict_like else getattr(choice, "delta", None)
        if delta is None:
            continue
        for key in _TEXT_FIELDS:
            if (delta.get(key) if dict_like else getattr(delta, key, None)) == old:
                if dict_like:
                    delta[key] = new
                else:
                    setattr(delta, key, new)
                return True
    return False


class ChatFormat(BaseFormat):
    """:class:`~.base.WireFormat` of OpenAI Chat Completions (see the module docstring)."""

    name = "openai_chat"

    def read(self, item: Any) -> Reading | None:
        if isinstance(item, dict):
            if "choices" in item:
                return _read_chunk(item, item.get("choices"))
            if "error" in item:
                err = item["error"]
                kind = get(err, "type") if isinstance(err, dict) else None
                status = ERROR_STATUS.get(kind) if isinstance(kind, str) else None
                return Reading(ERROR, error_class=c.ERROR_CLASS_UPSTREAM_EVENT, status=status)
            return None
        choices = attr(item, "choices")
        return _read_chunk(item, choices) if choices is not None else None

    def read_sse_data(self, data: str) -> Reading | None:
        return _END if data.startswith(DONE) else None

    def fast_path(self, item: Any) -> FastPath | None:
        if type(item) is dict:
            return None
        if attr(item, "choices") is None:
            return None
        fields = getattr(item, "__dict__", None)
        return _fast_model if isinstance(fields, dict) and "choices" in fields else _fast_object

    def replace_text(self, item: Any, old: str, new: str) -> Any:
        if isinstance(item, dict):
            if "choices" not in item:
                return MISS
            out = deep_copy(item)
            return out if _replace_in_choices(out["choices"], old, new, dict_like=True) else MISS
        if attr(item, "choices") is None:
            return MISS
        out = deep_copy(item)
        return out if _replace_in_choices(out.choices, old, new, dict_like=False) else MISS

    def describe_error(self, item: Any) -> str | None:
        err = item.get("error") if isinstance(item, dict) and "choices" not in item else None
        if err is None:
            return None
        code, message = get(err, "code"), get(err, "message")
        parts = ["error"]
        if code:
            parts.append(f"[{code}]")
        if message:
            parts.append(str(message))
        return " ".join(parts)


def carries_content(item: Any) -> bool:
    """Whether chunk ``item`` has content (text, a refusal, reasoning, tool-call arguments)."""
    choices = get(item, "choices")
    return choices is not None and _read_chunk(item, choices).kind == CONTENT


def finishes(item: Any) -> int:
    """How many choices chunk ``item`` closes (those carrying a ``finish_reason``; a chunk
    may carry the last text too)."""
    fields = getattr(item, "__dict__", None)
    if fields is not None:
        # Per chunk on the resilient path: an SDK chunk with one choice, two plain reads.
        choices = fields.get("choices")
        if type(choices) is list and len(choices) == 1:
            choice = getattr(choices[0], "__dict__", None)
            if choice is not None and "finish_reason" in choice:
                return 0 if choice["finish_reason"] is None else 1
    choices = get(item, "choices") or ()
    return sum(get(choice, "finish_reason") is not None for choice in choices)


def reports_usage(item: Any) -> bool:
    """Whether chunk ``item`` carries the token usage (``include_usage``'s last chunk)."""
    return get(item, "usage") is not None


def in_band_error(exc: BaseException) -> dict[str, Any] | None:
    """The ``{"error": ...}`` chunk the openai SDK raised as ``exc`` (an ``APIError`` with the
    chunk's error object as ``body`` and no HTTP status), or ``None`` for any other error."""
    body = getattr(exc, "body", None)
    if getattr(exc, "status_code", None) is not None or not isinstance(body, dict):
        return None
    if not isinstance(body.get("message"), str) or "choices" in body:
        return None
    return {"error": body}


#: The Chat Completions format, registered by :mod:`.registry`.
CHAT: Final = ChatFormat()
