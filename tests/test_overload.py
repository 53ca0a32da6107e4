"""Overload: lag measured per loop and per watchdog, deadlines the process's own lag excuses,
lag-caused timeouts kept apart from the upstream's, and shedding at ingress with hysteresis."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from steadystream.instrumentation.core.machine import CorePolicy, StreamCore
from steadystream.instrumentation.core.watchdog import (
    RECENT,
    LagExcuse,
    LagMeter,
    Watchdog,
    loop_lag,
)
from steadystream.instrumentation.errors import LagTimeout
from steadystream.instrumentation.monitor import StreamMonitor
from steadystream.instrumentation.policy.ingress import IngressGuard
from steadystream.instrumentation.policy.retry import classify
from telemetry_support import Recorder

DEADLINE = 30.0  # generous: a loaded 2-core machine


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def delta(text: str) -> dict[str, Any]:
    return {"type": "response.output_text.delta", "delta": text}


COMPLETED = {"type": "response.completed", "response": {"id": "r"}}


def wait_for(condition: Any, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"waited {DEADLINE}s for {what}")
        time.sleep(0.01)


# ------------------------------------------------------------------------------- the meter


def test_meter_recent_is_the_worst_lag_of_the_last_second_or_the_overdue_tick() -> None:
    """recent() reads the worst sample of the last RECENT seconds, and a tick that is due but
    has not run counts as lag already."""
    clock = Clock()
    meter = LagMeter(c.LAG_SOURCE_LOOP, clock)
    meter.record(0.4)
    clock.now += 0.5
    meter.record(0.01)
    assert meter.recent() == pytest.approx(0.4)
    clock.now += RECENT
    assert meter.recent() == pytest.approx(0.01)
    meter.due = clock.now - 0.7
    assert meter.recent() == pytest.approx(0.7)


def test_meter_smoothed_builds_up_on_sustained_lag_and_decays() -> None:
    """One short stall hardly moves the smoothed lag; a sustained one does; it decays after."""
    clock = Clock()
    meter = LagMeter(c.LAG_SOURCE_LOOP, clock)
    clock.now += 0.1
    meter.record(0.1)
    assert meter.smoothed() < 0.02
    for _ in range(10):
        clock.now += 0.5
        meter.record(0.5)
    assert meter.smoothed() > 0.45
    clock.now += 5.0
    assert meter.smoothed() < 0.01


def test_meter_listeners_get_milliseconds_and_weak_methods_drop() -> None:
    """Samples reach listeners in ms; a bound method's object can be collected."""
    meter = LagMeter(c.LAG_SOURCE_WATCHDOG, Clock())
    got: list[tuple[str, float]] = []

    class Sink:
        def take(self, source: str, ms: float) -> None:
            got.append((source, ms))

    sink = Sink()
    meter.on_sample(sink.take)
    meter.on_sample(sink.take)  # once per listener
    meter.record(0.25)
    assert got == [(c.LAG_SOURCE_WATCHDOG, 250.0)]
    del sink
    meter.record(0.5)
    assert got == [(c.LAG_SOURCE_WATCHDOG, 250.0)]


def test_excuse_grants_grace_up_to_the_budget_then_blames_the_lag() -> None:
    """Lagging: the deadline moves by the lag (at least the threshold), at most the phase's
    budget per attempt, then a lag-caused end; not lagging: an ordinary timeout."""
    clock = Clock()
    meter = LagMeter(c.LAG_SOURCE_LOOP, clock)
    excuse = LagExcuse(meter, 0.25, {c.TIMEOUT_FIRST_TOKEN: 1.0, c.TIMEOUT_IDLE: 2.0})
    assert excuse(c.TIMEOUT_FIRST_TOKEN) is None  # no lag measured
    meter.record(0.1)
    assert excuse(c.TIMEOUT_FIRST_TOKEN) is None  # below the threshold
    meter.record(0.6)
    assert excuse(c.TIMEOUT_FIRST_TOKEN) == (pytest.approx(0.6), pytest.approx(0.6))
    assert excuse(c.TIMEOUT_FIRST_TOKEN) == (pytest.approx(0.4), pytest.approx(0.6))
    assert excuse(c.TIMEOUT_FIRST_TOKEN) == (0.0, pytest.approx(0.6))
    assert excuse(c.TIMEOUT_TOTAL) is None  # the total budget never moves
    excuse.new_attempt()
    assert excuse(c.TIMEOUT_IDLE) == (pytest.approx(0.6), pytest.approx(0.6))


# ------------------------------------------------------------------------------- the core


def lagging_core(threshold: float = 0.25) -> tuple[StreamCore, Recorder, LagMeter, Clock]:
    clock = Clock()
    meter = LagMeter(c.LAG_SOURCE_LOOP, clock)
    rec = Recorder()
    policy = CorePolicy(first_token=3.0, idle=8.0, total=45.0)
    core = StreamCore(policy, rec)
    core.lag_excuse = LagExcuse(
        meter, threshold, {c.TIMEOUT_FIRST_TOKEN: policy.first_token, c.TIMEOUT_IDLE: policy.idle}
    )
    core.on_open(0.0)
    core.begin_attempt(0.0)
    return core, rec, meter, clock


def test_an_item_read_late_because_the_process_lagged_is_delivered() -> None:
    """The first token, read 0.5 s after its deadline while the loop lagged 0.8 s, is content,
    not a first-token timeout; nothing is counted as a timeout."""
    core, rec, meter, _ = lagging_core()
    core.on_wait(0.0)
    meter.record(0.8)
    assert core.on_item(delta("hi"), 3.5) is None
    assert core.content_bytes == 2
    assert rec.named("timeout") == []
    assert core.expired is None


def test_a_deadline_found_passed_while_lagging_moves_then_blames_the_lag() -> None:
    """A timer finding the deadline passed while lagging moves it out; past the grace (the
    first-token budget), still lagging, the attempt ends in LagTimeout, which is neither counted
    as a first-token timeout nor retried, and closes the stream as process_lag."""
    core, rec, meter, _ = lagging_core()
    core.on_wait(0.0)
    meter.record(1.0)
    assert core.check(3.0) is None
    assert core.next_deadline() == pytest.approx(4.0)
    assert core.check(4.0) is None and core.check(5.0) is None
    assert core.next_deadline() == pytest.approx(6.0)
    exc = core.check(6.0)
    assert isinstance(exc, LagTimeout)
    assert exc.phase == c.TIMEOUT_FIRST_TOKEN and exc.lag == pytest.approx(1.0)
    assert exc.error_class == c.ERROR_CLASS_PROCESS_LAG and exc.retryable
    assert rec.named("timeout") == []
    verdict = classify(exc)
    assert verdict.retry is False and verdict.reason is None
    assert verdict.error_class == c.ERROR_CLASS_PROCESS_LAG
    core.on_error(exc, 6.0)
    core.close(6.0, error=exc)
    ended = rec.named("ended")
    assert ended and ended[0][1] == c.ERROR_CLASS_PROCESS_LAG


def test_without_lag_a_passed_deadline_is_the_upstreams_timeout() -> None:
    """No lag measured: the first-token timeout fires at its budget, counted as such."""
    core, rec, _, _ = lagging_core()
    core.on_wait(0.0)
    exc = core.check(3.0)
    assert isinstance(exc, ss.FirstTokenTimeout)
    assert rec.named("timeout") == [(c.TIMEOUT_FIRST_TOKEN, 3.0)]
    assert classify(exc).retry is True


# ------------------------------------------------------------------------------- ingress


def test_ingress_sheds_while_lagging_with_hysteresis_and_a_retry_after_hint() -> None:
    """A sustained lag at the threshold sheds new streams (overloaded, retryable, with the
    hint); shedding holds until the lag falls below half the threshold."""
    clock = Clock()
    meter = LagMeter(c.LAG_SOURCE_WATCHDOG, clock)
    rejected: list[str] = []
    guard = IngressGuard(
        100, 1000.0, clock=clock, shed_lag=0.25, shed_retry_after=2.0, on_reject=rejected.append
    )
    guard.watch_lag(meter)
    guard.acquire().release()
    for _ in range(10):
        clock.now += 0.5
        meter.record(0.5)
    with pytest.raises(ss.IngressRejected) as info:
        guard.acquire()
    assert info.value.reason == c.REJECT_OVERLOADED
    assert info.value.retryable and info.value.retry_after == 2.0
    assert "overloaded" in str(info.value)
    assert guard.rejected(c.REJECT_OVERLOADED) == 1 and rejected == [c.REJECT_OVERLOADED]
    assert guard.in_flight == 0
    # Decaying through the band between half the threshold and the threshold: still shedding.
    while meter.smoothed() >= 0.2:
        clock.now += 0.05
    assert meter.smoothed() >= 0.125
    with pytest.raises(ss.IngressRejected):
        guard.acquire()
    while meter.smoothed() >= 0.125:
        clock.now += 0.05
    guard.acquire().release()
    # Off again: the band no longer sheds until the full threshold is reached.
    clock.now += 0.3
    meter.record(0.3)
    assert 0.125 <= meter.smoothed() < 0.25
    guard.acquire().release()


def test_shedding_is_off_in_the_spec() -> None:
    """overload.shed: false admits whatever the lag."""
    spec = ss.Spec.model_validate(
        {"version": 1, "service": "gen", "stream": {"ingress": {"overload": {"shed": False}}}}
    )
    clock = Clock()
    guard = IngressGuard.from_spec(spec.stream.ingress, clock=clock)
    meter = LagMeter(c.LAG_SOURCE_WATCHDOG, clock)
    guard.watch_lag(meter)
    for _ in range(10):
        clock.now += 1.0
        meter.record(1.0)
    guard.acquire().release()


def test_overload_spec_has_defaults_and_bounds() -> None:
    """Defaults: 500 ms lag, shedding on, 1 s retry-after; a lag out of range is an error."""
    overload = ss.default_spec("x").stream.ingress.overload
    assert (overload.lag, overload.shed, overload.retry_after) == (0.5, True, 1.0)
    with pytest.raises(Exception, match="lag must be between"):
        ss.Spec.model_validate(
            {"version": 1, "service": "x", "stream": {"ingress": {"overload": {"lag": "1ms"}}}}
        )


# ------------------------------------------------------------------------------- real loops


def make_monitor(first_token: str = "300ms") -> tuple[StreamMonitor, CollectorRegistry]:
    spec = ss.Spec.model_validate(
        {
            "version": 1,
            "service": "gen",
            "stream": {
                "timeouts": {"first_token": first_token, "stream_idle": "8s", "total": "60s"},
                "retry": {"max_retries": 2, "base_backoff": "1ms", "max_backoff": "2ms"},
                "ingress": {"overload": {"lag": "250ms"}},
            },
        }
    )
    registry = CollectorRegistry()
    return StreamMonitor(spec, registry=registry, tracer_provider=TracerProvider()), registry


def value(registry: CollectorRegistry, metric: str, **labels: str) -> float:
    return registry.get_sample_value(metric, labels) or 0.0


def test_a_stalled_loop_does_not_fail_a_stream_whose_token_was_there() -> None:
    """The loop is blocked for 0.8 s across the 0.3 s first-token deadline while the token is
    ready: the stream completes in one attempt, with no timeout counted, and the stall is in
    stream_event_loop_lag_ms{source="loop"}."""
    monitor, registry = make_monitor()

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()

        async def opener(checkpoint: Any) -> Any:
            async def gen() -> Any:
                await ready.wait()
                yield delta("hello")
                yield COMPLETED

            return gen()

        # The token is ready at 0.1 s; the loop is blocked from then until 0.9 s.
        loop.call_later(0.1, ready.set)
        loop.call_later(0.1, time.sleep, 0.8)
        stream = monitor.stream(opener, model="m", provider="p")
        items = [item async for item in stream]
        assert stream.attempts == 1
        return items

    items = asyncio.run(main())
    assert items == [delta("hello"), COMPLETED]
    base = {"service": "gen", "model": "m", "provider": "p"}
    assert value(registry, "stream_requests_total", outcome="ok", **base) == 1
    assert value(registry, "stream_timeouts_total", phase="first_token", **base) == 0
    assert value(registry, "stream_retry_total", reason="first_token_timeout", **base) == 0
    lag_count = value(registry, "stream_event_loop_lag_ms_count", service="gen", source="loop")
    assert lag_count >= 1
    worst = registry.get_sample_value(
        "stream_event_loop_lag_ms_bucket", {"service": "gen", "source": "loop", "le": "250.0"}
    )
    assert worst is not None and worst < lag_count  # the stall is above 250 ms


def test_a_loop_lagging_through_the_grace_ends_in_process_lag_without_a_retry() -> None:
    """The upstream never answers while the loop stays blocked most of the time: the attempt
    ends in LagTimeout after its grace, not retried, counted as process_lag, never as a
    first-token timeout."""
    monitor, registry = make_monitor()

    async def main() -> BaseException:
        loop = asyncio.get_running_loop()
        stop = False

        def stall() -> None:
            if not stop:
                time.sleep(0.4)
                loop.call_later(0.02, stall)

        async def opener(checkpoint: Any) -> Any:
            async def gen() -> Any:
                await asyncio.Event().wait()
                yield delta("never")

            return gen()

        stream = monitor.stream(opener, model="m", provider="p")
        it = stream.__aiter__()
        loop.call_later(0.05, stall)
        try:
            await it.__anext__()
        except ss.StreamError as exc:
            return exc
        finally:
            stop = True
        raise AssertionError("the stream yielded")

    exc = asyncio.run(main())
    assert isinstance(exc, LagTimeout), repr(exc)
    base = {"service": "gen", "model": "m", "provider": "p"}
    assert value(registry, "stream_errors_total", error_class="process_lag", **base) == 1
    assert value(registry, "stream_timeouts_total", phase="first_token", **base) == 0
    assert value(registry, "stream_retry_total", reason="first_token_timeout", **base) == 0
    assert value(registry, "stream_retry_budget_exhausted_total", **base) == 0


def test_a_lagging_loop_sheds_new_streams_then_admits_again() -> None:
    """While the loop lags, a new stream is refused at admission (overloaded, retry-after);
    once it has caught up, streams are admitted again."""
    monitor, registry = make_monitor("5s")

    async def opener(checkpoint: Any) -> Any:
        async def gen() -> Any:
            yield delta("ok")
            yield COMPLETED

        return gen()

    async def main() -> ss.IngressRejected:
        loop = asyncio.get_running_loop()
        meter = loop_lag()
        stop = False

        def stall() -> None:
            if not stop:
                time.sleep(0.6)
                loop.call_later(0.01, stall)

        loop.call_soon(stall)
        end = time.monotonic() + DEADLINE
        while not monitor.ingress.overloaded(meter):  # wait: the sustained lag builds up
            assert time.monotonic() < end, "waited for the guard to call the loop overloaded"
            await asyncio.sleep(0.05)
        try:
            [item async for item in monitor.stream(opener, model="m", provider="p")]
        except ss.IngressRejected as exc:
            rejected = exc
        else:
            raise AssertionError("a stream was admitted while the loop lagged")
        stop = True
        while monitor.ingress.overloaded(meter):  # wait: the lag decays below half
            assert time.monotonic() < end, "waited for the guard to recover"
            await asyncio.sleep(0.05)
        items = [item async for item in monitor.stream(opener, model="m", provider="p")]
        assert items == [delta("ok"), COMPLETED]
        return rejected

    rejected = asyncio.run(main())
    assert rejected.reason == c.REJECT_OVERLOADED and rejected.retry_after == 1.0
    base = {"service": "gen", "model": "m", "provider": "p"}
    assert value(registry, "stream_rejected_total", reason="overloaded", **base) == 1
    assert value(registry, "stream_requests_total", outcome="ok", **base) == 1


# ------------------------------------------------------------------------------- sync


def test_the_watchdog_measures_how_late_it_wakes() -> None:
    """A watchdog that wakes 2 s after the deadline it slept for records 2 s of lag."""
    clock = Clock()
    dog = Watchdog(clock)
    looked = threading.Event()

    class Stream:
        finished = False

        def watchdog_check(self, now: float) -> float | None:
            looked.set()
            return None

    stream = Stream()
    dog.watch(stream, clock.now + 1.0)
    clock.now += 3.0
    dog.wake()
    wait_for(looked.is_set, "the watchdog to look at the stream")
    assert dog.lag.recent() == pytest.approx(2.0)
    assert dog.lag.source == c.LAG_SOURCE_WATCHDOG


def test_an_idle_watchdog_reports_no_lag_after_its_last_look_was_dropped() -> None:
    """The only stream ends while the watchdog sleeps towards its look: once idle, the
    watchdog has no tick pending, so its meter does not read the idle time as a stall (which
    would shed the next stream at ingress as overloaded)."""
    clock = Clock()
    dog = Watchdog(clock)

    class Stream:
        finished = False

        def watchdog_check(self, now: float) -> float | None:
            return None

    stream = Stream()
    at = clock.now + 1.0
    dog.watch(stream, at)
    wait_for(lambda: dog.lag.due == at, "the watchdog to sleep towards the stream's look")
    dog.unwatch(stream)  # the stream ended: its look is swept, the heap is empty
    clock.now += 10.0
    dog.wake()
    wait_for(lambda: dog.lag.due == math.inf, "the idle watchdog to clear its pending tick")
    assert dog.lag.overdue() == 0.0
    assert dog.lag.smoothed() == 0.0
    assert dog.pending() == 0


def test_streams_opened_behind_the_watchdogs_next_look_do_not_wake_it() -> None:
    """Every sync stream gives the watchdog a look at its first-token deadline. The thread is
    woken only for a look earlier than the one it sleeps towards: a stream opened behind
    others used to wake it all the same (a thread switch and a GIL hand-off per stream, about
    a fifth of what a short stream costs the client). The clock stands still, so every stream's
    look falls at the same time as the first one's."""
    clock = Clock()
    monitor = StreamMonitor(
        ss.default_spec("gen"), registry=CollectorRegistry(), clock=clock, tracer_provider=None
    )
    dog = monitor.watchdog
    assert dog is not None
    first_token = monitor.policy.first_token
    held = monitor.wrap(iter(["a", "b"]), model="m", provider="p")
    assert next(held) == "a"
    wait_for(
        lambda: dog.lag.due == clock.now + first_token,
        "the watchdog to sleep towards the first stream's look",
    )
    notified = []
    real_notify = dog._cond.notify
    dog._cond.notify = lambda n=1: (notified.append(n), real_notify(n))  # type: ignore[method-assign]
    for _ in range(50):
        assert list(monitor.wrap(iter(["x", "y"]), model="m", provider="p")) == ["x", "y"]
    assert notified == []
    assert dog.lag.due == clock.now + first_token

    # An earlier look does wake it, and it then sleeps towards that one.
    class Stream:
        finished = False

        def watchdog_check(self, now: float) -> float | None:
            return None

    early = Stream()
    dog.watch(early, clock.now + 1.0)
    assert notified == [1]
    wait_for(
        lambda: dog.lag.due == clock.now + 1.0, "the watchdog to sleep towards the earlier look"
    )
    dog.unwatch(early)
    assert list(held) == ["b"]
    assert dog.pending() == 0


def connect_spec(lag: str) -> ss.Spec:
    return ss.Spec.model_validate(
        {
            "version": 1,
            "service": "gen",
            "stream": {
                "timeouts": {"first_token": "5s", "stream_idle": "8s", "total": "60s"},
                # An empty retry budget: any retry it pays for is refused.
                "retry": {
                    "max_retries": 2,
                    "base_backoff": "1ms",
                    "max_backoff": "2ms",
                    "budget": "0%",
                    "min_per_second": 0,
                },
                "ingress": {"overload": {"lag": lag, "shed": False}},
            },
        }
    )


def connect_run(spec: ss.Spec, *, stall: float) -> tuple[Any, CollectorRegistry]:
    """An opener whose first attempt blocks the loop ``stall`` s, then fails with a connect
    timeout; the second attempt streams."""
    import httpx

    registry = CollectorRegistry()
    monitor = StreamMonitor(spec, registry=registry, tracer_provider=TracerProvider())
    calls: list[Any] = []

    async def opener(checkpoint: Any) -> Any:
        calls.append(checkpoint)
        if len(calls) == 1:
            time.sleep(stall)  # the loop is blocked: its lag meter's tick goes overdue
            raise httpx.ConnectTimeout("timed out")

        async def gen() -> Any:
            yield delta("ok")
            yield COMPLETED

        return gen()

    async def main() -> Any:
        try:
            return [item async for item in monitor.stream(opener, model="m", provider="p")]
        except ss.StreamError as exc:
            return exc

    return asyncio.run(main()), registry


def test_a_connect_timeout_while_lagging_is_retried_without_the_budget() -> None:
    """A connect timeout that fired while the loop lagged is retried without drawing on the
    (empty) retry budget, and not counted as a dial timeout."""
    out, registry = connect_run(connect_spec("250ms"), stall=0.6)
    assert out == [delta("ok"), COMPLETED]
    base = {"service": "gen", "model": "m", "provider": "p"}
    assert value(registry, "stream_retry_total", reason="network", **base) == 1
    assert value(registry, "stream_retry_budget_exhausted_total", **base) == 0
    assert value(registry, "stream_timeouts_total", phase="dial", **base) == 0


def test_a_connect_timeout_without_lag_spends_the_budget() -> None:
    """The same failure with the process not lagging (threshold out of reach) is the
    upstream's: the empty budget refuses the retry, and the stream ends as connect_timeout."""
    out, registry = connect_run(connect_spec("10s"), stall=0.0)
    assert isinstance(out, ss.RetryBudgetExhausted), out
    base = {"service": "gen", "model": "m", "provider": "p"}
    assert value(registry, "stream_errors_total", error_class="connect_timeout", **base) == 1
    assert value(registry, "stream_timeouts_total", phase="dial", **base) == 1


def test_lag_caused_verdict_keeps_the_retry_and_names_the_class() -> None:
    """lag_caused: same retry decision and reason, class process_lag, free of the budget."""
    from steadystream.instrumentation.policy.retry import Verdict, lag_caused

    v = lag_caused(Verdict(True, c.RETRY_REASON_NETWORK, c.ERROR_CLASS_CONNECT_TIMEOUT), 0.5)
    assert (v.retry, v.reason, v.error_class, v.free) == (
        True,
        c.RETRY_REASON_NETWORK,
        c.ERROR_CLASS_PROCESS_LAG,
        True,
    )
    assert "500 ms" in v.why
