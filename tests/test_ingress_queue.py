"""The admission queue (stream.ingress.queue): streams that find every slot taken wait in a
bounded FIFO instead of being refused at once; threads and tasks share it; a full queue and a
wait that runs out are refused with their own reasons; the wait is the stream's queue phase and
counts in its time to first token."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from steadystream.instrumentation.policy.ingress import IngressGuard, IngressTicket
from steadystream.instrumentation.policy.shared import SharedIngressGuard, SharedStore
from steadystream.testing import RedisServer

LONG = 60.0  # a queue timeout no test reaches: the waits end by a release
EVENTS = (
    {"type": "response.created", "response": {"id": "r"}},
    {"type": "response.output_text.delta", "delta": "ok"},
    {"type": "response.completed", "response": {"id": "r"}},
)


def wait_for(probe: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        time.sleep(0.01)


class Waiting(threading.Thread):
    """A thread acquiring from ``guard``; keeps its ticket or the error."""

    def __init__(self, guard: IngressGuard, order: list[str], name: str) -> None:
        super().__init__(daemon=True)
        self.guard, self.order, self.label = guard, order, name
        self.ticket: IngressTicket | None = None
        self.error: ss.IngressRejected | None = None

    def run(self) -> None:
        try:
            self.ticket = self.guard.acquire()
            self.order.append(self.label)
        except ss.IngressRejected as exc:
            self.error = exc


def queue_in(guard: IngressGuard, order: list[str], name: str) -> Waiting:
    before = guard.queued
    thread = Waiting(guard, order, name)
    thread.start()
    wait_for(lambda: guard.queued == before + 1, f"{name} to queue")
    return thread


def test_spec_section_builds_the_queue() -> None:
    """ingress.queue {max, timeout} reaches the monitor's guard; bad values name the field."""
    spec = ss.Spec.model_validate(
        {
            "version": 1,
            "service": "q",
            "stream": {"ingress": {"max_concurrent": 2, "queue": {"max": 5, "timeout": "1500ms"}}},
        }
    )
    guard = ss.StreamMonitor(spec, registry=CollectorRegistry()).ingress
    assert (guard.queue_max, guard.queue_timeout) == (5, 1.5)
    with pytest.raises(ValueError, match=r"stream\.ingress\.queue\.max"):
        ss.Spec.model_validate(
            {"version": 1, "service": "q", "stream": {"ingress": {"queue": {"max": 0}}}}
        )


def test_threads_wait_in_order_and_a_full_queue_refuses() -> None:
    """Cap 1, queue 2: two threads wait and get the slot oldest first; a third is refused with
    queue_full at once."""
    guard = IngressGuard(1, 1000.0, queue_max=2, queue_timeout=LONG)
    order: list[str] = []
    holder = guard.acquire()
    assert holder.queued == 0.0
    first = queue_in(guard, order, "first")
    second = queue_in(guard, order, "second")
    with pytest.raises(ss.IngressRejected) as info:
        guard.acquire()
    assert info.value.reason == c.REJECT_QUEUE_FULL and info.value.retryable
    holder.release()
    first.join(timeout=30)
    assert order == ["first"] and guard.in_flight == 1 and guard.queued == 1
    assert first.ticket is not None and first.ticket.queued is not None
    first.ticket.release()
    second.join(timeout=30)
    assert order == ["first", "second"]
    assert second.ticket is not None
    second.ticket.release()
    assert guard.in_flight == 0 and guard.queued == 0
    assert guard.rejected(c.REJECT_QUEUE_FULL) == 1


def test_a_wait_that_runs_out_is_refused_with_queue_timeout() -> None:
    """Nobody releases: the waiter leaves the queue after its timeout, refused queue_timeout."""
    guard = IngressGuard(1, 1000.0, queue_max=1, queue_timeout=0.05)
    holder = guard.acquire()
    with pytest.raises(ss.IngressRejected) as info:
        guard.acquire()
    assert info.value.reason == c.REJECT_QUEUE_TIMEOUT
    assert guard.queued == 0 and guard.in_flight == 1
    holder.release()
    guard.acquire().release()  # the slot was not lost
    assert guard.in_flight == 0


def test_without_a_queue_the_refusal_stays_immediate() -> None:
    """No queue configured: the cap refuses at once with concurrency, as before."""
    guard = IngressGuard(1, 1000.0)
    holder = guard.acquire()
    assert holder.queued == 0.0
    with pytest.raises(ss.IngressRejected) as info:
        guard.acquire()
    assert info.value.reason == c.REJECT_CONCURRENCY
    holder.release()


async def test_tasks_and_threads_share_one_fifo() -> None:
    """A task and a thread queue behind one holder; the slot goes oldest first, and a task
    cancelled while waiting gives its place up without losing a slot."""
    guard = IngressGuard(1, 1000.0, queue_max=3, queue_timeout=LONG)
    order: list[str] = []
    holder = guard.acquire()

    async def task_acquire(name: str) -> IngressTicket:
        ticket = await guard.acquire_async()
        order.append(name)
        return ticket

    task = asyncio.ensure_future(task_acquire("task"))
    await asyncio.to_thread(wait_for, lambda: guard.queued == 1, "the task to queue")
    cancelled = asyncio.ensure_future(task_acquire("cancelled"))
    await asyncio.to_thread(wait_for, lambda: guard.queued == 2, "the second task to queue")
    thread = await asyncio.to_thread(queue_in, guard, order, "thread")
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert guard.queued == 2
    holder.release()
    ticket = await asyncio.wait_for(task, 30)
    assert order == ["task"]
    ticket.release()
    await asyncio.to_thread(thread.join, 30)
    assert order == ["task", "thread"]
    assert thread.ticket is not None
    thread.ticket.release()
    assert guard.in_flight == 0 and guard.queued == 0


def test_queued_stream_counts_its_wait_as_phase_and_in_ttft() -> None:
    """A stream that waited shows stream_phase_duration_ms{phase="queue"}, and its time to
    first token includes that wait; a full queue counts stream_rejected_total{queue_full}."""
    registry = CollectorRegistry()
    spec = ss.Spec.model_validate(
        {
            "version": 1,
            "service": "q",
            "stream": {"ingress": {"max_concurrent": 1, "queue": {"max": 1, "timeout": "60s"}}},
        }
    )
    monitor = ss.StreamMonitor(spec, registry=registry)
    holder = monitor.ingress.acquire()
    done = threading.Event()

    def run_stream() -> None:
        for _ in monitor.stream(lambda checkpoint: list(EVENTS), model="m", provider="p"):
            pass
        done.set()

    thread = threading.Thread(target=run_stream, daemon=True)
    thread.start()
    wait_for(lambda: monitor.ingress.queued == 1, "the stream to queue")
    with pytest.raises(ss.IngressRejected):
        for _ in monitor.stream(lambda checkpoint: list(EVENTS), model="m", provider="p"):
            pass
    # Hold the slot until the waiter's clock has certainly moved, then free it.
    start = time.monotonic()
    wait_for(lambda: time.monotonic() > start + 0.01, "the clock to move")
    holder.release()
    assert done.wait(30)
    labels = {"service": "q", "model": "m", "provider": "p"}

    def sample(name: str, **extra: str) -> float:
        return registry.get_sample_value(name, {**labels, **extra}) or 0.0

    queue_ms = sample("stream_phase_duration_ms_sum", phase=c.PHASE_QUEUE)
    assert sample("stream_phase_duration_ms_count", phase=c.PHASE_QUEUE) == 1
    assert queue_ms > 0
    assert sample("stream_first_token_latency_ms_sum") >= queue_ms
    assert sample("stream_rejected_total", reason=c.REJECT_QUEUE_FULL) == 1
    assert sample("stream_requests_total", outcome=c.OUTCOME_OK) == 1


def test_shared_guard_queues_before_asking_redis() -> None:
    """With shared limits the per-process cap queues the same way, then Redis decides."""
    with RedisServer() as server:
        store = SharedStore(server.url, timeout=1.0)
        guard = SharedIngressGuard(
            1, 1000.0, store=store, service="q", queue_max=1, queue_timeout=LONG
        )
        order: list[str] = []
        holder = guard.acquire()
        waiter = queue_in(guard, order, "waiter")
        holder.release()
        waiter.join(timeout=30)
        assert order == ["waiter"] and waiter.ticket is not None
        assert waiter.ticket.queued is not None
        waiter.ticket.release()
        assert guard.in_flight == 0 and store.fallbacks[c.LIMIT_RATE] == 0
        store.close()
