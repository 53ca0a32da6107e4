"""The Gemini API wire protocol: ``generateContent`` requests, the SSE chunk stream, errors.

What ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` (and the non-streamed
``:generateContent``; ``v1`` and ``v1alpha`` alike) accepts and answers. The answer's text
comes from the same deterministic generator as the Responses API (:mod:`._textgen`), so a
conversation has one answer whichever protocol asks; faults come from the same plans and are
delivered by the same code (:mod:`._delivery`). Only the wire shapes live here:

* the request: ``contents`` is required (a list of ``{"role", "parts": [{"text"}]}``), and an
  API key (``x-goog-api-key`` header or ``key`` query parameter): without one the answer is a
  403 ``PERMISSION_DENIED``. ``generationConfig.maxOutputTokens`` is the number of pieces to
  generate (fields are read by their camelCase or snake_case name, as Google's parser does).
  The prompt is the text of a single user content with a single text part (so
  ``expected_text("hi")`` is the answer to ``contents="hi"``), else the contents (and
  ``systemInstruction``) as JSON.
* the stream: one ``data: <GenerateContentResponse>`` frame per delta (``candidates[0].content
  .parts[0].text``, ``usageMetadata``, ``modelVersion``, ``responseId``), then a last chunk
  with an empty text part, ``finishReason`` ``STOP`` and the full ``usageMetadata``. There are
  no ``event:`` lines and no end marker: the body simply ends.
* thinking: ``generationConfig.thinkingConfig.includeThoughts`` adds a first chunk with a
  thought-summary part (``"thought": true``).
* terminal faults: ``error_event`` is an ``{"error": {"code": 503, "status": "UNAVAILABLE"}}``
  chunk, ``failed`` one with ``500 INTERNAL``, ``incomplete`` ends with ``finishReason``
  ``MAX_TOKENS``.
* HTTP errors: ``{"error": {"code", "message", "status"}}``; a 429 with a retry-after carries a
  ``google.rpc.RetryInfo`` detail (``retryDelay``) as well as the headers.
* Google's stream has no SSE comments, and the SDK fails on one (it reads any line that is not
  ``data:`` as JSON), so this route sends none: a ``keepalive`` fault is an empty body that ends
  at once (a stream cut before content), and ``heartbeat`` is silence.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from . import _protocol as proto
from ._faults import KIND_ERROR_EVENT, KIND_FAILED, FaultPlan
from ._generation import Generation, resolve_terminal
from ._textgen import deltas, input_tokens

__all__ = [
    "METHOD_GENERATE",
    "METHOD_STREAM",
    "THOUGHT_TEXT",
    "GeminiRequestError",
    "error_body",
    "for_gemini",
    "generate_content",
    "new_content",
    "parse_generate_request",
    "parse_path",
    "prompt_of",
    "response_object",
    "status_error_body",
]

METHOD_STREAM: Final = "streamGenerateContent"
METHOD_GENERATE: Final = "generateContent"
THOUGHT_TEXT: Final = "Thinking it over. (simulated)"
_PRELUDE_THOUGHT: Final = 1
_TAIL: Final = 1
"""Chunks after the last delta: the one carrying ``finishReason``."""

_STATUS_NAMES: Final[dict[int, tuple[str, str]]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument. (simulated)"),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials. (simulated)"),
    403: ("PERMISSION_DENIED", "The caller does not have permission. (simulated)"),
    404: ("NOT_FOUND", "Requested entity was not found. (simulated)"),
    408: ("DEADLINE_EXCEEDED", "Request timed out. (simulated)"),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota). (simulated)"),
    500: ("INTERNAL", "An internal error has occurred. (simulated)"),
    502: ("UNAVAILABLE", "Bad gateway. (simulated)"),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later. (simulated)"),
    504: ("DEADLINE_EXCEEDED", "Deadline exceeded. (simulated)"),
}
_TERMINAL_ERRORS: Final = {KIND_ERROR_EVENT: 503, KIND_FAILED: 500}
_RETRY_INFO: Final = "type.googleapis.com/google.rpc.RetryInfo"
_VERSIONS: Final = frozenset({"v1", "v1beta", "v1alpha"})


class GeminiRequestError(ValueError):
    """The request cannot be answered; ``status`` (400 ``INVALID_ARGUMENT`` unless said) and
    the message say why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """Google's error JSON (HTTP bodies and error chunks)."""
    name, default = _STATUS_NAMES.get(
        status, ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION", f"HTTP {status}")
    )
    return {"error": {"code": status, "message": message or default, "status": name}}


def status_error_body(status: int, retry_after: float | None = None) -> dict[str, Any]:
    """The body of a simulated HTTP error ``status`` (with a ``RetryInfo`` detail when the
    fault asks for a retry-after)."""
    body = error_body(status)
    if retry_after is not None and math.isfinite(retry_after):
        body["error"]["details"] = [{"@type": _RETRY_INFO, "retryDelay": f"{retry_after:g}s"}]
    return body


def parse_path(parts: list[str]) -> tuple[str, str] | None:
    """``(model, method)`` of a ``/{version}/models/{model}:{method}`` path split on ``/``
    (version ``v1``, ``v1beta`` or ``v1alpha``: the SDK's default differs between releases),
    or ``None`` when the path is not one."""
    if len(parts) != 3 or parts[0] not in _VERSIONS or parts[1] != "models":
        return None
    model, sep, method = parts[2].rpartition(":")
    if not sep or not model or method not in (METHOD_STREAM, METHOD_GENERATE):
        return None
    return model, method


def _text_parts(content: Any) -> list[str] | None:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return None
    texts = []
    for part in parts:
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            return None
        texts.append(part["text"])
    return texts


def prompt_of(contents: list[Any], system: Any = None) -> object:
    """What the answer's text is generated from (see the module docstring)."""
    if system is None and len(contents) == 1:
        texts = _text_parts(contents[0])
        if contents[0].get("role", "user") == "user" and texts is not None and len(texts) == 1:
            return texts[0]
    return contents if system is None else {"system": system, "contents": contents}


def parse_generate_request(
    body: Mapping[str, Any], headers: Mapping[str, str], query: Mapping[str, str]
) -> tuple[object, dict[str, Any]]:
    """Validate a ``generateContent`` request: ``(prompt, fields)``; raises
    :class:`GeminiRequestError` naming the problem."""
    if not headers.get("x-goog-api-key") and not query.get("key"):
        raise GeminiRequestError(
            "Method doesn't allow unregistered callers (an API key is required).", 403
        )
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise GeminiRequestError("* GenerateContentRequest.contents: contents is not specified")
    for i, content in enumerate(contents):
        if _text_parts(content) is None:
            raise GeminiRequestError(
                f"* GenerateContentRequest.contents[{i}].parts: each part needs a text "
                "(the simulator answers text only)"
            )
        if content.get("role", "user") not in ("user", "model"):
            raise GeminiRequestError(
                f"* GenerateContentRequest.contents[{i}].role: must be 'user' or 'model'"
            )
    config = _opt(body, "generationConfig", "generation_config") or {}
    if not isinstance(config, dict):
        raise GeminiRequestError("* GenerateContentRequest.generation_config: must be an object")
    tokens = _opt(config, "maxOutputTokens", "max_output_tokens")
    if tokens is not None and (
        not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1
    ):
        raise GeminiRequestError(
            "* GenerateContentRequest.generation_config.max_output_tokens: must be >= 1"
        )
    thinking = _opt(config, "thinkingConfig", "thinking_config")
    thoughts = (
        isinstance(thinking, dict) and _opt(thinking, "includeThoughts", "include_thoughts") is True
    )
    fields = {"tokens": tokens, "thoughts": thoughts}
    system = _opt(body, "systemInstruction", "system_instruction")
    return prompt_of(contents, system), fields


def _opt(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    """A request field by either name: Google's JSON parser accepts both (and the SDK sends
    some nested fields in snake_case)."""
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def for_gemini(plan: FaultPlan) -> FaultPlan:
    """The plan as this route delivers it: no SSE comments (see the module docstring)."""
    if not plan.keepalive and not plan.heartbeat:
        return plan
    end_after = 0 if plan.keepalive else plan.end_after
    return dataclasses.replace(plan, keepalive=0, heartbeat=0.0, end_after=end_after)


def new_content(
    prompt: object,
    model: str,
    plan: FaultPlan,
    *,
    seed: int,
    text_seed: int,
    tokens: int,
    delta_size: int,
    number: int,
    thoughts: bool = False,
) -> Generation:
    """The generation of one Gemini answer (not yet generating)."""
    ident = hashlib.sha256(f"steadystream-gemini:{seed}:{number}".encode()).hexdigest()
    prelude = _PRELUDE_THOUGHT if thoughts else 0
    text_deltas = deltas(prompt, text_seed, tokens, delta_size)
    meta = proto.ResponseMeta(
        id=f"sim{ident[:20]}",
        item_id=f"sim{ident[:20]}",
        model=model,
        created_at=int(time.time()),
        background=False,
        max_output_tokens=None,
        input_tokens=input_tokens(prompt),
        metadata={},
    )
    return Generation(
        meta=meta,
        deltas=text_deltas,
        terminal=plan.terminal,
        terminal_at=resolve_terminal(plan, prelude, len(text_deltas)),
        prelude=prelude,
        tail=_TAIL,
    )


def _frame(data: dict[str, Any]) -> bytes:
    return f"data: {proto.dumps(data)}\r\n\r\n".encode()


def _usage(gen: Generation, final: bool) -> dict[str, Any]:
    prompt = gen.meta.input_tokens
    if not final:
        return {"promptTokenCount": prompt, "totalTokenCount": prompt}
    out = len(gen.text_parts)
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": out,
        "totalTokenCount": prompt + out,
    }


def _chunk(
    gen: Generation, parts: list[dict[str, Any]], finish: str | None = None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": _usage(gen, finish is not None),
        "modelVersion": gen.meta.model,
        "responseId": gen.meta.id,
    }


def response_object(gen: Generation) -> dict[str, Any]:
    """The whole answer (``:generateContent``), once generated without an error."""
    parts: list[dict[str, Any]] = []
    if gen.prelude:
        parts.append({"text": THOUGHT_TEXT, "thought": True})
    parts.append({"text": "".join(gen.text_parts)})
    finish = "MAX_TOKENS" if gen.incomplete_reason else "STOP"
    return _chunk(gen, parts, finish)


def _end(gen: Generation, finish: str) -> None:
    gen.status = "completed" if finish == "STOP" else "incomplete"
    gen.append(_frame(_chunk(gen, [{"text": ""}], finish)))


def _stop_at(gen: Generation, on_fault: Callable[[str], None]) -> bool:
    if not gen.terminal_due(on_fault):
        return False
    status = _TERMINAL_ERRORS.get(gen.terminal or "")
    if status is not None:
        gen.status = "failed"
        body = error_body(status)
        gen.error = {"code": status, "message": body["error"]["message"]}
        gen.append(_frame(body))
    else:
        gen.incomplete_reason = "MAX_TOKENS"
        _end(gen, "MAX_TOKENS")
    return True


async def generate_content(
    gen: Generation,
    *,
    first_token_latency: float,
    token_interval: float,
    on_fault: Callable[[str], None],
) -> None:
    """Append the answer's chunks to ``gen``'s log (see :func:`._generation.generate`, its
    Responses twin: same pacing, same terminal-fault placement)."""
    try:
        gen.status = "in_progress"
        if gen.prelude:
            if _stop_at(gen, on_fault):
                return
            gen.append(_frame(_chunk(gen, [{"text": THOUGHT_TEXT, "thought": True}])))
        if first_token_latency:
            await asyncio.sleep(first_token_latency)
        for i, delta in enumerate(gen.deltas):
            if _stop_at(gen, on_fault):
                return
            if i and token_interval:
                await asyncio.sleep(token_interval)
            elif i % 64 == 63:
                await asyncio.sleep(0)
            gen.text_parts.append(delta)
            gen.append(_frame(_chunk(gen, [{"text": delta}])), is_delta=True)
        if _stop_at(gen, on_fault):
            return
        _end(gen, "STOP")
    except asyncio.CancelledError:
        gen.status = "cancelled"
        raise
    finally:
        gen.finish()
