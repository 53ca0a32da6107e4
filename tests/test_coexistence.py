"""Beside other GenAI instrumentation: ``monitor.wrap`` around a stream that
opentelemetry-instrumentation-openai-v2 or OpenLLMetry (opentelemetry-instrumentation-openai)
already wrapped, with the real instrumentation active, the real openai SDK and the simulator.

Both wrap the SDK stream in an object that defines ``__iter__`` and ``__aiter__`` whatever it
wraps. The wrapper must be read the way the SDK stream is (a ``for`` loop over a sync stream),
and one call must stay one CLIENT span: theirs, with the stream span as its INTERNAL child.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetry
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIv2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.trace import SpanKind

from anthropic_support import delta, sha
from steadystream import conventions as c
from steadystream.instrumentation.core.shell import (
    AsyncStreamWrapper,
    EitherStreamWrapper,
    SyncStreamWrapper,
)
from steadystream.simulate import Upstream, expected_text
from test_anthropic_resilient import without_gauges
from test_chat_compatible import passive_deltas, text_of
from test_chat_resilient import MESSAGES, MODEL, TOKENS, Telemetry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import _sdk_patches

EXPECTED = expected_text("hi", tokens=TOKENS)
INSTRUMENTATIONS = {"openai-v2": OpenAIv2, "openllmetry": OpenLLMetry}


@pytest.fixture(params=sorted(INSTRUMENTATIONS))
def instrumented(request: pytest.FixtureRequest) -> Iterator[Telemetry]:
    """A monitor whose tracer provider the other instrumentation also writes to, with that
    instrumentation active for the test. Neither removes all of its patches of the openai
    SDK on ``uninstrument()``, so the SDK's classes are put back as they were."""
    tel = Telemetry()
    before = _sdk_patches.openai_attributes()
    instrumentor = INSTRUMENTATIONS[request.param]()
    instrumentor.instrument(tracer_provider=tel.tracer_provider, meter_provider=MeterProvider())
    try:
        yield tel
    finally:
        instrumentor.uninstrument()
        _sdk_patches.restore(before)
        assert _sdk_patches.openai_attributes().items() >= before.items()


def client_spans(tel: Telemetry) -> list[Any]:
    return [s for s in tel.spans.get_finished_spans() if s.kind is SpanKind.CLIENT]


def assert_one_call_one_client_span(tel: Telemetry) -> None:
    """Theirs is the call's CLIENT span; ours is its INTERNAL child, ended once."""
    (call,) = client_spans(tel)
    (ours,) = tel.stream_spans()
    assert ours.kind is SpanKind.INTERNAL
    assert ours.parent is not None
    assert ours.parent.span_id == call.context.span_id
    assert ours.attributes[c.ATTR_OUTCOME] == c.OUTCOME_OK


def test_sync_for_loop_over_an_instrumented_chat_stream(
    instrumented: Telemetry, upstream: Upstream
) -> None:
    tel = instrumented
    client = openai.OpenAI(base_url=upstream.base_url, api_key="test", max_retries=0)
    before = tel.snapshot()
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=TOKENS, stream=True
    )
    assert hasattr(stream, "__aiter__") and hasattr(stream, "__iter__")  # their wrapper
    wrapped = tel.monitor.wrap(stream, model=MODEL, provider="openai")
    assert isinstance(wrapped, SyncStreamWrapper)
    chunks = [chunk for chunk in wrapped]
    assert sha(text_of(chunks)) == sha(EXPECTED)
    assert without_gauges(delta(before, tel.snapshot())) == passive_deltas()
    assert_one_call_one_client_span(tel)


async def test_async_for_loop_over_an_instrumented_chat_stream(
    instrumented: Telemetry, aupstream: Upstream
) -> None:
    tel = instrumented
    client = openai.AsyncOpenAI(base_url=aupstream.base_url, api_key="test", max_retries=0)
    before = tel.snapshot()
    stream = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=TOKENS, stream=True
    )
    wrapped = tel.monitor.wrap(stream, model=MODEL, provider="openai")
    assert isinstance(wrapped, AsyncStreamWrapper)
    chunks = [chunk async for chunk in wrapped]
    assert sha(text_of(chunks)) == sha(EXPECTED)
    assert without_gauges(delta(before, tel.snapshot())) == passive_deltas()
    assert_one_call_one_client_span(tel)


def test_without_other_instrumentation_the_stream_span_is_the_client_span(
    upstream: Upstream,
) -> None:
    tel = Telemetry()
    client = openai.OpenAI(base_url=upstream.base_url, api_key="test", max_retries=0)
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=TOKENS, stream=True
    )
    list(tel.monitor.wrap(stream, model=MODEL, provider="openai"))
    (ours,) = tel.stream_spans()
    assert ours.kind is SpanKind.CLIENT
    assert client_spans(tel) == [ours]


@pytest.mark.parametrize("name", sorted(INSTRUMENTATIONS))
def test_a_switched_off_instrumentation_leaves_the_sdk_as_shipped(
    name: str, upstream: Upstream
) -> None:
    """After ``uninstrument()`` and the restore, neither API makes a span of theirs, so the
    rows ``bench_e2e.py`` measures without them run on the SDK as shipped."""
    tel = Telemetry()
    client = openai.OpenAI(base_url=upstream.base_url, api_key="test", max_retries=0)

    def read_both() -> None:
        list(client.responses.create(model=MODEL, input="hi", stream=True))
        list(
            client.chat.completions.create(
                model=MODEL, messages=MESSAGES, max_tokens=TOKENS, stream=True
            )
        )

    before = _sdk_patches.openai_attributes()
    instrumentor = INSTRUMENTATIONS[name]()
    instrumentor.instrument(tracer_provider=tel.tracer_provider, meter_provider=MeterProvider())
    try:
        read_both()
        assert client_spans(tel)  # switched on: its spans (Chat at least)
    finally:
        instrumentor.uninstrument()
        _sdk_patches.restore(before)
    tel.spans.clear()
    read_both()
    assert tel.spans.get_finished_spans() == ()


# ------------------------------------------- a wrapper that hides what it wraps: the caller decides


class Opaque:
    """Iterable both ways over chunks, exposing nothing of its source (as a wrapper with
    private fields would): only the caller's loop can tell which way it is read."""

    def __init__(self, items: list[str]) -> None:
        self._items = list(items)
        self.closed = False

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __aiter__(self) -> Any:
        return self._agen()

    async def _agen(self) -> Any:
        for item in self._items:
            yield item


PARTS = ["héllo ", "wörld", "!"]


def test_an_undecidable_stream_is_read_the_way_the_caller_loops() -> None:
    tel = Telemetry()
    wrapped = tel.monitor.wrap(Opaque(PARTS), model=MODEL, provider="openai")
    assert isinstance(wrapped, EitherStreamWrapper)
    with wrapped as stream:
        assert list(stream) == PARTS
    (span,) = tel.stream_spans()
    assert span.attributes[c.ATTR_OUTCOME] == c.OUTCOME_OK
    assert tel.value("stream_bytes_total") == len("".join(PARTS).encode())
    with pytest.raises(TypeError, match="already read with a for loop"):
        wrapped.__aiter__()


async def test_an_undecidable_stream_read_with_async_for() -> None:
    tel = Telemetry()
    wrapped = tel.monitor.wrap(Opaque(PARTS), model=MODEL, provider="openai")
    assert isinstance(wrapped, EitherStreamWrapper)
    assert [part async for part in wrapped] == PARTS
    (span,) = tel.stream_spans()
    assert span.attributes[c.ATTR_OUTCOME] == c.OUTCOME_OK
    with pytest.raises(TypeError, match="already read with async for"):
        iter(wrapped)


def test_an_undecidable_stream_closed_unread_ends_once_as_abandoned() -> None:
    tel = Telemetry()
    wrapped = tel.monitor.wrap(Opaque(PARTS), model=MODEL, provider="openai")
    wrapped.close()
    wrapped.close()
    del wrapped
    (span,) = tel.stream_spans()
    assert span.attributes[c.ATTR_OUTCOME] == c.OUTCOME_ABANDONED
    assert tel.value("stream_requests_total", outcome=c.OUTCOME_ABANDONED) == 1
