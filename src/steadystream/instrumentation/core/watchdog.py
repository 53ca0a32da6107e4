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
"""

from __future__ import annotations

import heapq
import itertools
import logging
import socket
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Watchdog", "find_socket", "interrupt_upstream"]

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


class Watchdog:
    """One daemon thread enforcing the deadlines of every sync stream of a monitor."""

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
            elif self._heap[0][0] == at:
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

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._heap:
                        # Idle: keep the thread a while, then let it end (restarted on demand).
                        if not self._cond.wait(timeout=30.0) and not self._heap:
                            self._thread = None
                            return
                        continue
                    at = self._heap[0][0]
                    delay = at - self._clock()
                    if delay <= 0:
                        _, _, ref = heapq.heappop(self._heap)
                        stream = ref()
                        if stream is not None and self._due.get(stream) == at:
                            del self._due[stream]
                            break
                        # Collected, or replaced by an earlier look (no strong reference kept
                        # while waiting: an abandoned wrapper must stay collectable).
                        stream = None
                        continue
                    self._cond.wait(timeout=min(delay, 60.0))
            try:
                again = stream.watchdog_check(self._clock())
            except Exception:
                log.exception("watchdog check failed; the stream is no longer watched")
                again = None
            if again is not None and again < _INF:
                self.watch(stream, again)
            del stream
