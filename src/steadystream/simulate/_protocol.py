"""The OpenAI Responses API wire format: response objects, stream events, SSE framing.

Pure functions from plain values to JSON-ready dicts and bytes; the server decides when to send
what. The shapes follow the Responses API reference and validate against the ``openai`` SDK's
pydantic models (a test checks that with strict validation on).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

SIMULATED_ERROR_MESSAGE: Final = (
    "The server had an error while processing your request. (simulated)"
)

LIFECYCLE_PRELUDE: Final = 4
"""Events before the first delta: created, in_progress, output_item.added, content_part.added."""
LIFECYCLE_TAIL: Final = 4
"""Events after the last delta: output_text.done, content_part.done, output_item.done, completed."""


@dataclass(frozen=True)
class ResponseMeta:
    """The fixed facts of one response, set at creation."""

    id: str
    item_id: str
    model: str
    created_at: int
    background: bool
    max_output_tokens: int | None
    input_tokens: int
    metadata: dict[str, str]


def dumps(obj: object) -> str:
    """Compact JSON with raw UTF-8 (not ``\\u`` escapes), as the real API sends it.

    Raw UTF-8 matters: with ASCII escapes a frame could never be cut inside a multi-byte
    character, and that is exactly what the split faults must be able to do.
    """
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def sse_frame(event_type: str, data: dict[str, Any]) -> bytes:
    """One SSE frame: ``event: <type>`` and ``data: <json>`` lines and the blank line."""
    return f"event: {event_type}\ndata: {dumps(data)}\n\n".encode()


KEEPALIVE_FRAME: Final = b": keep-alive\n\n"


def output_text(text: str) -> dict[str, Any]:
    """An ``output_text`` content part."""
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def message_item(meta: ResponseMeta, status: str, text: str | None) -> dict[str, Any]:
    """The assistant message output item; ``text=None`` means no content part yet."""
    return {
        "id": meta.item_id,
        "type": "message",
        "status": status,
        "content": [] if text is None else [output_text(text)],
        "role": "assistant",
    }


def usage(meta: ResponseMeta, output_tokens: int) -> dict[str, Any]:
    """Token usage for a finished response."""
    return {
        "input_tokens": meta.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": meta.input_tokens + output_tokens,
    }


def response_object(
    meta: ResponseMeta,
    *,
    status: str,
    output: list[dict[str, Any]],
    error: dict[str, Any] | None = None,
    incomplete_reason: str | None = None,
    usage_: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``response`` object as ``POST``/``GET /v1/responses`` and lifecycle events carry it."""
    return {
        "id": meta.id,
        "object": "response",
        "created_at": meta.created_at,
        "status": status,
        "background": meta.background,
        "error": error,
        "incomplete_details": (
            None if incomplete_reason is None else {"reason": incomplete_reason}
        ),
        "instructions": None,
        "max_output_tokens": meta.max_output_tokens,
        "model": meta.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage_,
        "user": None,
        "metadata": meta.metadata,
    }


def error_body(
    message: str, *, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The JSON body of an HTTP error, as the SDK parses it into ``APIStatusError.body``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


STATUS_ERRORS: Final[dict[int, tuple[str, str | None, str]]] = {
    400: ("invalid_request_error", None, "Invalid request. (simulated)"),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided. (simulated)"),
    403: ("invalid_request_error", None, "You are not allowed to do this. (simulated)"),
    404: ("invalid_request_error", None, "Response not found. (simulated)"),
    408: ("timeout", None, "Request timed out. (simulated)"),
    409: ("invalid_request_error", None, "Conflict. (simulated)"),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again later. (simulated)",
    ),
    500: ("server_error", None, SIMULATED_ERROR_MESSAGE),
    502: ("server_error", None, "Bad gateway. (simulated)"),
    503: ("server_error", None, "The engine is currently overloaded. (simulated)"),
    504: ("server_error", None, "Gateway timeout. (simulated)"),
}


def status_error_body(status: int) -> dict[str, Any]:
    """An OpenAI-shaped error body for a simulated HTTP status."""
    type_, code, message = STATUS_ERRORS.get(
        status,
        ("server_error" if status >= 500 else "invalid_request_error", None, f"HTTP {status}"),
    )
    return error_body(message, type_=type_, code=code)
