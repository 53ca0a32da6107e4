"""The Anthropic Messages wire protocol: requests, the SSE event sequence, errors.

What ``POST /v1/messages`` accepts and answers. The answer's text comes from the same
deterministic generator as the Responses API (:mod:`._textgen`), so a conversation has one
answer whichever protocol asks; faults come from the same plans and are delivered by the same
code (:mod:`._delivery`). Only the wire shapes live here:

* the request: ``model``, ``max_tokens`` (pieces to generate, like ``max_output_tokens``) and
  ``messages`` are required; the ``anthropic-version`` header too. The prompt is the content of
  a single user message (so ``expected_text("hi")`` is the answer to
  ``messages=[{"role": "user", "content": "hi"}]``), else the messages (and ``system``) as JSON.
* a last, assistant, message is a prefill: the answer continues it. The simulator continues only
  its own answers, so a prefill that is not a prefix of this conversation's answer is refused
  (400), as is one ending in whitespace (the real API's rule).
* the stream: ``message_start``, ``content_block_start``, ``ping``, ``content_block_delta`` x N
  (``text_delta``), ``content_block_stop``, ``message_delta`` (``stop_reason`` ``end_turn``,
  ``usage``), ``message_stop``.
* extended thinking: a request with ``thinking: {"type": "enabled", ...}`` gets a ``thinking``
  block first (index 0: one ``thinking_delta``, one ``signature_delta``), then the text block
  at index 1.
* terminal faults: ``error_event`` is an ``error`` event with ``overloaded_error``, ``failed``
  one with ``api_error``, ``incomplete`` ends with ``stop_reason`` ``max_tokens``.
* HTTP errors: ``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``
  (429 ``rate_limit_error``, 529 ``overloaded_error``, 5xx ``api_error``, ...).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from . import _protocol as proto
from ._faults import KIND_ERROR_EVENT, KIND_FAILED, FaultPlan
from ._generation import Generation, pace_deltas, resolve_terminal
from ._textgen import input_tokens, pieces

__all__ = [
    "HEADER_VERSION",
    "PRELUDE",
    "TAIL",
    "THINKING_EVENTS",
    "THINKING_TEXT",
    "PrefillError",
    "continuation_deltas",
    "error_body",
    "generate_message",
    "message_object",
    "new_message",
    "parse_messages_request",
    "prompt_of",
    "status_error_body",
]

HEADER_VERSION: Final = "anthropic-version"
PRELUDE: Final = 3
"""Events before the first delta: message_start, content_block_start, ping."""
TAIL: Final = 3
"""Events after the last delta: content_block_stop, message_delta, message_stop."""

THINKING_EVENTS: Final = 4
"""Events of the thinking block: its start, a thinking delta, a signature delta, its stop."""
THINKING_TEXT: Final = "Let me think about this. (simulated)"

_STATUS_ERRORS: Final[dict[int, tuple[str, str]]] = {
    400: ("invalid_request_error", "Invalid request. (simulated)"),
    401: ("authentication_error", "invalid x-api-key (simulated)"),
    403: ("permission_error", "Your API key does not have permission. (simulated)"),
    404: ("not_found_error", "Not found. (simulated)"),
    413: ("request_too_large", "Request exceeds the maximum allowed size. (simulated)"),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit. (simulated)"),
    500: ("api_error", "Internal server error (simulated)"),
    504: ("timeout_error", "Request timed out. (simulated)"),
    529: ("overloaded_error", "Overloaded (simulated)"),
}
_TERMINAL_ERRORS: Final = {
    KIND_ERROR_EVENT: ("overloaded_error", "Overloaded (simulated)"),
    KIND_FAILED: ("api_error", "Internal server error (simulated)"),
}


class PrefillError(ValueError):
    """The request cannot be answered (400 ``invalid_request_error``); the message says why."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def error_body(type_: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    """Anthropic's error JSON (HTTP bodies and the ``error`` event's data)."""
    body: dict[str, Any] = {"type": "error", "error": {"type": type_, "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return body


def status_error_body(status: int) -> dict[str, Any]:
    """The body of a simulated HTTP error ``status``."""
    type_, message = _STATUS_ERRORS.get(
        status, ("api_error" if status >= 500 else "invalid_request_error", f"HTTP {status}")
    )
    return error_body(type_, message)


def _frame(data: dict[str, Any]) -> bytes:
    return proto.sse_frame(data["type"], data)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "text":
                raise PrefillError("the simulator continues text prefills only", "messages")
            parts.append(str(block.get("text", "")))
        return "".join(parts)
    raise PrefillError("message content must be a string or a list of blocks", "messages")


def prompt_of(messages: list[Any], system: Any = None) -> object:
    """What the answer's text is generated from (see the module docstring)."""
    if system is None and len(messages) == 1:
        only = messages[0]
        if only.get("role") == "user" and isinstance(only.get("content"), str):
            return only["content"]
    return messages if system is None else {"system": system, "messages": messages}


def parse_messages_request(
    body: Mapping[str, Any], headers: Mapping[str, str]
) -> tuple[object, str, dict[str, Any]]:
    """Validate a Messages request: ``(prompt, prefill, fields)``; raises :class:`PrefillError`
    (a 400) naming the problem."""
    if HEADER_VERSION not in headers:
        raise PrefillError(f"{HEADER_VERSION}: header is required")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise PrefillError("model: Field required", "model")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise PrefillError("max_tokens: Field required (an integer >= 1)", "max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise PrefillError("messages: at least one message is required", "messages")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise PrefillError("messages: each message needs role 'user' or 'assistant'")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise PrefillError("stream: must be a boolean", "stream")
    prefill = ""
    convo = messages
    if messages[-1]["role"] == "assistant":
        prefill = _text_of(messages[-1].get("content"))
        if prefill != prefill.rstrip():
            raise PrefillError("final assistant content cannot end with trailing whitespace")
        convo = messages[:-1]
    thinking = body.get("thinking")
    enabled = isinstance(thinking, dict) and thinking.get("type") == "enabled"
    fields = {"model": model, "stream": stream, "thinking": enabled}
    return prompt_of(convo, body.get("system")), prefill, fields


def continuation_deltas(
    prompt: object, prefill: str, seed: int, tokens: int, delta_size: int
) -> list[str]:
    """The deltas that continue ``prefill`` in the answer to ``prompt`` (all of it when the
    prefill is empty); raises :class:`PrefillError` when the prefill is not a prefix of it."""
    ps = pieces(prompt, seed, tokens)
    if prefill and not "".join(ps).startswith(prefill):
        raise PrefillError(
            "the assistant prefill is not a prefix of this conversation's answer "
            "(the simulator continues only its own answers)",
            "messages",
        )
    rest: list[str] = []
    pos = 0
    for p in ps:
        end = pos + len(p)
        if end > len(prefill):
            rest.append(p[max(0, len(prefill) - pos) :])
        pos = end
    return ["".join(rest[i : i + delta_size]) for i in range(0, len(rest), delta_size)]


def new_message(
    prompt: object,
    text_deltas: list[str],
    model: str,
    plan: FaultPlan,
    *,
    seed: int,
    number: int,
    thinking: bool = False,
) -> Generation:
    """The generation of one Messages answer (not yet generating); ``thinking``: with a
    thinking block before the text (:data:`THINKING_EVENTS` more events before the deltas)."""
    ident = hashlib.sha256(f"steadystream-message:{seed}:{number}".encode()).hexdigest()
    prelude = PRELUDE + (THINKING_EVENTS if thinking else 0)
    meta = proto.ResponseMeta(
        id=f"msg_sim_{ident[:24]}",
        item_id=f"msg_sim_{ident[:24]}",
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
        tail=TAIL,
    )


def message_object(gen: Generation, stop_reason: str | None) -> dict[str, Any]:
    """The ``message`` (``message_start`` carries it empty; a non-streamed answer whole)."""
    text = "".join(gen.text_parts)
    return {
        "id": gen.meta.id,
        "type": "message",
        "role": "assistant",
        "model": gen.meta.model,
        "content": _content(gen, text) if gen.done else [],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": gen.meta.input_tokens,
            "output_tokens": len(gen.text_parts) if gen.done else 1,
        },
    }


def _content(gen: Generation, text: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if gen.prelude > PRELUDE:
        thinking = {"type": "thinking", "thinking": THINKING_TEXT, "signature": "c2ltdWxhdGVk"}
        blocks.insert(0, thinking)
    return blocks


def _end(gen: Generation, stop_reason: str) -> None:
    index = 1 if gen.prelude > PRELUDE else 0  # the text block follows a thinking block
    gen.append(_frame({"type": "content_block_stop", "index": index}))
    gen.append(
        _frame(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": len(gen.text_parts)},
            }
        )
    )
    gen.status = "completed" if stop_reason == "end_turn" else "incomplete"
    gen.append(_frame({"type": "message_stop"}))


def _stop_at(gen: Generation, on_fault: Callable[[str], None]) -> bool:
    if not gen.terminal_due(on_fault):
        return False
    error = _TERMINAL_ERRORS.get(gen.terminal or "")
    if error is not None:
        gen.status = "failed"
        gen.error = {"code": error[0], "message": error[1]}
        gen.append(_frame(error_body(*error)))
    else:
        gen.incomplete_reason = "max_tokens"
        _end(gen, "max_tokens")
    return True


def _thinking_block() -> list[dict[str, Any]]:
    start = {"type": "thinking", "thinking": "", "signature": ""}
    return [
        {"type": "content_block_start", "index": 0, "content_block": start},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": THINKING_TEXT},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "c2ltdWxhdGVk"},
        },
        {"type": "content_block_stop", "index": 0},
    ]


async def generate_message(
    gen: Generation,
    *,
    first_token_latency: float,
    token_interval: float,
    on_fault: Callable[[str], None],
) -> None:
    """Append the Messages stream's events to ``gen``'s log (see :func:`._generation.generate`,
    its Responses twin: the same pacing, :func:`._generation.pace_deltas`, and the same
    terminal-fault placement)."""
    try:
        gen.status = "in_progress"
        if _stop_at(gen, on_fault):
            return
        gen.append(_frame({"type": "message_start", "message": message_object(gen, None)}))
        index = 0
        if gen.prelude > PRELUDE:
            for data in _thinking_block():
                if _stop_at(gen, on_fault):
                    return
                gen.append(_frame(data))
            index = 1
        if _stop_at(gen, on_fault):
            return
        gen.append(
            _frame(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                }
            )
        )
        if _stop_at(gen, on_fault):
            return
        gen.append(_frame({"type": "ping"}))

        def emit_delta(delta: str) -> None:
            data = {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": delta},
            }
            gen.append(_frame(data), is_delta=True)

        if await pace_deltas(
            gen,
            emit_delta,
            first_token_latency=first_token_latency,
            token_interval=token_interval,
            stop=lambda: _stop_at(gen, on_fault),
        ):
            _end(gen, "end_turn")
    except asyncio.CancelledError:
        gen.status = "cancelled"
        raise
    finally:
        gen.finish()
