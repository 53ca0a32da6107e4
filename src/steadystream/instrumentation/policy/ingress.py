"""Ingress: a concurrency cap, an optional admission queue and a rate limit in front of a
monitor's streams.

A streaming gateway that queues excess work without bound turns a load spike into a timeout
cascade: every queued stream waits, times out, retries, and the queue grows. The guard sheds
load at the door instead, with a clear retryable error (:class:`~steadystream.IngressRejected`
and its ``reason``), so the caller's load balancer or client can go elsewhere or back off:

* at most ``spec.stream.ingress.max_concurrent`` streams open at the same time. With
  ``ingress.queue: {max, timeout}``, a stream that finds every slot taken waits for one in a
  bounded FIFO, at most ``timeout``: a freed slot goes to the oldest waiter. A full queue
  refuses at once (``queue_full``), a wait that runs out refuses then (``queue_timeout``);
  without a queue the refusal is immediate (``concurrency``);
* new streams admitted by a token bucket of ``rate`` per second holding up to ``burst`` tokens
  (one second of ``rate`` by default): ``rate``;
* while this process itself lags (``ingress.overload``), new streams are shed before anything
  else (``overloaded``, with a ``retry_after`` hint), so the streams already admitted keep
  their deadlines. Lagging is the smoothed lag of the event loop the stream is admitted on
  (:func:`~..core.watchdog.loop_lag`, started by the first async admission), or for a thread
  the monitor's watchdog lateness (:meth:`IngressGuard.watch_lag`), reaching
  ``overload.lag``; shedding stops once it falls below half of that (hysteresis, so the guard
  does not flap on every tick).

A stream holds an :class:`IngressTicket` from admission to its end; releasing is idempotent, so
every exit path (exhaustion, error, ``close()``, cancellation, garbage collection) may call it.
The concurrency check comes first and a stream refused for concurrency does not spend a rate
token. The ticket's ``queued`` is the time spent waiting (0 without a wait): the monitor
reports it as ``stream_phase_duration_ms{phase="queue"}`` and counts it in the time to first
token. ``on_reject(reason)`` and ``on_in_flight(delta)`` let the monitor count
``stream_rejected_total{reason}`` and move the ``stream_in_flight`` gauge; exceptions they raise
are logged and swallowed, because telemetry never breaks the stream.

Guarded by one :class:`threading.Lock` never held while waiting, so one guard serves threads
and asyncio tasks alike: a thread waits on an event, a task on a future of its own loop, and
both queue in the same FIFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from ... import conventions as c
from ..core.watchdog import LagMeter, loop_lag
from ..errors import IngressRejected

if TYPE_CHECKING:
    from types import TracebackType

    from ...spec.model import Ingress

__all__ = ["IngressGuard", "IngressTicket"]

log = logging.getLogger(__name__)


class IngressTicket:
    """Admission of one stream; :meth:`release` (or leaving the ``with`` block) frees its slot."""

    __slots__ = ("_guard", "_released", "lease", "queued")

    def __init__(self, guard: IngressGuard, lease: str | None = None, queued: float = 0.0) -> None:
        self._guard = guard
        self._released = False
        #: The cluster-wide slot this stream holds (a shared guard's lease id), if any.
        self.lease = lease
        #: Seconds the stream waited in the admission queue (0 when it found a slot free).
        self.queued = queued

    @property
    def released(self) -> bool:
        """True once the slot was given back."""
        return self._released

    def release(self) -> None:
        """Give the slot back. Safe to call any number of times, from any exit path."""
        if self._released:
            return
        self._released = True
        self._guard._release(self)

    def __enter__(self) -> IngressTicket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


_WAITING, _GRANTED, _GONE = 0, 1, 2


class _Waiter:
    """A stream waiting for a slot: a thread (an event) or a task (a future on its loop)."""

    __slots__ = ("event", "future", "loop", "state")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.state = _WAITING
        self.loop = loop
        self.event = threading.Event() if loop is None else None
        self.future: asyncio.Future[None] | None = None if loop is None else loop.create_future()

    def wake(self) -> bool:
        """Tell the waiter it holds a slot; False when it can no longer hear it."""
        if self.event is not None:
            self.event.set()
            return True
        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(_resolve, self.future)
        except RuntimeError:  # its loop is closed
            return False
        return True


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class IngressGuard:
    """Admit or reject new streams: ``max_concurrent`` open at once, ``rate`` per second.

    >>> clock = lambda: 0.0
    >>> guard = IngressGuard(max_concurrent=2, rate=100.0, burst=3, clock=clock)
    >>> a, b = guard.acquire(), guard.acquire()
    >>> guard.acquire()
    Traceback (most recent call last):
    ...
    steadystream...IngressRejected: too many concurrent streams (2 open, limit 2)
    >>> a.release(); c = guard.acquire()
    >>> b.release(); c.release(); guard.acquire()
    Traceback (most recent call last):
    ...
    steadystream...IngressRejected: over the stream rate limit (100/s, burst 3)
    """

    def __init__(
        self,
        max_concurrent: int,
        rate: float,
        burst: int | None = None,
        *,
        queue_max: int = 0,
        queue_timeout: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        on_reject: Callable[[str], None] | None = None,
        on_in_flight: Callable[[int], None] | None = None,
        shed_lag: float | None = 0.5,
        shed_retry_after: float = 1.0,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        if not rate > 0:
            raise ValueError("rate must be positive")
        if queue_max < 0 or (queue_max and not queue_timeout > 0):
            raise ValueError("queue_max must not be negative, and a queue needs a timeout")
        #: Streams that may wait for a slot at once (0: no queue, refuse at once).
        self.queue_max = int(queue_max)
        #: Longest wait for a slot, in seconds.
        self.queue_timeout = float(queue_timeout)
        self._waiters: deque[_Waiter] = deque()
        self.max_concurrent = int(max_concurrent)
        self.rate = float(rate)
        self.burst = int(burst) if burst is not None else max(1, math.ceil(rate))
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        self._clock = clock
        self._on_reject = on_reject
        self._on_in_flight = on_in_flight
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._last = clock()
        self._in_flight = 0
        self._rejected = {reason: 0 for reason in c.REJECT_REASONS}
        #: Shed new streams while the process lags this much (seconds; ``None``: never).
        self.shed_lag = shed_lag if shed_lag and shed_lag > 0 else None
        #: The retry-after hint of an ``overloaded`` rejection, seconds.
        self.shed_retry_after = float(shed_retry_after)
        self._sync_lag: LagMeter | None = None
        # Per meter (one per event loop, one per watchdog): shedding now? (the hysteresis)
        self._shedding: weakref.WeakKeyDictionary[LagMeter, bool] = weakref.WeakKeyDictionary()

    @classmethod
    def from_spec(
        cls,
        ingress: Ingress,
        *,
        clock: Callable[[], float] | None = None,
        on_reject: Callable[[str], None] | None = None,
        on_in_flight: Callable[[int], None] | None = None,
    ) -> IngressGuard:
        """The guard ``spec.stream.ingress`` describes."""
        queue = ingress.queue
        overload = ingress.overload
        return cls(
            ingress.max_concurrent,
            ingress.rate,
            ingress.burst,
            queue_max=queue.max if queue is not None else 0,
            queue_timeout=queue.timeout if queue is not None else 0.0,
            clock=clock if clock is not None else time.monotonic,
            on_reject=on_reject,
            on_in_flight=on_in_flight,
            shed_lag=overload.lag if overload.shed else None,
            shed_retry_after=overload.retry_after,
        )

    def watch_lag(self, meter: LagMeter) -> None:
        """Shed sync admissions while ``meter`` (the monitor's watchdog lateness) says the
        process lags; async admissions read their own loop's meter."""
        self._sync_lag = meter

    def overloaded(self, meter: LagMeter) -> bool:
        """Whether admissions measured by ``meter`` are shed now (with hysteresis: on at
        ``shed_lag`` of smoothed lag, off below half of it)."""
        if self.shed_lag is None:
            return False
        lag = meter.smoothed()
        with self._lock:
            on = self._shedding.get(meter, False)
            on = lag >= self.shed_lag / 2 if on else lag >= self.shed_lag
            self._shedding[meter] = on
        return on

    @property
    def in_flight(self) -> int:
        """Streams admitted and not yet released."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """Streams waiting in the admission queue now."""
        with self._lock:
            return sum(1 for w in self._waiters if w.state == _WAITING)

    def rejected(self, reason: str) -> int:
        """Streams rejected so far for ``reason`` (conventions.REJECT_REASONS)."""
        return self._rejected[reason]

    def acquire(self) -> IngressTicket:
        """Admit one stream, waiting in the queue (if any) for a slot, or raise
        :class:`~steadystream.IngressRejected`."""
        queued = self._slot()
        with self._lock:
            reason, message = self._take_token()
        if reason is not None:
            self._give_back()
            self._refuse(reason, message)
        self._notify(self._on_in_flight, 1)
        return IngressTicket(self, queued=queued)

    async def acquire_async(self) -> IngressTicket:
        """:meth:`acquire` for async callers: a queued stream awaits its slot (and a shared
        guard, :mod:`.shared`, its store) instead of blocking the event loop."""
        queued = await self._slot_async()
        with self._lock:
            reason, message = self._take_token()
        if reason is not None:
            self._give_back()
            self._refuse(reason, message)
        self._notify(self._on_in_flight, 1)
        return IngressTicket(self, queued=queued)

    # ------------------------------------------------------------------ slots and the queue

    def _enter(self, loop: asyncio.AbstractEventLoop | None) -> _Waiter | None:
        """Take a free slot (None) or a place in the queue (the waiter); refuse otherwise."""
        if self.shed_lag is not None:
            meter = loop_lag(loop) if loop is not None else self._sync_lag
            if meter is not None and self.overloaded(meter):
                with self._lock:
                    self._rejected[c.REJECT_OVERLOADED] += 1
                self._notify(self._on_reject, c.REJECT_OVERLOADED)
                raise IngressRejected(
                    f"this process is overloaded (its {meter.source} runs "
                    f"{meter.smoothed() * 1000:.0f} ms late, limit {self.shed_lag * 1000:.0f} ms); "
                    f"retry in {self.shed_retry_after:g}s or on another instance",
                    reason=c.REJECT_OVERLOADED,
                    retry_after=self.shed_retry_after,
                )
        with self._lock:
            if self._in_flight < self.max_concurrent:
                self._in_flight += 1
                return None
            if not self.queue_max:
                reason, message = self._check_concurrency()
            elif len(self._waiters) < self.queue_max:
                waiter = _Waiter(loop)
                self._waiters.append(waiter)
                return waiter
            else:
                reason, message = (
                    c.REJECT_QUEUE_FULL,
                    (
                        f"too many concurrent streams ({self._in_flight} open, limit "
                        f"{self.max_concurrent}) and the admission queue is full "
                        f"({self.queue_max} waiting)"
                    ),
                )
            self._rejected[reason] += 1
        self._notify(self._on_reject, reason)
        raise IngressRejected(message, reason=reason)

    def _leave(self, waiter: _Waiter) -> bool:
        """The wait ended: True when the waiter was given a slot, else it leaves the queue."""
        with self._lock:
            if waiter.state == _GRANTED:
                return True
            waiter.state = _GONE
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            return False

    def _timed_out(self) -> NoReturn:
        self._refuse(
            c.REJECT_QUEUE_TIMEOUT,
            f"no stream slot freed within the admission queue's {self.queue_timeout:g}s "
            f"(limit {self.max_concurrent} open)",
        )

    def _slot(self) -> float:
        """A slot in this process, waiting for one in the queue if there is a queue; returns
        the seconds waited."""
        t0 = self._clock()
        waiter = self._enter(None)
        if waiter is None:
            return 0.0
        assert waiter.event is not None
        waiter.event.wait(self.queue_timeout)
        if not self._leave(waiter):
            self._timed_out()
        return max(0.0, self._clock() - t0)

    async def _slot_async(self) -> float:
        """:meth:`_slot` for a task: it awaits its slot on its own loop."""
        t0 = self._clock()
        waiter = self._enter(asyncio.get_running_loop())
        if waiter is None:
            return 0.0
        assert waiter.future is not None
        try:
            await asyncio.wait_for(waiter.future, self.queue_timeout)
        except TimeoutError:
            pass
        except BaseException:  # cancelled while waiting: a slot it got goes on
            if self._leave(waiter):
                self._give_back()
            raise
        if not self._leave(waiter):
            self._timed_out()
        return max(0.0, self._clock() - t0)

    def _give_back(self) -> None:
        """Free a slot: to the oldest waiter still waiting, else back to the pool."""
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                if waiter.state != _WAITING:
                    continue
                waiter.state = _GRANTED
                if waiter.wake():
                    return
                waiter.state = _GONE
            self._in_flight -= 1

    def _refuse(self, reason: str, message: str) -> NoReturn:
        with self._lock:
            self._rejected[reason] += 1
        self._notify(self._on_reject, reason)
        raise IngressRejected(message, reason=reason)

    def _check_concurrency(self) -> tuple[str, str]:
        """Under the lock: why a stream finds no slot in this process."""
        return c.REJECT_CONCURRENCY, (
            f"too many concurrent streams ({self._in_flight} open, limit {self.max_concurrent})"
        )

    def _take_token(self) -> tuple[str | None, str]:
        """Under the lock: take one token from this process's bucket."""
        now = self._clock()
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
            self._last = now
        if self._tokens < 1.0:
            return (
                c.REJECT_RATE,
                f"over the stream rate limit ({self.rate:g}/s, burst {self.burst})",
            )
        self._tokens -= 1.0
        return None, ""

    def _release(self, ticket: IngressTicket) -> None:
        self._give_back()
        self._notify(self._on_in_flight, -1)

    @staticmethod
    def _notify(callback: Callable[..., None] | None, value: object) -> None:
        if callback is None:
            return
        try:
            callback(value)
        except Exception:
            log.exception("steadystream: ingress telemetry callback failed (ignored)")
