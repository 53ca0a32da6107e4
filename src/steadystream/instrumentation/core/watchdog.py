"""Deadline enforcement for the shells: a watchdog thread (sync) and a lazy loop timer (async).

A blocked synchronous read can only be interrupted from outside, by closing what it reads from.
:class:`Watchdog` is one daemon thread per monitor, sleeping until the earliest stream deadline.
When a stream is still waiting on its upstream past the deadline, the watchdog marks the core
expired and interrupts the read: it shuts the socket down when the upstream exposes one (the
openai SDK's ``Stream``, httpx / httpx2 responses), which makes the blocked ``recv`` return at
once; otherwise it calls the upstream's ``close()``. The reading thread then sees the expired
core and raises the timeout (with the checkpoint) instead of whatever the interrupted read
produced. If an upstream offers neither, the timeout is raised when the blocked read returns.

Both mechanisms are lazy: a stream has at most one pending look, and the timer re-arms itself
at the new deadline when it wakes early, so the per-chunk cost is a float comparison rather than
a timer per chunk. Deadlines usually move later (each content chunk pushes the idle deadline
out), but not always: with ``first_token`` longer than ``stream_idle`` (reasoning models), the
idle deadline after the first content comes *before* the first-token deadline the stream was
armed at. The shells therefore compare the core's deadline with the time they are armed at
before every wait and re-arm when it is earlier; :meth:`Watchdog.watch` replaces a later
pending look with the earlier one (the later one is dropped when it comes up). A stream that
ends calls :meth:`Watchdog.unwatch`, so the watchdog holds nothing for finished streams (ten
thousand fast streams used to leave thousands of looks behind, each until its deadline).

Lag. A process past its event-loop knee runs its own work late: a first-token or idle deadline
then runs out while the item it waited for sits unread in a socket buffer, and the upstream gets
the blame. :class:`LagMeter` measures how late the process runs: :func:`loop_lag` gives each
asyncio loop one light ticker (one timer every :data:`TICK` seconds, started lazily by the first
async stream that needs it, never a task per stream), and the :class:`Watchdog` measures how late
its thread wakes against the deadline it slept for. :class:`LagExcuse` applies the rule, at the
moment a deadline is found passed (see ``docs/instrumentation.md``, "Overload"):

* the process was *lagging* at that moment when the largest lag measured in the last
  :data:`RECENT` seconds, or how late the meter's own pending tick is right now, reaches the
  threshold ``stream.ingress.overload.lag``;
* a first-token or idle deadline found passed while lagging is not a timeout yet: the deadline
  moves out by the lag measured (at least the threshold), so the item is read if it is in fact
  there. The grace of one attempt adds up to at most that deadline's own budget;
* past that grace, still lagging (a lag of the threshold measured during the grace), the
  attempt ends in :class:`~..errors.LagTimeout`
  (``error_class="process_lag"``), which is not retried; not lagging, it is an ordinary
  first-token or idle timeout. The total deadline never moves.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import itertools
import logging
import math
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from types import AsyncGeneratorType, CoroutineType, GeneratorType
from typing import Any, Protocol

from ... import conventions as c

__all__ = [
    "RECENT",
    "TICK",
    "LagExcuse",
    "LagMeter",
    "Watchdog",
    "driving_task",
    "find_socket",
    "interrupt_upstream",
    "loop_lag",
]

log = logging.getLogger("steadystream.watchdog")

_INF = float("inf")


class _Watched(Protocol):
    def watchdog_check(self, now: float) -> float | None:
        """Return the next time to look again, or None when done with this stream."""

    @property
    def finished(self) -> bool:
        """True once the stream ended (its pending look can be dropped)."""


def find_socket(upstream: Any) -> socket.socket | None:
    """The socket under an openai ``Stream`` / httpx(2) ``Response``, by duck typing."""
    for obj in (upstream, getattr(upstream, "response", None)):
        ext = getattr(obj, "extensions", None)
        if not isinstance(ext, dict):
            continue
        ns = ext.get("network_stream")
        get = getattr(ns, "get_extra_info", None)
        if get is None:
            continue
        try:
            sock = get("socket")
        except Exception:
            continue
        if isinstance(sock, socket.socket):
            return sock
    return None


def interrupt_upstream(upstream: Any) -> None:
    """Make a read blocked on ``upstream`` in another thread return now (best effort)."""
    sock = find_socket(upstream)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
            return
        except OSError:
            pass
    close = getattr(upstream, "close", None)
    if callable(close):
        try:
            close()
        except Exception:
            # A generator that is executing cannot be closed from another thread; the timeout
            # will be raised when its read returns.
            log.debug("could not close upstream from the watchdog", exc_info=True)


#: Awaitables followed from a task's coroutine when looking for a generator it drives.
_AWAIT_CHAIN = 64


def _drives(task: asyncio.Task[Any], agen: Any) -> bool:
    """Whether ``agen`` (an async generator) is in the chain of awaits of ``task``."""
    todo: list[Any] = [task.get_coro()]
    seen = 0
    while todo and seen < _AWAIT_CHAIN:
        obj = todo.pop()
        seen += 1
        if obj is agen:
            return True
        if isinstance(obj, CoroutineType):
            nxt = obj.cr_await
        elif isinstance(obj, AsyncGeneratorType):
            nxt = obj.ag_await
        elif isinstance(obj, GeneratorType):
            nxt = obj.gi_yieldfrom
        elif isinstance(obj, asyncio.Future):
            continue  # another task or future: not this task's own chain
        else:
            # An awaitable made in C (an async generator's ``asend``, ``anext()``'s wrapper,
            # a coroutine's ``__await__`` iterator): it exposes what it drives only to the
            # collector. Follow the referents that can drive something in turn: async
            # generators, and whatever can be sent to (coroutines, generators, C awaitables).
            todo.extend(
                r
                for r in gc.get_referents(obj)
                if isinstance(r, AsyncGeneratorType) or hasattr(type(r), "send")
            )
            continue
        if nxt is not None:
            todo.append(nxt)
    return False


def driving_task(
    agen: Any, hint: asyncio.Task[Any] | None, loop: asyncio.AbstractEventLoop
) -> asyncio.Task[Any] | None:
    """The task whose awaits run through ``agen`` now (the task a timeout of the stream it
    reads must cancel), or None. Asked only when a deadline has passed, so the per-item loop
    never notes its task: ``hint`` (the task that started the generator, or the one found
    last time) is tried first, then every task of the loop, since a stream opened in one task
    can be read on in another."""
    if hint is not None and not hint.done() and _drives(hint, agen):
        return hint
    for task in asyncio.all_tasks(loop):
        if task is not hint and _drives(task, agen):
            return task
    log.warning(
        "a stream's deadline passed, but no task of the loop is found awaiting it; "
        "the timeout is raised when its next item arrives"
    )
    return None


#: Seconds between two ticks of a loop's lag meter.
TICK = 0.1
#: Seconds of lag samples that say whether the process is lagging now.
RECENT = 1.0
#: Time constant (seconds) of the smoothed lag that decides shedding at ingress.
SMOOTHING = 1.0


class LagMeter:
    """How late one event loop (or one watchdog thread) runs its own work.

    :meth:`record` takes one lateness sample (seconds, at the meter's clock). :meth:`recent` is
    the largest sample of the last :data:`RECENT` seconds, or how late the pending tick is now
    when that is more (a loop stuck in one long iteration has not run its tick yet);
    :meth:`smoothed` is an exponential average over time (time constant :data:`SMOOTHING`),
    where a sample weighs as much as the stall it measured: one stall counts for its length, a
    sustained lag builds up, quiet time decays it. Listeners (``on_sample``)
    get every sample in milliseconds, for ``stream_event_loop_lag_ms``; they run on the thread
    that measured and their exceptions are logged and swallowed.
    """

    def __init__(self, source: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self._clock = clock
        self._samples: deque[tuple[float, float]] = deque(maxlen=256)
        self._smoothed = 0.0
        self._last = clock()
        #: When the next sample is due (``inf``: none pending).
        self.due = math.inf
        # Bound methods are held weakly: a meter (one per loop) must not keep monitors alive.
        self._listeners: list[Any] = []

    def on_sample(self, listener: Callable[[str, float], None]) -> None:
        """Call ``listener(source, lag_ms)`` for every sample (once per listener; a bound
        method is held weakly and dropped with its object)."""
        ref: Any = (
            weakref.WeakMethod(listener) if hasattr(listener, "__self__") else lambda: listener
        )
        for known in self._listeners:
            if known() == listener:
                return
        self._listeners.append(ref)

    def record(self, lag: float, t: float | None = None) -> None:
        """One sample: the work due at ``t - lag`` ran at ``t``."""
        now = self._clock() if t is None else t
        lag = max(0.0, lag)
        dt = max(0.0, now - self._last)
        # A sample stands for the stall it measured (and one tick), not for a quiet time
        # before it: that time decays the average, so a watchdog that sleeps long between
        # deadlines does not let one late wake-up count for the whole sleep.
        span = min(dt, lag + TICK)
        self._smoothed *= math.exp(-(dt - span) / SMOOTHING)
        self._smoothed += (lag - self._smoothed) * (1.0 - math.exp(-span / SMOOTHING))
        self._last = now
        self._samples.append((now, lag))
        dead = False
        for ref in tuple(self._listeners):
            listener = ref()
            if listener is None:
                dead = True
                continue
            try:
                listener(self.source, lag * 1000.0)
            except Exception:
                log.exception("steadystream: lag listener failed (ignored)")
        if dead:
            self._listeners = [ref for ref in self._listeners if ref() is not None]

    def overdue(self, now: float | None = None) -> float:
        """How late the pending tick is now (0 when it is not due yet)."""
        now = self._clock() if now is None else now
        return max(0.0, now - self.due)

    def now(self) -> float:
        """The meter's clock (a loop's meter reads the loop's)."""
        return self._clock()

    def recent(self, now: float | None = None) -> float:
        """The lag that says whether the process is lagging now (seconds)."""
        now = self._clock() if now is None else now
        return self.worst_since(now - RECENT, now)

    def worst_since(self, since: float, now: float | None = None) -> float:
        """The largest lag recorded at or after ``since``, or how late the pending tick is
        ``now`` when that is more (seconds)."""
        now = self._clock() if now is None else now
        worst = self.overdue(now)
        # A copy taken in one step: the watchdog thread may append while a reader asks.
        for t, lag in reversed(tuple(self._samples)):
            if t < since:
                break
            if lag > worst:
                worst = lag
        return worst

    def smoothed(self, now: float | None = None) -> float:
        """The lag averaged over time (seconds), decayed to ``now`` (and raised by an overdue
        tick), for decisions that must not flap on one stall."""
        now = self._clock() if now is None else now
        dt = max(0.0, now - self._last)
        value = self._smoothed * math.exp(-dt / SMOOTHING)
        late = self.overdue(now)
        if late > 0:
            # The tick that will report this stall has not run: count the stall so far.
            value += (late - value) * (1.0 - math.exp(-late / SMOOTHING))
        return value


class _LoopTicker:
    """The per-loop tick that feeds a :class:`LagMeter`: one timer, re-armed by itself."""

    __slots__ = ("loop", "meter")

    def __init__(self, loop: asyncio.AbstractEventLoop, meter: LagMeter) -> None:
        self.loop = loop
        self.meter = meter

    def start(self) -> None:
        self.meter.due = self.loop.time() + TICK
        self.loop.call_at(self.meter.due, self.tick)

    def tick(self) -> None:
        now = self.loop.time()
        self.meter.record(now - self.meter.due, now)
        if self.loop.is_closed():
            return
        self.meter.due = now + TICK
        self.loop.call_at(self.meter.due, self.tick)


_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LagMeter] = weakref.WeakKeyDictionary()
_LOOPS_LOCK = threading.Lock()


def loop_lag(loop: asyncio.AbstractEventLoop | None = None) -> LagMeter:
    """The lag meter of ``loop`` (default: the running loop), started on first use: one timer
    per loop, whatever the number of streams. Its clock is the loop's."""
    if loop is None:
        loop = asyncio.get_running_loop()
    meter = _LOOPS.get(loop)
    if meter is not None:
        return meter
    with _LOOPS_LOCK:
        meter = _LOOPS.get(loop)
        if meter is None:
            meter = LagMeter(c.LAG_SOURCE_LOOP, loop.time)
            _LoopTicker(loop, meter).start()
            _LOOPS[loop] = meter
    return meter


class LagExcuse:
    """The lag rule of one attempt (see the module docstring): asked by the core when one of
    its deadlines is found passed.

    ``meter`` says how late the process runs; ``threshold`` is
    ``stream.ingress.overload.lag``; ``budgets`` maps a deadline phase to its budget, the most
    grace one attempt may get for it (phases not in it, ``total``, get none).
    """

    __slots__ = ("budgets", "granted", "meter", "since", "threshold")

    def __init__(self, meter: LagMeter, threshold: float, budgets: dict[str, float]) -> None:
        self.meter = meter
        self.threshold = threshold
        self.budgets = budgets
        #: Grace given so far in this attempt, seconds.
        self.granted = 0.0
        #: When the last grace began (the meter's clock).
        self.since = 0.0

    def new_attempt(self) -> None:
        """An attempt starts: its grace is fresh."""
        self.granted = 0.0

    def lagging(self) -> float | None:
        """The lag measured now when it reaches the threshold (the process is lagging), else
        ``None``; for failures other than deadlines (a connect timeout fired late)."""
        lag = self.meter.recent()
        return lag if lag >= self.threshold else None

    def __call__(self, phase: str) -> tuple[float, float] | None:
        """The deadline of ``phase`` passed: ``None`` when the process is not lagging (an
        ordinary timeout), else ``(grace, lag)``: move the deadline out by ``grace`` seconds,
        or, when ``grace`` is 0, end the attempt with a lag-caused timeout."""
        budget = self.budgets.get(phase)
        if budget is None:
            return None
        now = self.meter.now()
        # The first look reads the last second; after a grace, only what happened during it
        # (a stall the grace already covered must not blame the process a second time).
        lag = self.meter.worst_since(self.since, now) if self.granted else self.meter.recent(now)
        if lag < self.threshold:
            return None
        grace = min(max(lag, self.threshold), budget - self.granted)
        if grace <= 0:
            return 0.0, lag
        self.granted += grace
        self.since = now
        return grace, lag


class Watchdog:
    """One daemon thread enforcing the deadlines of every sync stream of a monitor.

    ``lag`` measures how late the thread wakes against the deadlines it sleeps for (source
    ``watchdog``): a thread starved of the CPU or the GIL wakes late, and so do the threads
    reading the streams."""

    def __init__(self, clock: Callable[[], float], name: str = "steadystream-watchdog") -> None:
        self._clock = clock
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, weakref.ref[Any]]] = []
        # The one pending look per stream; heap entries that no longer match it are stale.
        self._due: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        # Heap entries known to be useless (replaced by an earlier look, or of a finished
        # stream); when they are half the heap, it is swept (amortised O(1) per stream).
        self._stale = 0
        # When the thread's current wait ends (-inf: it is not waiting, and reads the heap
        # before it waits again). A new look earlier than this wakes it; a later one waits
        # for that wake-up, so a stream opened behind others costs no thread switch.
        self._wake_at = -math.inf
        #: How late this thread wakes against its deadlines.
        self.lag = LagMeter(c.LAG_SOURCE_WATCHDOG, clock)

    def watch(self, stream: _Watched, at: float) -> None:
        """Look at ``stream`` at time ``at`` (the monitor's clock); it stays watched until its
        ``watchdog_check`` returns None. A stream has one pending look: an earlier ``at``
        replaces it, a later one is ignored (the pending look will say when to look again)."""
        with self._cond:
            due = self._due.get(stream)
            if due is not None and due <= at:
                return
            if due is not None:
                self._stale += 1  # the later look stays in the heap until swept or due
            self._due[stream] = at
            heapq.heappush(self._heap, (at, next(self._seq), weakref.ref(stream)))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif at < self._wake_at:
                self._cond.notify()

    def unwatch(self, stream: _Watched) -> None:
        """``stream`` ended: drop its pending look now rather than at its deadline.

        Safe from any thread and from a finaliser: when the lock is busy (or held by this very
        thread, when garbage collection runs a finaliser inside the watchdog), the look is
        only counted as stale and swept later; it is harmless until then (a finished stream's
        check returns None).
        """
        if not self._cond.acquire(blocking=False):
            self._stale += 1
            return
        try:
            if self._due.pop(stream, None) is not None:
                self._stale += 1
            if self._stale and self._stale * 2 >= len(self._heap):
                self._sweep()
        finally:
            self._cond.release()

    def _sweep(self) -> None:
        # Under the lock: keep only the pending look of each live, unfinished stream.
        kept = []
        stream: Any = None
        for entry in self._heap:
            stream = entry[2]()
            if stream is None or self._due.get(stream) != entry[0]:
                continue
            if stream.finished:
                del self._due[stream]
                continue
            kept.append(entry)
        del stream
        heapq.heapify(kept)
        self._heap = kept
        self._stale = 0

    def pending(self) -> int:
        """Looks scheduled (heap entries, stale ones included): what the watchdog holds."""
        with self._cond:
            return len(self._heap)

    def due(self, stream: _Watched) -> float | None:
        """When ``stream`` will next be looked at (``None``: not watched)."""
        with self._cond:
            return self._due.get(stream)

    def wake(self) -> None:
        """Re-read the clock now (for an injected clock that jumped forward)."""
        with self._cond:
            self._cond.notify()

    def _wait(self, timeout: float, until: float) -> bool:
        """Wait (under the lock) until notified or ``timeout`` seconds pass, which is ``until``
        on the clock; True if notified."""
        self._wake_at = until
        try:
            return self._cond.wait(timeout=timeout)
        finally:
            self._wake_at = -math.inf

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._heap:
                        # Idle: keep the thread a while, then let it end (restarted on demand).
                        # No tick is pending: the look it waited for may have been swept away
                        # (its stream ended), and a due time left behind would read as a stall
                        # growing for as long as the monitor stays idle.
                        self.lag.due = math.inf
                        if not self._wait(30.0, self._clock() + 30.0) and not self._heap:
                            self._thread = None
                            return
                        continue
                    at = self._heap[0][0]
                    now = self._clock()
                    delay = at - now
                    if delay <= 0:
                        self.lag.due = math.inf
                        self.lag.record(-delay)
                        _, _, ref = heapq.heappop(self._heap)
                        stream = ref()
                        if stream is not None and self._due.get(stream) == at:
                            del self._due[stream]
                            break
                        # Collected, or replaced by an earlier look (no strong reference kept
                        # while waiting: an abandoned wrapper must stay collectable).
                        stream = None
                        continue
                    self.lag.due = at
                    self._wait(min(delay, 60.0), min(at, now + 60.0))
            try:
                again = stream.watchdog_check(self._clock())
            except Exception:
                log.exception("watchdog check failed; the stream is no longer watched")
                again = None
            if again is not None and again < _INF:
                self.watch(stream, again)
            del stream
