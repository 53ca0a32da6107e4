"""monitor.wrap on async streams: the real AsyncOpenAI client and httpx.AsyncClient."""

from __future__ import annotations

import asyncio
import gc
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import pytest
from openai import AsyncOpenAI

import steadystream as ss
import telemetry_support
from steadystream import conventions as c
from steadystream.simulate import DEFAULT_TOKENS, expected_text

FAULT = c.HEADER_FAULT
LABELS = {"service": "svc", "model": "gpt-4.1", "provider": "openai"}


SHORT = {"first_token": "400ms", "stream_idle": "400ms"}


def make_spec(**timeouts: str) -> ss.Spec:
    """A spec with generous timeouts (a loaded CI machine never crosses them) unless a test
    sets short ones for the fault it injects."""
    t = {"first_token": "20s", "stream_idle": "20s", "total": "60s", **timeouts}
    return ss.Spec.model_validate({"version": 1, "service": "svc", "stream": {"timeouts": t}})


class Telemetry(telemetry_support.Telemetry):
    labels = LABELS
    default_spec = staticmethod(make_spec)


async def atee(source: Any, seen: list[Any]) -> AsyncIterator[Any]:
    """Yield what ``source`` yields, remembering each item."""
    async for item in source:
        seen.append(item)
        yield item


def text_of(events: list[Any]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


async def create(client: AsyncOpenAI, fault: str = "none") -> Any:
    return await client.responses.create(
        model="gpt-4.1", input="hi", stream=True, extra_headers={FAULT: fault}
    )


@pytest.fixture
async def client(aupstream: Any) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=aupstream.base_url, api_key="test", max_retries=0) as cl:
        yield cl


async def test_async_events_pass_through_unchanged(client: AsyncOpenAI) -> None:
    """Async in, async out: the same event objects in order, exact bytes and one ok request."""
    tel = Telemetry()
    seen: list[Any] = []
    wrapped = tel.monitor.wrap(atee(await create(client), seen), model="gpt-4.1", provider="openai")
    assert hasattr(wrapped, "__aiter__") and not hasattr(wrapped, "__next__")
    out = [e async for e in wrapped]
    assert len(out) == len(seen) == DEFAULT_TOKENS + 8
    assert all(a is b for a, b in zip(out, seen, strict=True))
    expected = expected_text("hi", seed=0).encode()
    assert text_of(out).encode() == expected
    assert tel.value("stream_bytes_total") == len(expected)
    assert tel.value("stream_chunk_gap_ms_count") == DEFAULT_TOKENS - 1
    assert tel.value("stream_requests_total", outcome="ok") == 1
    assert tel.value("stream_in_flight") == 0
    assert len(tel.stream_spans()) == 1


@pytest.mark.parametrize("http", [httpx, httpx2], ids=["httpx", "httpx2"])
async def test_async_httpx_response_with_utf8_splits(aupstream: Any, http: Any) -> None:
    """An httpx / httpx2 AsyncClient SSE response, cut inside every UTF-8 character,
    reassembles."""
    tel = Telemetry()
    body = {"model": "gpt-4.1", "input": "hi", "stream": True}
    async with (
        http.AsyncClient() as hc,
        hc.stream(
            "POST", f"{aupstream.base_url}/responses", json=body, headers={FAULT: "split=utf8"}
        ) as resp,
    ):
        events = [e async for e in tel.monitor.wrap(resp, model="gpt-4.1", provider="openai")]
    deltas = [e.json()["delta"] for e in events if e.event == "response.output_text.delta"]
    assert "".join(deltas) == expected_text("hi", seed=0)
    assert tel.value("stream_requests_total", outcome="ok") == 1


async def test_async_idle_timeout_with_checkpoint(client: AsyncOpenAI) -> None:
    """A stall past stream_idle raises IdleTimeout from __anext__, with the exact checkpoint,
    and closes the upstream."""
    tel = Telemetry(make_spec(**SHORT))
    stream = await create(client, "stall=30s@10")
    received: list[Any] = []
    with pytest.raises(ss.IdleTimeout) as info:
        async for event in tel.monitor.wrap(stream, model="gpt-4.1", provider="openai"):
            received.append(event)
    text = text_of(received).encode()
    cp = info.value.checkpoint
    assert cp is not None and (cp.offset, cp.sha256) == (
        len(text),
        hashlib.sha256(text).hexdigest(),
    )
    assert stream.response.is_closed
    assert tel.value("stream_timeout_idle_total") == 1
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_IDLE_TIMEOUT) == 1
    assert len(tel.stream_spans()) == 1


async def test_async_first_token_timeout(client: AsyncOpenAI) -> None:
    """Lifecycle events do not satisfy the first-token budget."""
    tel = Telemetry(make_spec(**SHORT))
    with pytest.raises(ss.FirstTokenTimeout):
        async for _ in tel.monitor.wrap(
            await create(client, "delay=30s"), model="gpt-4.1", provider="openai"
        ):
            pass
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_FIRST_TOKEN) == 1
    assert tel.value("stream_first_token_latency_ms_count") == 1
    assert tel.value("stream_first_token_latency_ms_sum") >= 400


async def test_cancellation_is_abandoned_and_propagates(client: AsyncOpenAI) -> None:
    """Cancelling the consuming task while it waits ends the stream once, as abandoned, and
    the CancelledError reaches the task (it is not turned into a timeout)."""
    tel = Telemetry(make_spec(first_token="20s", stream_idle="20s"))
    stream = await create(client, "stall=30s@10")
    started = asyncio.Event()

    async def consume() -> None:
        async for event in tel.monitor.wrap(stream, model="gpt-4.1", provider="openai"):
            if event.type == "response.output_text.delta":
                started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stream.response.is_closed
    assert tel.value("stream_requests_total", outcome=c.OUTCOME_ABANDONED) == 1
    (span,) = tel.stream_spans()
    assert span.attributes[c.ATTR_OUTCOME] == c.OUTCOME_ABANDONED


@pytest.mark.parametrize("how", ["break_async_with", "aclose", "gc"])
async def test_async_early_exit_paths(client: AsyncOpenAI, how: str) -> None:
    """break in ``async with``, aclose() and garbage collection: abandoned, span ended once."""
    tel = Telemetry()
    stream = await create(client)
    wrapped = tel.monitor.wrap(stream, model="gpt-4.1", provider="openai")
    if how == "break_async_with":
        async with wrapped:
            async for event in wrapped:
                if event.type == "response.output_text.delta":
                    break
        assert stream.response.is_closed
    elif how == "aclose":
        await wrapped.__anext__()
        await wrapped.aclose()
        await wrapped.aclose()
        assert stream.response.is_closed
    else:
        await wrapped.__anext__()
        del wrapped
        gc.collect()
        # asyncio finalises the collected async generators on the loop: the body is closed.
        for _ in range(50):
            if stream.response.is_closed:
                break
            await asyncio.sleep(0.01)
        assert stream.response.is_closed
    assert tel.value("stream_requests_total", outcome=c.OUTCOME_ABANDONED) == 1
    assert tel.value("stream_in_flight") == 0
    assert len(tel.stream_spans()) == 1


async def test_async_error_event_is_counted(client: AsyncOpenAI) -> None:
    """An in-band ``error`` event is yielded to the consumer and fails the stream, once."""
    tel = Telemetry()
    stream = await create(client, "error_event")
    out = [e async for e in tel.monitor.wrap(stream, model="gpt-4.1", provider="openai")]
    assert out[-1].type == "error"
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_UPSTREAM_EVENT) == 1
    assert tel.value("stream_requests_total", outcome=c.OUTCOME_ERROR) == 1


async def test_async_stall_with_long_first_token_budget_is_an_idle_timeout(
    client: AsyncOpenAI,
) -> None:
    """Reasoning-model budgets (first_token 20 s, stream_idle 400 ms): the loop timer, armed at
    the first-token deadline, is brought forward to the idle deadline by the first content, so
    a mid-stream stall ends as IdleTimeout well within the first-token budget."""
    tel = Telemetry(make_spec(first_token="20s", stream_idle="400ms"))
    stream = await create(client, "stall=60s@10")
    received: list[Any] = []

    async def consume() -> None:
        async for event in tel.monitor.wrap(stream, model="gpt-4.1", provider="openai"):
            received.append(event)

    with pytest.raises(ss.IdleTimeout):
        # Bounded far below the 20 s first-token budget: only the idle deadline can end it.
        await asyncio.wait_for(consume(), timeout=10.0)
    assert text_of(received)
    assert stream.response.is_closed
    assert tel.value("stream_timeout_idle_total") == 1
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_FIRST_TOKEN) == 0


async def test_a_stall_times_out_in_the_task_that_waits_now(client: AsyncOpenAI) -> None:
    """A stream opened and first read in one task, then read on in another: the stall is the
    second task's IdleTimeout. The first task, still alive, is not cancelled."""
    tel = Telemetry(make_spec(stream_idle="400ms"))
    stream = await create(client, "stall=60s@10")
    items = aiter(tel.monitor.wrap(stream, model="gpt-4.1", provider="openai"))
    handed_over = asyncio.Event()
    release = asyncio.Event()
    received: list[Any] = []

    async def opener() -> str:
        received.append(await anext(items))
        handed_over.set()
        await release.wait()
        return "finished"

    async def reader() -> None:
        await handed_over.wait()
        async for event in items:
            received.append(event)

    first = asyncio.create_task(opener())
    with pytest.raises(ss.IdleTimeout):
        await asyncio.wait_for(reader(), timeout=10.0)
    assert not first.done()
    release.set()
    assert await asyncio.wait_for(first, timeout=10.0) == "finished"
    assert text_of(received)
    assert stream.response.is_closed
    assert tel.value("stream_timeout_idle_total") == 1


async def test_a_stall_times_out_through_a_framework_generator_and_wait_for(
    client: AsyncOpenAI,
) -> None:
    """The stream read through another async generator, each step in ``asyncio.wait_for`` (a
    task of its own per step on Python 3.11): the stall still ends as IdleTimeout, raised out
    of ``wait_for``, not as the outer timeout and not as a cancellation."""
    tel = Telemetry(make_spec(stream_idle="400ms"))
    stream = await create(client, "stall=60s@10")
    seen: list[Any] = []
    relayed = atee(tel.monitor.wrap(stream, model="gpt-4.1", provider="openai"), seen)
    with pytest.raises(ss.IdleTimeout):
        for _ in range(1_000):  # the stream stalls after 10 events
            await asyncio.wait_for(anext(relayed), timeout=30.0)
    assert text_of(seen)
    assert stream.response.is_closed
    assert tel.value("stream_timeout_idle_total") == 1
    assert tel.value("stream_requests_total", outcome=c.OUTCOME_ABANDONED) == 0


async def test_many_streams_stalling_together_each_time_out_in_their_own_task(
    client: AsyncOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty streams stall at once: each ends in IdleTimeout in the task reading it, and each
    timeout finds its task at the first look (the task that started the loop), without
    searching every task of the loop: a timeout cascade costs one look per stream."""
    from steadystream.instrumentation.core import watchdog

    looks: list[Any] = []
    real = watchdog._drives

    def counted(task: Any, agen: Any) -> bool:
        looks.append(task)
        return real(task, agen)

    monkeypatch.setattr(watchdog, "_drives", counted)
    tel = Telemetry(make_spec(stream_idle="400ms"))
    n = 40

    async def read_one() -> str:
        stream = await create(client, "stall=60s@10")
        try:
            async for _ in tel.monitor.wrap(stream, model="gpt-4.1", provider="openai"):
                pass
        except ss.IdleTimeout:
            return "idle timeout"
        return "ended"

    tasks = [asyncio.create_task(read_one()) for _ in range(n)]
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60.0)
    assert outcomes == ["idle timeout"] * n
    assert tel.value("stream_timeout_idle_total") == n
    assert len(looks) == n
    assert set(looks) == set(tasks)


async def test_a_stall_times_out_when_another_iterator_of_the_stream_is_made(
    client: AsyncOpenAI,
) -> None:
    """``aiter()`` called again on a stream that a loop is reading (a framework checking what
    it was given, say) makes a second generator that never runs: the stall still ends as the
    reading loop's IdleTimeout."""
    tel = Telemetry(make_spec(stream_idle="400ms"))
    stream = await create(client, "stall=60s@10")
    wrapped = tel.monitor.wrap(stream, model="gpt-4.1", provider="openai")
    started = asyncio.Event()
    received: list[Any] = []

    async def reader() -> None:
        async for event in wrapped:
            received.append(event)
            started.set()

    task = asyncio.create_task(reader())
    await asyncio.wait_for(started.wait(), timeout=10.0)
    unused = aiter(wrapped)
    with pytest.raises(ss.IdleTimeout):
        await asyncio.wait_for(task, timeout=10.0)
    assert [event async for event in unused] == []  # the stream has ended
    assert text_of(received)
    assert tel.value("stream_timeout_idle_total") == 1


async def test_a_stall_times_out_in_a_second_loop_after_a_break(client: AsyncOpenAI) -> None:
    """A first ``async for`` leaves the stream with ``break`` (its generator kept alive, not
    closed), a second one reads on: the stall is the second loop's IdleTimeout."""
    tel = Telemetry(make_spec(stream_idle="400ms"))
    stream = await create(client, "stall=60s@10")
    wrapped = tel.monitor.wrap(stream, model="gpt-4.1", provider="openai")
    received: list[Any] = []
    first = aiter(wrapped)
    async for event in first:
        received.append(event)
        break

    async def read_on() -> None:
        async for event in wrapped:
            received.append(event)

    with pytest.raises(ss.IdleTimeout):
        await asyncio.wait_for(read_on(), timeout=10.0)
    assert text_of(received)
    assert tel.value("stream_timeout_idle_total") == 1
    await first.aclose()
