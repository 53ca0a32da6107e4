"""The shells' per-item loops read a text delta's fields themselves, or take its text from the
format's text function, and run the core's steady content step inline
(``SyncStreamWrapper._items``, ``AsyncStreamWrapper._aitems``), one call fewer per chunk than
the format's fast path and ``StreamCore.on_content``. Whatever the items and timings, a stream
read that way must leave exactly what the calls leave: every metric, the spans, the checkpoint
and the core's state, through timed flushes, checkpoints, lifecycle events, keep-alives, items
without a field, timeouts and a consumer that stops early; in every built-in format
(Responses, Chat Completions, Anthropic Messages and Gemini: the SDKs' objects, and Anthropic's
and Gemini's parsed SSE data)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream.instrumentation.core import shell
from steadystream.instrumentation.core.machine import StreamCore
from steadystream.instrumentation.providers import openai_responses
from steadystream.instrumentation.providers.base import delta_fields, delta_text
from steadystream.instrumentation.providers.registry import fast_path


def _sdk_event(payload: dict[str, Any]) -> Any:
    from openai._models import construct_type
    from openai.types.responses import ResponseStreamEvent

    return construct_type(type_=ResponseStreamEvent, value=payload)


_IDS = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
_RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1_700_000_000,
    "model": "gpt-test-2025",
    "output": [],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
}


def _item(kind: str, n: int) -> Any:
    """One event of kind ``kind`` (its text varies with ``n``), as the openai SDK builds it."""
    if kind == "delta":
        payload = {"type": "response.output_text.delta", **_IDS, "delta": f"d{n}é", "logprobs": []}
    elif kind == "empty":  # a keep-alive: the fast path's general reading
        payload = {"type": "response.output_text.delta", **_IDS, "delta": "", "logprobs": []}
    elif kind == "refusal":  # content of another event type
        payload = {"type": "response.refusal.delta", **_IDS, "delta": f"r{n}"}
    elif kind == "lifecycle":
        payload = {
            "type": "response.in_progress",
            "response": {**_RESPONSE, "status": "in_progress"},
        }
    else:  # "bare": a delta built without its fields (construct keeps what it is given)
        from openai.types.responses import ResponseTextDeltaEvent

        item = ResponseTextDeltaEvent.model_construct(type="response.output_text.delta")
        item.__dict__["delta"] = f"b{n}"  # text, but no sequence_number
        return item
    return _sdk_event({**payload, "sequence_number": n})


def _chat_chunk(kind: str, n: int) -> Any:
    """One Chat Completions chunk of kind ``kind``, as the openai SDK builds it."""
    from openai._models import construct_type
    from openai.types.chat import ChatCompletionChunk

    delta: dict[str, Any] = {"content": f"c{n}é"}
    choice: dict[str, Any] = {"index": 0, "finish_reason": None}
    chunk: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-test-2025",
    }
    if kind == "empty":  # no text: the fast path's general reading
        delta = {"content": ""}
    elif kind == "role":
        delta = {"role": "assistant", "content": None}
    elif kind == "refusal":
        delta = {"refusal": f"r{n}"}
    elif kind == "tool":
        delta = {
            "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"arguments": "{}"}}
            ]
        }
    elif kind == "reasoning":  # an extra field some servers send beside the content
        delta = {"content": f"c{n}", "reasoning_content": f"t{n}"}
    elif kind == "finish":  # the last text with its finish reason, in one chunk
        choice["finish_reason"] = "stop"
    elif kind == "other-id":
        chunk["id"] = "chatcmpl-2"
    elif kind == "usage":
        chunk["usage"] = {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": 3 + n}
    item = construct_type(
        type_=ChatCompletionChunk,
        value={**chunk, "choices": [] if kind == "usage" else [{**choice, "delta": delta}]},
    )
    if kind == "bare":  # text, but a field of the everyday shape missing
        del item.choices[0].delta.__dict__["refusal"]
    return item


def _chat_stream(kinds: list[str], end: bool) -> list[Any]:
    items = [_chat_chunk("role", 0)]
    items += [_chat_chunk(kind, n + 1) for n, kind in enumerate(kinds)]
    if end:
        items += [_chat_chunk("finish", len(kinds) + 1), _chat_chunk("usage", len(kinds) + 2)]
    return items


def _stream(kinds: list[str], end: bool) -> list[Any]:
    items = [
        _sdk_event({"type": "response.created", "response": {**_RESPONSE, "status": "queued"}})
    ]
    items += [_item(kind, n + 1) for n, kind in enumerate(kinds)]
    if end:
        items.append(
            _sdk_event(
                {
                    "type": "response.completed",
                    "response": {**_RESPONSE, "status": "completed"},
                    "sequence_number": len(kinds) + 1,
                }
            )
        )
    return items


def _anthropic_event(kind: str, n: int, as_dict: bool = False) -> Any:
    """One Anthropic Messages event of kind ``kind``, as the anthropic SDK builds it, or as
    the parsed JSON of its ``data:`` line (``as_dict``)."""
    from anthropic._models import construct_type
    from anthropic.types import RawMessageStreamEvent

    delta: dict[str, Any] = {"type": "text_delta", "text": f"a{n}é"}
    payload: dict[str, Any] = {"type": "content_block_delta", "index": 0, "delta": delta}
    if kind == "empty":  # no text: a keep-alive on the general reading
        delta["text"] = ""
    elif kind == "thinking":  # content of another delta type
        payload["delta"] = {"type": "thinking_delta", "thinking": f"t{n}"}
    elif kind == "json":
        payload["delta"] = {"type": "input_json_delta", "partial_json": f'{{"k": {n}'}
    elif kind == "ping":
        payload = {"type": "ping"}
    elif kind == "start":
        payload = {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-test",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 3, "output_tokens": 1},
            },
        }
    elif kind == "block":
        block = {"type": "text", "text": ""}
        payload = {"type": "content_block_start", "index": 0, "content_block": block}
    elif kind == "block-stop":
        payload = {"type": "content_block_stop", "index": 0}
    elif kind == "message-delta":
        payload = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": n},
        }
    elif kind == "stop":
        payload = {"type": "message_stop"}
    if as_dict:
        return {k: v for k, v in payload.items() if kind != "bare" or k != "delta"}
    item = construct_type(type_=RawMessageStreamEvent, value=payload)
    if kind == "bare":  # a text delta without its delta
        del item.__dict__["delta"]
    return item


def _anthropic_stream(kinds: list[str], end: bool, as_dict: bool = False) -> list[Any]:
    items = [_anthropic_event("start", 0, as_dict), _anthropic_event("block", 0, as_dict)]
    items += [_anthropic_event(kind, n + 1, as_dict) for n, kind in enumerate(kinds)]
    if end:
        items += [_anthropic_event(kind, len(kinds) + 1, as_dict) for kind in _ANTHROPIC_END]
    return items


_ANTHROPIC_END = ("block-stop", "message-delta", "stop")


def _gemini_chunk(kind: str, n: int, as_dict: bool = False) -> Any:
    """One Gemini chunk of kind ``kind``, as ``streamGenerateContent?alt=sse`` sends it
    (``as_dict``), or as the google-genai SDK builds a ``GenerateContentResponse`` from it."""
    from google.genai import types

    parts: list[dict[str, Any]] = [{"text": f"g{n}é"}]
    candidate: dict[str, Any] = {"index": 0}
    chunk: dict[str, Any] = {"responseId": "resp-g1", "modelVersion": "gemini-test"}
    chunk["usageMetadata"] = {"promptTokenCount": 3, "candidatesTokenCount": n}
    if kind == "empty":
        parts = [{"text": ""}]
    elif kind == "thought":  # the model's thinking: not answer content
        parts = [{"text": f"t{n}", "thought": True}]
    elif kind == "two-parts":
        parts = [{"text": f"p{n}"}, {"text": f"q{n}"}]
    elif kind == "finish":  # the last text with its finish reason, in one chunk
        candidate["finishReason"] = "STOP"
    elif kind == "no-id":
        del chunk["responseId"]
    elif kind == "other-id":
        chunk["responseId"] = "resp-g2"
    if kind != "bare":  # "bare": a candidate without content
        candidate["content"] = {"parts": parts, "role": "model"}
    chunk["candidates"] = [] if kind == "usage" else [candidate]  # "usage": no candidate
    if as_dict:
        return chunk
    return types.GenerateContentResponse._from_response(response=chunk, kwargs={})


def _gemini_stream(kinds: list[str], end: bool, as_dict: bool = False) -> list[Any]:
    items = [_gemini_chunk(kind, n + 1, as_dict) for n, kind in enumerate(["content", *kinds])]
    if end:
        items.append(_gemini_chunk("finish", len(kinds) + 2, as_dict))
    return items


class _Clock:
    """A scripted clock: each call advances by the next step (cycled), in seconds."""

    def __init__(self, steps: list[float]) -> None:
        self._steps = steps
        self._i = 0
        self.now = 100.0

    def __call__(self) -> float:
        self.now += self._steps[self._i % len(self._steps)]
        self._i += 1
        return self.now


# Steps between clock reads: mostly milliseconds, sometimes none, sometimes past the timed
# flush (1 s), sometimes past every timeout of the default spec (first token 3 s, idle 8 s).
_STEP = st.sampled_from([0.0, 0.001, 0.002, 0.005, 0.0])
_STEPS = st.lists(
    st.one_of(_STEP, _STEP, _STEP, _STEP, _STEP, st.sampled_from([1.2, 2.5, 60.0])),
    min_size=1,
    max_size=40,
)
_RESPONSES_KIND_NAMES = ("delta", "empty", "refusal", "lifecycle", "bare")
#: Every kind of Chat chunk _chat_chunk builds.
_CHAT_KIND_NAMES = (
    "content", "empty", "role", "refusal", "tool", "reasoning", "finish", "bare", "other-id",
    "usage",
)  # fmt: skip
_ANTHROPIC_KIND_NAMES = ("text", "empty", "thinking", "json", "ping", "block", "block-stop", "bare")
_GEMINI_KIND_NAMES = (
    "content", "empty", "thought", "two-parts", "finish", "no-id", "other-id", "bare", "usage",
)  # fmt: skip


def _mix(names: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    """Up to 120 kinds, mostly the first (plain text), with every other kind in the mix."""
    return st.lists(st.sampled_from([names[0]] * 15 + list(names)), max_size=120)


#: Each wire format's streams: (id, builder, its kinds of item, the first its plain text).
_FORMATS = [
    ("responses", _stream, _RESPONSES_KIND_NAMES),
    ("chat", _chat_stream, _CHAT_KIND_NAMES),
    ("anthropic", _anthropic_stream, _ANTHROPIC_KIND_NAMES),
    ("anthropic-dict", functools.partial(_anthropic_stream, as_dict=True), _ANTHROPIC_KIND_NAMES),
    ("gemini", _gemini_stream, _GEMINI_KIND_NAMES),
    ("gemini-dict", functools.partial(_gemini_stream, as_dict=True), _GEMINI_KIND_NAMES),
]


def _snapshot(core: StreamCore) -> dict[str, Any]:
    """The core's own state: every slot holding a plain value."""
    out = {}
    for cls in type(core).__mro__:
        for name in getattr(cls, "__slots__", ()):
            value = getattr(core, name, None)
            if isinstance(value, int | float | str | tuple | list | type(None)):
                out[name] = value
    return out


def _run(items: list[Any], steps: list[float], stop_after: int | None, is_async: bool) -> Any:
    """Stream ``items`` through a fresh monitor; returns what it left behind."""
    registry = CollectorRegistry()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    monitor = ss.StreamMonitor(
        ss.default_spec("svc"),
        registry=registry,
        tracer_provider=tracer_provider,
        clock=_Clock(steps),
        watchdog=False,  # deadlines are found by the items' own times, never by a thread
    )
    got: list[Any] = []
    failure = None

    def consume(item: Any) -> bool:
        got.append(item)
        return stop_after is not None and len(got) >= stop_after

    if is_async:

        async def upstream() -> Any:
            for item in items:
                yield item

        wrappers: list[Any] = []

        async def read() -> None:
            wrapper = monitor.wrap(upstream(), model="m", provider="openai")
            wrappers.append(wrapper)
            try:
                async for item in wrapper:
                    if consume(item):
                        break
            finally:
                await wrapper.aclose()

        try:
            asyncio.run(read())
        except ss.StreamTimeout as exc:
            failure = type(exc).__name__
        wrapper = wrappers[0]
    else:
        wrapper = monitor.wrap(iter(items), model="m", provider="openai")
        try:
            with wrapper:
                for item in wrapper:
                    if consume(item):
                        break
        except ss.StreamTimeout as exc:
            failure = type(exc).__name__
    samples = sorted(
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    )
    finished = [
        (
            span.name,
            dict(span.attributes or {}),
            [(e.name, dict(e.attributes or {})) for e in span.events],
        )
        for span in spans.get_finished_spans()
    ]
    checkpoint = wrapper.checkpoint
    state = _snapshot(wrapper.core), checkpoint and dataclasses.astuple(checkpoint)
    return got, failure, samples, finished, state


def _both(items: list[Any], steps: list[float], stop_after: int | None, is_async: bool) -> None:
    """The same stream read by the loops as they are, then with every item through the fast
    path's and the core's calls (no format declaring its deltas' fields or text): the same
    results."""
    inline = _run(items, steps, stop_after, is_async)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(shell, "delta_fields", lambda fast: None)
        m.setattr(shell, "delta_text", lambda fast: None)
        called = _run(items, steps, stop_after, is_async)
    assert inline == called


def test_the_sdks_delta_class_declares_its_fields() -> None:
    """The loops' own reading applies to the openai SDK's Responses deltas (else this test
    file would compare the calls with themselves)."""
    fields = delta_fields(fast_path(_item("delta", 1)))
    assert fields == ("type", openai_responses.TEXT_DELTA, "delta", "sequence_number")


_anthropic_dict = functools.partial(_anthropic_event, as_dict=True)
_gemini_dict = functools.partial(_gemini_chunk, as_dict=True)


@pytest.mark.parametrize(
    ("make", "names", "response_id", "taken"),
    [
        # A plain chunk missing a field is still plain ("bare": read field by field).
        (_chat_chunk, _CHAT_KIND_NAMES, "chatcmpl-1", {"content", "bare"}),
        (_anthropic_event, _ANTHROPIC_KIND_NAMES, None, {"text"}),
        (_anthropic_dict, _ANTHROPIC_KIND_NAMES, None, {"text"}),
        (_gemini_chunk, _GEMINI_KIND_NAMES, "resp-g1", {"content", "no-id"}),
        (_gemini_dict, _GEMINI_KIND_NAMES, "resp-g1", {"content", "no-id"}),
    ],
    ids=["chat", "anthropic", "anthropic-dict", "gemini", "gemini-dict"],
)
def test_a_nested_text_format_declares_how_to_take_its_text(
    make: Any, names: tuple[str, ...], response_id: str | None, taken: set[str]
) -> None:
    """The loops take the text of Chat chunks and Anthropic and Gemini text deltas
    themselves, and only of plain content items of the response the core has read."""
    text_of = delta_text(fast_path(make(names[0], 1)))
    assert text_of is not None
    monitor = ss.StreamMonitor(ss.default_spec("svc"), registry=CollectorRegistry())
    with monitor.wrap(iter([]), model="m", provider="openai") as wrapper:
        core = wrapper.core
        if response_id is not None:
            assert text_of(core, make(names[0], 1)) is None  # no response id read yet
            core.response_id = response_id  # as the general reading records it
        got = {kind: text_of(core, make(kind, 1)) for kind in names}
    text = got[names[0]]
    assert text is not None and text.endswith("1é")
    assert got == {kind: text if kind in taken else None for kind in names}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("build", "names"), [f[1:] for f in _FORMATS], ids=[f[0] for f in _FORMATS]
)
@settings(max_examples=120, deadline=None)
@given(data=st.data(), steps=_STEPS, end=st.booleans(), stop=st.none() | st.integers(1, 80))
def test_the_loops_leave_what_the_calls_leave(
    is_async: bool,
    build: Any,
    names: tuple[str, ...],
    data: st.DataObject,
    steps: list[float],
    end: bool,
    stop: int | None,
) -> None:
    _both(build(data.draw(_mix(names), label="kinds"), end), steps, stop, is_async)


def test_a_long_stream_with_flushes_and_checkpoints_reads_the_same() -> None:
    """2,500 deltas at a millisecond each: two 1,024-chunk flushes, the timed flush every
    second, a checkpoint every 16 chunks, on both loops, in every format."""
    for _, build, names in _FORMATS:
        items = build([names[0]] * 2500, True)
        for is_async in (False, True):
            _both(items, [0.0005], None, is_async)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("stop", [2, 17, 40])
def test_a_consumer_that_stops_after_a_delta_leaves_what_the_calls_leave(
    is_async: bool, stop: int
) -> None:
    """The consumer leaves the loop right after a delta read inline: the time since it came is
    the consumer's, not a wait's, as with the calls."""
    for _, build, names in _FORMATS:
        _both(build([names[0]] * 50, True), [0.001, 0.003, 0.002], stop, is_async)
