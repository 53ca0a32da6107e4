"""Synthetic Responses API streams built from the openai SDK's own event classes.

The events are instances of the SDK's classes built from the JSON the API sends, so the wrapper
sees exactly the objects it sees in production: ``ResponseTextDeltaEvent`` with a
``sequence_number``, between the ``response.created`` prelude and the ``response.completed``
tail. Lifecycle events go through ``construct_type`` over the ``ResponseStreamEvent`` union as
the SDK does; the deltas through ``ResponseTextDeltaEvent.model_validate``, which yields the
same class with the same fields 20x faster (200k events in about 2 s instead of 40 s).

The text mixes ASCII with 2-, 3- and 4-byte UTF-8, ZWJ sequences and combining marks, so the
hashing and UTF-8 accounting work on real multi-byte content.
"""

from __future__ import annotations

from typing import Any

from steadystream.simulate._protocol import (
    ResponseMeta,
    message_item,
    output_text,
    response_object,
    usage,
)

# A fixed vocabulary: ASCII words, Cyrillic (2 bytes), CJK (3 bytes), emoji (4 bytes), a ZWJ
# sequence and a combining accent. Deterministic, no random module, no hashing per event.
VOCAB = (
    " stream",
    " token",
    " latency",
    " the",
    " Привет",
    "流式",
    "传输",
    " 🚀",
    " 👩\u200d💻",
    " cafe\u0301",
    " and",
    ",",
    " مرحبا",
    " of",
    ".",
    " naïve",
    " resume",
)

RESPONSE_ID = "resp_bench0000000000000000000000"
ITEM_ID = "msg_bench0000000000000000000000"
MODEL = "gpt-4.1"


def delta_texts(n: int) -> list[str]:
    """``n`` deltas of one or two vocabulary pieces each (a stride that is coprime to the
    vocabulary size, so every piece and pair appears)."""
    v = len(VOCAB)
    return [VOCAB[(i * 7) % v] + (VOCAB[(i * 3) % v] if i % 3 == 0 else "") for i in range(n)]


# The response objects come from the simulator's protocol module, so the benchmark stream has
# exactly the shape the simulator (and the real API) sends.
_META = ResponseMeta(
    id=RESPONSE_ID,
    item_id=ITEM_ID,
    model=MODEL,
    created_at=1_700_000_000,
    background=False,
    max_output_tokens=None,
    input_tokens=8,
    metadata={},
)


def _response(status: str, text: str | None, output_tokens: int = 0) -> dict[str, Any]:
    output = [] if text is None else [message_item(_META, "completed", text)]
    return response_object(
        _META,
        status=status,
        output=output,
        usage_=None if output_tokens == 0 else usage(_META, output_tokens),
    )


def raw_events(n_deltas: int) -> list[dict[str, Any]]:
    """The JSON payloads of one complete stream: 4 lifecycle events, ``n_deltas`` text deltas,
    4 closing events (``n_deltas + 8`` events, ``sequence_number`` 0, 1, 2, ...)."""
    texts = delta_texts(n_deltas)
    full = "".join(texts)
    part_empty = output_text("")
    part_full = output_text(full)
    item_progress = message_item(_META, "in_progress", None)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response("in_progress", None)},
        {"type": "response.in_progress", "response": _response("in_progress", None)},
        {"type": "response.output_item.added", "output_index": 0, "item": item_progress},
        {
            "type": "response.content_part.added",
            "item_id": ITEM_ID,
            "output_index": 0,
            "content_index": 0,
            "part": part_empty,
        },
    ]
    for text in texts:
        events.append(
            {
                "type": "response.output_text.delta",
                "item_id": ITEM_ID,
                "output_index": 0,
                "content_index": 0,
                "delta": text,
                "logprobs": [],
            }
        )
    done_item = message_item(_META, "completed", full)
    events += [
        {
            "type": "response.output_text.done",
            "item_id": ITEM_ID,
            "output_index": 0,
            "content_index": 0,
            "text": full,
            "logprobs": [],
        },
        {
            "type": "response.content_part.done",
            "item_id": ITEM_ID,
            "output_index": 0,
            "content_index": 0,
            "part": part_full,
        },
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
        {"type": "response.completed", "response": _response("completed", full, n_deltas)},
    ]
    for seq, event in enumerate(events):
        event["sequence_number"] = seq
    return events


def sdk_events(n_deltas: int) -> list[Any]:
    """The same stream as the openai SDK yields it: ``ResponseStreamEvent`` objects."""
    from openai._models import construct_type
    from openai.types.responses import ResponseStreamEvent, ResponseTextDeltaEvent

    delta = "response.output_text.delta"
    return [
        ResponseTextDeltaEvent.model_validate(e)
        if e["type"] == delta
        else construct_type(type_=ResponseStreamEvent, value=e)
        for e in raw_events(n_deltas)
    ]


def content_bytes(n_deltas: int) -> int:
    """UTF-8 bytes of the stream's content: what ``stream_bytes_total`` must count."""
    return sum(len(t.encode()) for t in delta_texts(n_deltas))


def chat_chunks(n_content: int) -> list[Any]:
    """One streamed Chat Completion as the SDK yields it: ``ChatCompletionChunk`` objects (a
    role chunk, ``n_content`` content chunks with the same multi-byte text, a finish chunk and
    a usage chunk)."""
    from openai.types.chat import ChatCompletionChunk

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": MODEL,
            "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    payloads = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    payloads += [chunk({"content": t}, None) for t in delta_texts(n_content)]
    payloads.append(chunk({}, "stop"))
    usage = dict(chunk({}, None), choices=[])
    usage["usage"] = {
        "prompt_tokens": 8,
        "completion_tokens": n_content,
        "total_tokens": 8 + n_content,
    }
    payloads.append(usage)
    return [ChatCompletionChunk.model_validate(p) for p in payloads]


def anthropic_events(n_deltas: int) -> list[Any]:
    """One Anthropic Messages stream as the anthropic SDK yields it: ``message_start``,
    ``content_block_start``, ``n_deltas`` ``content_block_delta`` (``text_delta``) events with
    the same multi-byte text, ``content_block_stop``, ``message_delta``, ``message_stop``."""
    from anthropic.types import (
        RawContentBlockDeltaEvent,
        RawContentBlockStartEvent,
        RawContentBlockStopEvent,
        RawMessageDeltaEvent,
        RawMessageStartEvent,
        RawMessageStopEvent,
    )

    message = {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "claude-bench",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 8, "output_tokens": 1},
    }
    events: list[Any] = [
        RawMessageStartEvent.model_validate({"type": "message_start", "message": message}),
        RawContentBlockStartEvent.model_validate(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            }
        ),
    ]
    events += [
        RawContentBlockDeltaEvent.model_validate(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
        )
        for t in delta_texts(n_deltas)
    ]
    events += [
        RawContentBlockStopEvent.model_validate({"type": "content_block_stop", "index": 0}),
        RawMessageDeltaEvent.model_validate(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": n_deltas},
            }
        ),
        RawMessageStopEvent.model_validate({"type": "message_stop"}),
    ]
    return events
