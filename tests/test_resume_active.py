"""Active mode with generic openers: retries, exact resume from a replaying source, ingress,
abandonment. Sources are plain Python (async) generators that fail the way networks do."""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from steadystream.instrumentation.active import ActiveStream, stream_active
from steadystream.instrumentation.core.checkpoint import Checkpoint
from steadystream.instrumentation.monitor import StreamMonitor
from telemetry_support import is_attempt_span

CHUNKS = ["Hel", "lo, ", "wör", "ld! ", "✓ ", "done"]
TEXT = "".join(CHUNKS)


class Env:
    """A monitor with a fresh registry and span exporter."""

    def __init__(self, **stream: Any) -> None:
        policy = {
            "timeouts": {"first_token": "20s", "stream_idle": "20s", "total": "60s"},
            "retry": {"max_retries": 2, "base_backoff": "1ms", "max_backoff": "2ms"},
            "ingress": {"max_concurrent": 8, "rate": "1000/s"},
            **stream,
        }
        spec = ss.Spec.model_validate({"version": 1, "service": "gen", "stream": policy})
        self.registry = CollectorRegistry()
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.monitor = StreamMonitor(spec, registry=self.registry, tracer_provider=provider)

    def value(self, metric: str, **extra: str) -> float:
        labels = {"service": "gen", "model": "m", "provider": "p", **extra}
        return self.registry.get_sample_value(metric, labels) or 0.0

    def stream(self, opener: Any, **kw: Any) -> Any:
        return self.monitor.stream(opener, model="m", provider="p", **kw)


class ReplayingSource:
    """Replays the text from the start on every attempt; attempt 1 drops after ``cut`` chunks."""

    def __init__(self, cut: int, *, diverge: bool = False) -> None:
        self.cut = cut
        self.diverge = diverge
        self.checkpoints: list[Checkpoint | None] = []
        self.keys: list[str] = []

    def chunks(self) -> list[str]:
        attempt = len(self.checkpoints)
        if attempt > 1 and self.diverge:
            return ["Jel", *CHUNKS[1:]]
        return CHUNKS

    def __call__(self, checkpoint: Checkpoint | None, idempotency_key: str) -> Iterator[str]:
        self.checkpoints.append(checkpoint)
        self.keys.append(idempotency_key)
        return self._gen(len(self.checkpoints))

    def _gen(self, attempt: int) -> Iterator[str]:
        for i, chunk in enumerate(self.chunks()):
            if attempt == 1 and i == self.cut:
                raise ConnectionResetError("peer reset")
            yield chunk

    def async_opener(self, checkpoint: Checkpoint | None, idempotency_key: str) -> Any:
        sync = self(checkpoint, idempotency_key)

        async def gen() -> AsyncIterator[str]:
            for chunk in sync:
                await asyncio.sleep(0)
                yield chunk

        async def opened() -> AsyncIterator[str]:
            return gen()

        return opened()


def test_sync_resume_from_a_replaying_source_is_exact() -> None:
    """A drop after content resumes; the replayed prefix is skipped, bytes count once."""
    env = Env()
    source = ReplayingSource(cut=3)
    out = list(env.stream(source))
    assert "".join(out) == TEXT
    assert source.checkpoints[0] is None
    cp = source.checkpoints[1]
    assert cp is not None and cp.offset == len("".join(CHUNKS[:3]).encode())
    assert cp.sha256 == hashlib.sha256("".join(CHUNKS[:3]).encode()).hexdigest()
    assert len(set(source.keys)) == 1  # one idempotency key for every attempt
    assert env.value("stream_retry_total", reason="network") == 1
    assert env.value("stream_resume_success_total") == 1
    assert env.value("stream_bytes_total") == len(TEXT.encode())
    assert env.value("stream_requests_total", outcome="ok") == 1
    assert env.value("stream_recovery_latency_ms_count") == 1


async def test_async_resume_from_a_replaying_source_is_exact() -> None:
    """The same through an async opener returning an awaitable of an async iterable."""
    env = Env()
    source = ReplayingSource(cut=2)
    out = [item async for item in env.stream(source.async_opener)]
    assert "".join(out) == TEXT
    assert env.value("stream_resume_success_total") == 1
    assert env.value("stream_bytes_total") == len(TEXT.encode())
    spans = env.exporter.get_finished_spans()
    assert sum(map(is_attempt_span, spans)) == 2


def test_divergent_replay_fails_without_delivering_it() -> None:
    """A replay that differs from what was delivered raises ResumeFailed; nothing new leaks."""
    env = Env()
    out: list[str] = []
    with pytest.raises(ss.ResumeFailed) as info:
        for item in env.stream(ReplayingSource(cut=3, diverge=True)):
            out.append(item)
    assert out == CHUNKS[:3]
    assert info.value.checkpoint is not None
    assert info.value.checkpoint.offset == len("".join(CHUNKS[:3]).encode())
    assert env.value("stream_resume_failure_total") == 1
    assert env.value("stream_resume_success_total") == 0
    assert env.value("stream_errors_total", error_class="resume_failed") == 1


def test_not_resumable_means_no_retry_after_content() -> None:
    """With resumable=False, a failure after content is final, typed and checkpointed."""
    env = Env()
    out: list[str] = []
    with pytest.raises(ss.UpstreamError) as info:
        for item in env.stream(ReplayingSource(cut=3), resumable=False):
            out.append(item)
    err = info.value
    assert out == CHUNKS[:3]
    assert err.error_class == c.ERROR_CLASS_NETWORK and err.retryable is True
    assert err.checkpoint is not None and err.checkpoint.chunks == 3
    assert isinstance(err.__cause__, ConnectionResetError)
    assert env.value("stream_retry_total", reason="network") == 0


def test_not_resumable_still_retries_before_content() -> None:
    """Before any content a retry duplicates nothing, so it happens even without resume."""
    env = Env()
    assert "".join(env.stream(ReplayingSource(cut=0), resumable=False)) == TEXT
    assert env.value("stream_retry_total", reason="network") == 1
    assert env.value("stream_resume_success_total") == 0


def test_max_retries_then_typed_error() -> None:
    """An opener that always fails is tried 1 + max_retries times."""
    env = Env()
    calls: list[Checkpoint | None] = []

    def opener(checkpoint: Checkpoint | None) -> Iterator[str]:
        calls.append(checkpoint)
        raise ConnectionRefusedError("down")

    with pytest.raises(ss.UpstreamError) as info:
        list(env.stream(opener))
    assert len(calls) == 3
    assert info.value.error_class == c.ERROR_CLASS_NETWORK
    assert env.value("stream_retry_total", reason="network") == 2
    assert env.value("stream_errors_total", error_class="network") == 1


def test_connect_timeouts_count_as_dial_timeouts() -> None:
    """A connect timeout inside the HTTP client is retried and counted under phase dial."""
    import httpx2
    import openai

    env = Env()
    request = httpx2.Request("POST", "http://127.0.0.1/v1/responses")
    calls = []

    def opener(checkpoint: Checkpoint | None) -> Iterator[str]:
        calls.append(checkpoint)
        if len(calls) == 1:
            try:
                raise httpx2.ConnectTimeout("dial", request=request)
            except httpx2.ConnectTimeout as exc:
                raise openai.APITimeoutError(request) from exc
        return iter(CHUNKS)

    assert "".join(env.stream(opener)) == TEXT
    assert env.value("stream_timeouts_total", phase="dial") == 1
    assert env.value("stream_retry_total", reason="network") == 1


def test_bugs_are_not_retried() -> None:
    """A programming error in the opener fails at once as error_class other."""
    env = Env()
    calls = []

    def opener(checkpoint: Checkpoint | None) -> Iterator[str]:
        calls.append(checkpoint)
        raise ValueError("bad argument")

    with pytest.raises(ss.UpstreamError) as info:
        list(env.stream(opener))
    assert len(calls) == 1 and info.value.retryable is False
    assert env.value("stream_errors_total", error_class="other") == 1


def test_in_band_error_event_is_a_typed_error() -> None:
    """An 'error' event ends the stream with UpstreamError and is not yielded."""
    env = Env()
    items = [
        {"type": "response.output_text.delta", "delta": "partial", "sequence_number": 4},
        {"type": "error", "code": "server_error", "message": "boom", "sequence_number": 5},
    ]
    out: list[Any] = []
    with pytest.raises(ss.UpstreamError) as info:
        for item in env.stream(lambda cp: iter(items)):
            out.append(item)
    assert out == items[:1]
    assert info.value.error_class == c.ERROR_CLASS_UPSTREAM_EVENT
    assert "boom" in str(info.value)
    assert env.value("stream_errors_total", error_class="upstream_error_event") == 1


def test_numbered_stream_cut_before_its_terminal_event_resumes() -> None:
    """A sequence-numbered stream that ends cleanly but early is resumed after its last event."""
    env = Env()
    events = [
        {"type": "response.created", "response": {"id": "r1"}, "sequence_number": 0},
        *(
            {"type": "response.output_text.delta", "delta": ch, "sequence_number": i + 1}
            for i, ch in enumerate(CHUNKS)
        ),
        {"type": "response.completed", "response": {"id": "r1"}, "sequence_number": 7},
    ]
    seen: list[Checkpoint | None] = []

    def opener(checkpoint: Checkpoint | None) -> Iterator[dict[str, Any]]:
        seen.append(checkpoint)
        if checkpoint is None:
            return iter(events[:4])  # ends without response.completed
        start = (checkpoint.sequence_number or -1) + 1
        return iter(events[start:])

    out = list(env.stream(opener))
    assert out == events
    assert seen[1] is not None and seen[1].sequence_number == 3 and seen[1].response_id == "r1"
    assert env.value("stream_resume_success_total") == 1
    assert env.value("stream_requests_total", outcome="ok") == 1


async def test_first_token_timeout_is_retried() -> None:
    """An attempt that never produces a token times out and the next attempt serves it."""
    env = Env(timeouts={"first_token": "50ms", "stream_idle": "20s", "total": "60s"})
    never = asyncio.Event()
    attempts = []

    async def opener(checkpoint: Checkpoint | None) -> AsyncIterator[str]:
        attempts.append(checkpoint)

        async def gen() -> AsyncIterator[str]:
            if len(attempts) == 1:
                await never.wait()
            for chunk in CHUNKS:
                yield chunk

        return gen()

    out = [item async for item in env.stream(opener)]
    assert "".join(out) == TEXT
    assert env.value("stream_retry_total", reason="first_token_timeout") == 1
    assert env.value("stream_timeouts_total", phase="first_token") == 1
    # One logical stream, one observation: its first content, from the open (so at least the
    # 50 ms that attempt 1 waited), not the timed-out wait as well.
    assert env.value("stream_first_token_latency_ms_count") == 1
    assert env.value("stream_first_token_latency_ms_sum") >= 50


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_sync_open_failing_after_the_first_token_deadline_is_a_first_token_timeout() -> None:
    """A sync opener that blocks past the first-token budget and then fails on the network
    (the HTTP client's read-timeout backstop) is counted and retried as a first-token timeout;
    a late open that fails with an HTTP status keeps its own class."""
    import httpx2
    import openai

    clock = FakeClock()
    spec = ss.Spec.model_validate(
        {
            "version": 1,
            "service": "gen",
            "stream": {
                "timeouts": {"first_token": "3s", "stream_idle": "8s", "total": "60s"},
                "retry": {"max_retries": 2, "base_backoff": "1ms", "max_backoff": "2ms"},
            },
        }
    )
    registry = CollectorRegistry()
    monitor = StreamMonitor(
        spec, registry=registry, tracer_provider=TracerProvider(), clock=clock, watchdog=False
    )
    request = httpx2.Request("POST", "http://127.0.0.1/v1/responses")
    calls: list[Checkpoint | None] = []

    def opener(checkpoint: Checkpoint | None) -> Iterator[str]:
        calls.append(checkpoint)
        if len(calls) == 1:
            clock.now += 4.5  # blocked on response headers past the 3 s budget
            raise openai.APITimeoutError(request)
        return iter(CHUNKS)

    out = "".join(monitor.stream(opener, model="m", provider="p"))
    assert out == TEXT

    def value(metric: str, **extra: str) -> float:
        labels = {"service": "gen", "model": "m", "provider": "p", **extra}
        return registry.get_sample_value(metric, labels) or 0.0

    assert value("stream_retry_total", reason="first_token_timeout") == 1
    assert value("stream_retry_total", reason="network") == 0
    assert value("stream_timeouts_total", phase="first_token") == 1
    assert value("stream_requests_total", outcome="ok") == 1
    # One observation for the logical stream: its first content 4.5 s after the open.
    assert value("stream_first_token_latency_ms_count") == 1
    assert value("stream_first_token_latency_ms_sum") == 4500

    calls.clear()

    def refused(checkpoint: Checkpoint | None) -> Iterator[str]:
        calls.append(checkpoint)
        clock.now += 4.5
        raise openai.BadRequestError(
            "bad", response=httpx2.Response(400, request=request), body=None
        )

    with pytest.raises(ss.UpstreamError) as info:
        list(monitor.stream(refused, model="m", provider="p"))
    assert info.value.status == 400 and len(calls) == 1
    assert value("stream_timeouts_total", phase="first_token") == 1


def test_failed_open_counts_as_open_phase_not_first_token_wait() -> None:
    """Time spent in an opener that fails (a refused or reset connection) is the network's
    ``open`` phase, like a successful open; first_token_wait is headers to first content."""
    clock = FakeClock()
    registry = CollectorRegistry()
    spec = ss.Spec.model_validate(
        {
            "version": 1,
            "service": "gen",
            "stream": {"retry": {"max_retries": 2, "base_backoff": "1ms", "max_backoff": "2ms"}},
        }
    )
    monitor = StreamMonitor(
        spec, registry=registry, tracer_provider=TracerProvider(), clock=clock, watchdog=False
    )
    calls = 0

    def opener(checkpoint: Checkpoint | None) -> Iterator[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            clock.now += 2.0
            raise ConnectionRefusedError("refused")
        clock.now += 0.5

        def body() -> Iterator[str]:
            clock.now += 1.0
            yield "hello"

        return body()

    assert list(monitor.stream(opener, model="m", provider="p")) == ["hello"]

    def phase(name: str) -> float | None:
        labels = {"service": "gen", "model": "m", "provider": "p", "phase": name}
        return registry.get_sample_value("stream_phase_duration_ms_sum", labels)

    assert phase("open") == pytest.approx(2500.0)
    assert phase("first_token_wait") == pytest.approx(1000.0)


def test_checkpoint_mid_stream_is_exactly_what_was_received() -> None:
    """ActiveStream.checkpoint read inside the loop covers every chunk received so far, not
    only up to the last periodic checkpoint (every 16 chunks by default)."""
    env = Env()
    stream = env.stream(lambda checkpoint: iter(CHUNKS))
    got = ""
    for item in stream:
        got += item
        cp = stream.checkpoint
        assert cp is not None
        assert (cp.offset, cp.sha256) == (
            len(got.encode()),
            hashlib.sha256(got.encode()).hexdigest(),
        )
    assert got == TEXT


def test_ingress_rejects_at_once_and_counts() -> None:
    """Past max_concurrent a new stream is rejected with a retryable error and counted."""
    env = Env(ingress={"max_concurrent": 1, "rate": "1000/s"})
    first = iter(env.stream(lambda cp: iter(CHUNKS)))
    assert next(first) == CHUNKS[0]
    with pytest.raises(ss.IngressRejected) as info:
        next(iter(env.stream(lambda cp: iter(CHUNKS))))
    assert info.value.reason == c.REJECT_CONCURRENCY and info.value.retryable
    assert env.value("stream_rejected_total", reason="concurrency") == 1
    assert env.value("stream_requests_total", outcome="rejected") == 1
    assert env.value("stream_in_flight") == 1
    assert "".join([CHUNKS[0], *first]) == TEXT
    assert env.value("stream_in_flight") == 0
    assert "".join(env.stream(lambda cp: iter(CHUNKS))) == TEXT  # the slot was released


def test_break_abandons_and_releases() -> None:
    """Leaving the loop early ends the stream as abandoned and closes the upstream."""
    env = Env(ingress={"max_concurrent": 1, "rate": "1000/s"})
    closed = []

    def opener(checkpoint: Checkpoint | None) -> Iterator[str]:
        try:
            yield from CHUNKS
        finally:
            closed.append(True)

    with env.stream(opener) as stream:
        for _ in stream:
            break
    assert closed == [True]
    assert env.value("stream_requests_total", outcome="abandoned") == 1
    assert env.value("stream_in_flight") == 0
    assert list(env.stream(lambda cp: iter(CHUNKS))) == CHUNKS


async def test_cancellation_abandons() -> None:
    """Cancelling the consuming task ends the stream as abandoned."""
    env = Env()
    started = asyncio.Event()

    async def opener(checkpoint: Checkpoint | None) -> AsyncIterator[str]:
        yield "first"
        started.set()
        await asyncio.Event().wait()

    async def consume() -> None:
        async for _ in env.stream(opener):
            pass

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert env.value("stream_requests_total", outcome="abandoned") == 1
    assert env.value("stream_in_flight") == 0


def test_sync_iteration_of_an_async_opener_is_refused() -> None:
    """An opener that returns an async stream needs 'async for'; the error says so."""
    env = Env()

    async def opener(checkpoint: Checkpoint | None) -> AsyncIterator[str]:
        yield "x"

    with pytest.raises(TypeError, match="async for"):
        list(env.stream(opener))
    assert env.value("stream_in_flight") == 0


def test_monitor_stream_is_the_active_mode() -> None:
    """monitor.stream(opener) is stream_active: same object type, same behaviour."""
    env = Env()
    via_monitor = env.monitor.stream(lambda cp: iter(CHUNKS), model="m", provider="p")
    direct = stream_active(env.monitor, lambda cp: iter(CHUNKS), model="m", provider="p")
    assert isinstance(via_monitor, ActiveStream) and isinstance(direct, ActiveStream)
    assert "".join(via_monitor) == "".join(direct) == TEXT
    assert env.value("stream_requests_total", outcome="ok") == 2


def _named(checkpoint: Any, idempotency_key: str) -> Any:
    return iter([idempotency_key])


def _keyword_only(checkpoint: Any, *, idempotency_key: str = "") -> Any:
    return iter([idempotency_key])


def _positional_only(checkpoint: Any, idempotency_key: str = "no key", /) -> Any:
    return iter([idempotency_key])  # the key is passed by keyword: not to this one


def _local_only(checkpoint: Any, **options: Any) -> Any:
    idempotency_key = "no key"  # a local, not a parameter
    return iter([idempotency_key])


@functools.wraps(_named)
def _decorated(*args: Any, **kwargs: Any) -> Any:
    return _named(*args, **kwargs)


class _Bound:
    def open(self, checkpoint: Any, idempotency_key: str) -> Any:
        return iter([idempotency_key])


@pytest.mark.parametrize(
    ("opener", "takes_key"),
    [
        (_named, True),
        (_keyword_only, True),
        (_positional_only, False),
        (_local_only, False),
        (_decorated, True),
        (_Bound().open, True),
        (functools.partial(_named), True),
        (lambda checkpoint: iter(["no key"]), False),
    ],
)
def test_the_idempotency_key_goes_to_openers_whose_parameters_name_it(
    opener: Any, takes_key: bool
) -> None:
    """Plain functions are read from their code (a provider helper makes one per stream);
    anything else through inspect.signature, as before. Either way the key is passed, by
    keyword, exactly when a parameter that takes keywords is named idempotency_key."""
    env = Env()
    stream = stream_active(env.monitor, opener, model="m", provider="p", idempotency_key="k-1")
    assert list(stream) == (["k-1"] if takes_key else ["no key"])
