"""The OpenAI Chat Completions wire protocol: requests, the chunk stream, errors.

What ``POST /v1/chat/completions`` accepts and answers. The answer's text comes from the same
deterministic generator as the Responses API (:mod:`._textgen`) and is paced by the same loop
(:func:`._generation.pace_deltas`); faults come from the same plans and are delivered by the
same code (:mod:`._delivery`). Only the wire shapes live here:

* the request: ``model`` and ``messages`` are required; ``max_completion_tokens`` (or the
  older ``max_tokens``) is the number of pieces to generate, like ``max_output_tokens``. The
  prompt is the content of a single user message (so ``expected_text("hi")`` is the answer to
  ``messages=[{"role": "user", "content": "hi"}]``), else the messages as JSON, as for
  Anthropic Messages. ``n`` must be 1; ``stream_options`` needs ``stream: true``.
* the stream: ``data:``-only SSE frames (no ``event:`` line, as the real API sends them) of
  ``chat.completion.chunk`` objects: one opening chunk (``delta: {role: assistant, content:
  ""}``), one chunk per delta (``delta: {content: ...}``), a closing chunk with an empty delta
  and ``finish_reason`` (``stop``), with ``stream_options: {include_usage: true}`` a usage
  chunk (``choices: []``; every other chunk then carries ``usage: null``), and ``data: [DONE]``.
* terminal faults: ``error_event`` is an ``{"error": {...}}`` chunk of type ``server_error``
  (the openai SDK raises it as an ``APIError``), ``failed`` the same with the code
  ``internal_error``; both end the body without ``[DONE]``. ``incomplete`` ends with
  ``finish_reason: length`` (then the usage chunk and ``[DONE]``).
* HTTP errors: OpenAI's error bodies (:func:`._protocol.status_error_body`).
* without ``stream``: one ``chat.completion`` object once generated (a terminal error fault is
  a 500 then).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from . import _protocol as proto
from ._anthropic import prompt_of
from ._faults import KIND_ERROR_EVENT, KIND_FAILED, FaultPlan
from ._generation import Generation, pace_deltas, resolve_terminal
from ._textgen import DEFAULT_TOKENS, MAX_TOKENS, input_tokens

__all__ = [
    "DONE_FRAME",
    "PRELUDE",
    "TAIL",
    "TAIL_WITH_USAGE",
    "ChatRequest",
    "RequestError",
    "completion_object",
    "generate_chat",
    "new_completion",
    "parse_chat_request",
]

PRELUDE: Final = 1
"""Chunks before the first delta: the opening chunk with the assistant role."""
TAIL: Final = 2
"""Chunks after the last delta: the closing chunk (``finish_reason``), ``[DONE]``."""
TAIL_WITH_USAGE: Final = 3
"""With ``include_usage``: the closing chunk, the usage chunk, ``[DONE]``."""
DONE_FRAME: Final = b"data: [DONE]\n\n"
_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_TERMINAL_CODES: Final = {KIND_ERROR_EVENT: None, KIND_FAILED: "internal_error"}


class RequestError(ValueError):
    """The request cannot be answered (400 ``invalid_request_error``); names the parameter."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ChatRequest:
    """A validated create request."""

    __slots__ = ("include_usage", "model", "prompt", "stream", "tokens")

    def __init__(
        self, prompt: object, model: str, stream: bool, include_usage: bool, tokens: int
    ) -> None:
        self.prompt = prompt
        self.model = model
        self.stream = stream
        self.include_usage = include_usage
        self.tokens = tokens


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(f"'{name}' must be a boolean.", name)
    return value


def parse_chat_request(body: Mapping[str, Any]) -> ChatRequest:
    """Validate a create request (a parsed JSON object); raises :class:`RequestError` naming
    the parameter. The pieces to generate default to :data:`._textgen.DEFAULT_TOKENS`."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("Missing required parameter: 'model'.", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list of messages.", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            raise RequestError(
                f"messages[{i}]: each message needs a 'role' (one of {sorted(_ROLES)}).",
                f"messages[{i}].role",
            )
    stream = _flag(body, "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise RequestError(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
            )
        if not isinstance(options, dict):
            raise RequestError("'stream_options' must be an object.", "stream_options")
        include_usage = _flag(options, "include_usage")
    n = body.get("n")
    if n not in (None, 1):
        raise RequestError("The simulator answers n=1 only.", "n")
    tokens = DEFAULT_TOKENS
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS:
            raise RequestError(f"'{name}' must be an integer from 1 to {MAX_TOKENS}.", name)
        tokens = value
        break
    return ChatRequest(prompt_of(messages), model, stream, include_usage, tokens)


def new_completion(
    request: ChatRequest,
    text_deltas: list[str],
    plan: FaultPlan,
    *,
    seed: int,
    number: int,
) -> Generation:
    """The generation of one completion (not yet generating)."""
    ident = hashlib.sha256(f"steadystream-chat:{seed}:{number}".encode()).hexdigest()
    meta = proto.ResponseMeta(
        id=f"chatcmpl-sim{ident[:26]}",
        item_id=f"fp_sim{ident[26:36]}",  # the system fingerprint
        model=request.model,
        created_at=int(time.time()),
        background=False,
        max_output_tokens=request.tokens,
        input_tokens=input_tokens(request.prompt),
        metadata={},
    )
    return Generation(
        meta=meta,
        deltas=text_deltas,
        terminal=plan.terminal,
        terminal_at=resolve_terminal(plan, PRELUDE, len(text_deltas)),
        prelude=PRELUDE,
        tail=TAIL_WITH_USAGE if request.include_usage else TAIL,
    )


def _usage(gen: Generation) -> dict[str, Any]:
    out = len(gen.text_parts)
    return {
        "prompt_tokens": gen.meta.input_tokens,
        "completion_tokens": out,
        "total_tokens": gen.meta.input_tokens + out,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _includes_usage(gen: Generation) -> bool:
    return gen.tail == TAIL_WITH_USAGE


def _chunk(
    gen: Generation, delta: dict[str, Any], finish_reason: str | None = None
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": gen.meta.id,
        "object": "chat.completion.chunk",
        "created": gen.meta.created_at,
        "model": gen.meta.model,
        "service_tier": "default",
        "system_fingerprint": gen.meta.item_id,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if _includes_usage(gen):
        chunk["usage"] = None
    return chunk


def _append(gen: Generation, data: dict[str, Any], *, is_delta: bool = False) -> None:
    gen.append(f"data: {proto.dumps(data)}\n\n".encode(), is_delta=is_delta)


def _end(gen: Generation, finish_reason: str) -> None:
    _append(gen, _chunk(gen, {}, finish_reason))
    if _includes_usage(gen):
        usage_chunk = {**_chunk(gen, {}), "choices": [], "usage": _usage(gen)}
        _append(gen, usage_chunk)
    gen.status = "completed" if finish_reason == "stop" else "incomplete"
    gen.append(DONE_FRAME)


def _stop_at(gen: Generation, on_fault: Callable[[str], None]) -> bool:
    if not gen.terminal_due(on_fault):
        return False
    if gen.terminal in _TERMINAL_CODES:
        gen.status = "failed"
        gen.error = {
            "code": _TERMINAL_CODES[gen.terminal],
            "message": proto.SIMULATED_ERROR_MESSAGE,
        }
        body = proto.error_body(
            proto.SIMULATED_ERROR_MESSAGE, type_="server_error", code=gen.error["code"]
        )
        _append(gen, body)
    else:
        gen.incomplete_reason = "length"
        _end(gen, "length")
    return True


async def generate_chat(
    gen: Generation,
    *,
    first_token_latency: float,
    token_interval: float,
    on_fault: Callable[[str], None],
) -> None:
    """Append the completion's chunks to ``gen``'s log (see :func:`._generation.generate`,
    its Responses twin: same pacing, same terminal-fault placement)."""
    try:
        gen.status = "in_progress"
        if _stop_at(gen, on_fault):
            return
        _append(gen, _chunk(gen, {"role": "assistant", "content": "", "refusal": None}))
        if await pace_deltas(
            gen,
            lambda delta: _append(gen, _chunk(gen, {"content": delta}), is_delta=True),
            first_token_latency=first_token_latency,
            token_interval=token_interval,
            stop=lambda: _stop_at(gen, on_fault),
        ):
            _end(gen, "stop")
    except asyncio.CancelledError:
        gen.status = "cancelled"
        raise
    finally:
        gen.finish()


def completion_object(gen: Generation) -> dict[str, Any]:
    """The ``chat.completion`` a request without ``stream`` gets (``gen`` generated)."""
    return {
        "id": gen.meta.id,
        "object": "chat.completion",
        "created": gen.meta.created_at,
        "model": gen.meta.model,
        "service_tier": "default",
        "system_fingerprint": gen.meta.item_id,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "".join(gen.text_parts),
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "length" if gen.incomplete_reason else "stop",
            }
        ],
        "usage": _usage(gen),
    }
