"""Ingress guard: concurrency cap and token-bucket rate limit, with an injected clock."""

from __future__ import annotations

import contextlib
import threading

import pytest

import steadystream as ss
from steadystream import conventions as c
from steadystream.instrumentation.policy.ingress import IngressGuard


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_concurrency_cap_rejects_at_once() -> None:
    """The (N+1)-th concurrent stream is rejected with a retryable typed error."""
    guard = IngressGuard(3, 1000.0, clock=Clock())
    tickets = [guard.acquire() for _ in range(3)]
    with pytest.raises(ss.IngressRejected) as info:
        guard.acquire()
    assert info.value.reason == c.REJECT_CONCURRENCY
    assert info.value.retryable is True
    assert info.value.error_class == c.ERROR_CLASS_REJECTED
    assert guard.in_flight == 3
    tickets[0].release()
    assert guard.in_flight == 2
    guard.acquire()
    assert guard.rejected(c.REJECT_CONCURRENCY) == 1


def test_rate_limit_token_bucket() -> None:
    """A burst passes, the next is rejected for rate, and time refills the bucket."""
    clock = Clock()
    guard = IngressGuard(100, 10.0, burst=5, clock=clock)
    for _ in range(5):
        guard.acquire().release()
    with pytest.raises(ss.IngressRejected) as info:
        guard.acquire()
    assert info.value.reason == c.REJECT_RATE
    clock.now = 0.25  # 2.5 tokens
    guard.acquire().release()
    guard.acquire().release()
    with pytest.raises(ss.IngressRejected):
        guard.acquire()
    clock.now = 1000.0  # refill stops at the burst size
    admitted = 0
    for _ in range(10):
        try:
            guard.acquire().release()
            admitted += 1
        except ss.IngressRejected:
            pass
    assert admitted == 5
    assert guard.rejected(c.REJECT_RATE) == 2 + 5


def test_concurrency_rejection_spends_no_rate_token() -> None:
    """A stream refused for concurrency leaves the rate bucket untouched."""
    guard = IngressGuard(1, 1.0, burst=2, clock=Clock())
    held = guard.acquire()
    for _ in range(5):
        with pytest.raises(ss.IngressRejected) as info:
            guard.acquire()
        assert info.value.reason == c.REJECT_CONCURRENCY
    held.release()
    guard.acquire()  # the second burst token is still there


def test_release_is_idempotent_and_a_context_manager() -> None:
    """Releasing twice frees one slot; leaving a with block releases."""
    guard = IngressGuard(2, 1000.0, clock=Clock())
    ticket = guard.acquire()
    ticket.release()
    ticket.release()
    assert guard.in_flight == 0 and ticket.released
    with guard.acquire():
        assert guard.in_flight == 1
    assert guard.in_flight == 0


def test_callbacks_report_and_never_break() -> None:
    """on_reject and on_in_flight see every change; a raising callback is swallowed."""
    events: list[object] = []

    def on_reject(reason: str) -> None:
        events.append(("reject", reason))
        raise RuntimeError("telemetry down")

    def on_in_flight(delta: int) -> None:
        events.append(("in_flight", delta))
        raise RuntimeError("telemetry down")

    guard = IngressGuard(1, 1000.0, clock=Clock(), on_reject=on_reject, on_in_flight=on_in_flight)
    ticket = guard.acquire()
    with pytest.raises(ss.IngressRejected):
        guard.acquire()
    ticket.release()
    assert events == [("in_flight", 1), ("reject", c.REJECT_CONCURRENCY), ("in_flight", -1)]


def test_from_spec_and_default_burst() -> None:
    """The spec's ingress section configures the guard; burst defaults to one second of rate."""
    spec = ss.default_spec("svc")
    guard = IngressGuard.from_spec(spec.stream.ingress, clock=Clock())
    assert (guard.max_concurrent, guard.rate, guard.burst) == (256, 50.0, 50)
    assert IngressGuard(1, 0.5).burst == 1


def test_invalid_arguments() -> None:
    """A zero cap or rate is a programming error."""
    with pytest.raises(ValueError):
        IngressGuard(0, 1.0)
    with pytest.raises(ValueError):
        IngressGuard(1, 0.0)


def test_thread_safe_cap() -> None:
    """Sixteen threads racing for ten slots get exactly ten."""
    guard = IngressGuard(10, 1e9, burst=1000, clock=Clock())
    admitted: list[object] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        for _ in range(5):
            with contextlib.suppress(ss.IngressRejected):
                admitted.append(guard.acquire())

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 10 and guard.in_flight == 10
    assert guard.rejected(c.REJECT_CONCURRENCY) == 16 * 5 - 10


def test_docstring_example_runs() -> None:
    """The example in IngressGuard's docstring is true."""
    import doctest

    from steadystream.instrumentation.policy import ingress

    result = doctest.testmod(ingress, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_monitor_uses_the_injected_guard() -> None:
    """StreamMonitor(ingress=...) admits active streams through that guard, not one of its own."""
    from prometheus_client import CollectorRegistry

    guard = IngressGuard(1, 1000.0, clock=Clock())
    monitor = ss.StreamMonitor(
        ss.default_spec("ingress-test"), registry=CollectorRegistry(), ingress=guard
    )
    assert monitor.ingress is guard
    first = iter(monitor.stream(lambda checkpoint: iter(["a", "b"]), model="m"))
    assert next(first) == "a"
    assert guard.in_flight == 1
    with pytest.raises(ss.IngressRejected) as info:
        next(iter(monitor.stream(lambda checkpoint: iter(["c"]), model="m")))
    assert info.value.reason == c.REJECT_CONCURRENCY
    assert list(first) == ["b"]
    assert guard.in_flight == 0


def test_monitor_builds_its_guard_from_the_spec() -> None:
    """Without ingress=, the monitor's guard is the one spec.stream.ingress describes."""
    from prometheus_client import CollectorRegistry

    spec = ss.default_spec("ingress-test")
    monitor = ss.StreamMonitor(spec, registry=CollectorRegistry())
    assert monitor.ingress.max_concurrent == spec.stream.ingress.max_concurrent
    assert monitor.ingress.rate == spec.stream.ingress.rate
