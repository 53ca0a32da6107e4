"""Relay mode against the real openai client and the simulator: a consumer that stops reading
triggers each overflow policy, and the buffer stays within the cap plus one item."""

from __future__ import annotations

import hashlib
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from steadystream.instrumentation.monitor import StreamMonitor
from steadystream.instrumentation.openai import responses_stream
from steadystream.instrumentation.policy.relay import ITEM_OVERHEAD, relay
from steadystream.instrumentation.providers import base as ev
from steadystream.instrumentation.providers.registry import read_item
from steadystream.simulate import HEADER_TOKENS, Upstream, expected_text
from telemetry_support import is_stream_span

MODEL = "gpt-4.1"
PROMPT = "a long answer please"
TOKENS = 400
EXPECTED = expected_text(PROMPT, seed=0, tokens=TOKENS)
CAP = 2048


def make_monitor(policy: str) -> tuple[StreamMonitor, CollectorRegistry, InMemorySpanExporter]:
    spec = ss.Spec.model_validate(
        {
            "version": 1,
            "service": "relay",
            "stream": {
                "timeouts": {"first_token": "20s", "stream_idle": "20s", "total": "60s"},
                "flow_control": {"max_buffer": f"{CAP}B", "on_overflow": policy},
            },
        }
    )
    registry = CollectorRegistry()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return StreamMonitor(spec, registry=registry, tracer_provider=provider), registry, exporter


def value(registry: CollectorRegistry, metric: str, **extra: str) -> float:
    labels = {"service": "relay", "model": MODEL, "provider": "openai", **extra}
    return registry.get_sample_value(metric, labels) or 0.0


def client(up: Upstream) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=up.base_url, api_key="test")


def source(monitor: StreamMonitor, up: Upstream) -> Any:
    return responses_stream(
        monitor,
        client(up),
        model=MODEL,
        input=PROMPT,
        extra_headers={HEADER_TOKENS: str(TOKENS)},
    )


def text_of(items: list[Any]) -> str:
    return "".join(read_item(i).text for i in items if read_item(i).kind == ev.CONTENT)


def largest_item(items: list[Any]) -> int:
    return max(ITEM_OVERHEAD + len(read_item(i).text.encode()) for i in items)


async def test_pause_stops_reading_and_resumes_without_loss(upstream: Upstream) -> None:
    """Pause: a stalled consumer stops the reader within cap + one item; nothing is lost."""
    monitor, registry, exporter = make_monitor("pause")
    async with monitor.relay(source(monitor, upstream)) as relayed:
        first = await relayed.__anext__()
        await relayed.wait_stalled()  # the consumer stopped reading; the reader must stop too
        assert relayed.breaches == 1
        assert relayed.buffered > CAP // 2  # paused with a backlog above the low-water mark
        assert value(registry, "stream_abort_client_slow_total") == 1
        items = [first]
        async for item in relayed:
            items.append(item)
    assert text_of(items) == EXPECTED
    assert relayed.peak <= CAP + largest_item(items)
    assert value(registry, "stream_requests_total", outcome=c.OUTCOME_OK) == 1
    assert value(registry, "stream_bytes_total") == len(EXPECTED.encode())
    (root,) = [s for s in exporter.get_finished_spans() if is_stream_span(s)]
    backpressure = [e for e in root.events if e.name == c.EVENT_BACKPRESSURE]
    assert len(backpressure) == relayed.breaches
    assert backpressure[0].attributes["terminated"] is False


async def test_drop_sheds_progress_and_coalesces_but_keeps_all_text(upstream: Upstream) -> None:
    """Drop: progress events go, deltas merge, content is complete; the bound holds."""
    monitor, registry, _ = make_monitor("drop")
    async with relay(monitor, source(monitor, upstream)) as relayed:
        await relayed.wait_stalled()  # nothing read yet: the backlog is all there is
        assert relayed.dropped_items >= 1  # response.in_progress was in the backlog
        items = [item async for item in relayed]
    types = [read_item(i) for i in items]
    assert text_of(items) == EXPECTED
    assert not any(getattr(i, "type", "") == "response.in_progress" for i in items)
    deltas = [i for i in items if getattr(i, "type", "") == "response.output_text.delta"]
    assert len(deltas) < TOKENS  # coalesced
    assert [r.kind for r in types].count(ev.END) == 1  # the terminal event is never dropped
    assert relayed.peak <= CAP + largest_item(items)
    assert value(registry, "stream_abort_client_slow_total") == relayed.breaches >= 1
    assert value(registry, "stream_requests_total", outcome=c.OUTCOME_OK) == 1


async def test_terminate_ends_with_resumable_client_too_slow(upstream: Upstream) -> None:
    """Terminate: ClientTooSlow with the exact checkpoint, from which the client resumes."""
    monitor, registry, exporter = make_monitor("terminate")
    items: list[Any] = []
    async with relay(monitor, source(monitor, upstream)) as relayed:
        for _ in range(6):
            items.append(await relayed.__anext__())
        await relayed.wait_stalled()  # the reader gave up on this consumer
        with pytest.raises(ss.ClientTooSlow) as info:
            async for item in relayed:
                items.append(item)
    err = info.value
    assert err.retryable is True
    cp = err.checkpoint
    got = text_of(items)
    assert cp is not None and cp.offset == len(got.encode())
    assert cp.sha256 == hashlib.sha256(got.encode()).hexdigest()
    assert relayed.peak <= CAP
    assert relayed.buffered == 0  # the backlog was freed
    # Bytes delivered to the consumer, not the freed backlog the reader had read.
    assert value(registry, "stream_bytes_total") == cp.offset
    assert value(registry, "stream_abort_client_slow_total") == 1
    assert value(registry, "stream_errors_total", error_class=c.ERROR_CLASS_CLIENT_TOO_SLOW) == 1
    assert value(registry, "stream_requests_total", outcome=c.OUTCOME_ERROR) == 1
    assert value(registry, "stream_in_flight") == 0
    (root,) = [s for s in exporter.get_finished_spans() if is_stream_span(s)]
    assert [e.attributes["terminated"] for e in root.events if e.name == c.EVENT_BACKPRESSURE] == [
        True
    ]
    # The client resumes exactly where it stopped (a background response).
    assert cp.response_id is not None and cp.sequence_number is not None
    rest = await client(upstream).responses.retrieve(
        cp.response_id, stream=True, starting_after=cp.sequence_number
    )
    tail = [e async for e in rest]
    assert got + text_of(tail) == EXPECTED


async def test_consumer_leaving_early_abandons(upstream: Upstream) -> None:
    """Leaving the relay early stops the reader and records an abandoned stream."""
    monitor, registry, _ = make_monitor("pause")
    async with relay(monitor, source(monitor, upstream)) as relayed:
        await relayed.__anext__()
    assert value(registry, "stream_requests_total", outcome=c.OUTCOME_ABANDONED) == 1
    assert value(registry, "stream_in_flight") == 0


async def test_bytes_count_what_a_consumer_leaving_early_took() -> None:
    """stream_bytes_total counts content the consumer took, not what the reader buffered for a
    consumer that left; the relay's checkpoint is exactly what it took."""
    monitor, registry, _ = make_monitor("pause")

    async def words() -> Any:
        for word in ("alpha ", "beta ", "gamma ", "delta"):
            yield word

    async with relay(monitor, words(), model=MODEL, provider="openai") as relayed:
        first = await relayed.__anext__()
        await relayed.wait_stalled()  # the reader has read (and buffered) everything
    assert first == "alpha "
    assert relayed.checkpoint.offset == len(b"alpha ")
    assert relayed.checkpoint.sha256 == hashlib.sha256(b"alpha ").hexdigest()
    assert value(registry, "stream_bytes_total") == len(b"alpha ")
    assert value(registry, "stream_requests_total", outcome=c.OUTCOME_OK) == 1


async def test_relay_of_a_plain_async_iterable() -> None:
    """An async iterable is instrumented as by wrap() and relayed unchanged when it fits."""
    monitor, registry, _ = make_monitor("terminate")

    async def words() -> Any:
        for word in ("alpha ", "beta ", "gamma"):
            yield word

    async with relay(monitor, words(), model=MODEL, provider="openai") as relayed:
        items = [item async for item in relayed]
    assert items == ["alpha ", "beta ", "gamma"]
    assert relayed.breaches == 0
    assert value(registry, "stream_bytes_total") == len("alpha beta gamma")
