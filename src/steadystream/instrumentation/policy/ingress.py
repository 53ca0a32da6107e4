"""Ingress: a concurrency cap and a rate limit in front of a monitor's streams.

A streaming gateway that queues excess work without bound turns a load spike into a timeout
cascade: every queued stream waits, times out, retries, and the queue grows. The guard sheds
load at the door instead, at once and with a clear retryable error
(:class:`~steadystream.IngressRejected`, ``reason`` ``"concurrency"`` or ``"rate"``), so the
caller's load balancer or client can go elsewhere or back off:

* at most ``spec.stream.ingress.max_concurrent`` streams open at the same time;
* new streams admitted by a token bucket of ``rate`` per second holding up to ``burst`` tokens
  (one second of ``rate`` by default).

A stream holds an :class:`IngressTicket` from admission to its end; releasing is idempotent, so
every exit path (exhaustion, error, ``close()``, cancellation, garbage collection) may call it.
The concurrency check comes first and a stream refused for concurrency does not spend a rate
token. ``on_reject(reason)`` and ``on_in_flight(delta)`` let the monitor count
``stream_rejected_total{reason}`` and move the ``stream_in_flight`` gauge; exceptions they raise
are logged and swallowed, because telemetry never breaks the stream.

Non-blocking and guarded by one :class:`threading.Lock`, so one guard serves threads and asyncio
tasks alike.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ... import conventions as c
from ..errors import IngressRejected

if TYPE_CHECKING:
    from types import TracebackType

    from ...spec.model import Ingress

__all__ = ["IngressGuard", "IngressTicket"]

log = logging.getLogger(__name__)


class IngressTicket:
    """Admission of one stream; :meth:`release` (or leaving the ``with`` block) frees its slot."""

    __slots__ = ("_guard", "_released", "lease")

    def __init__(self, guard: IngressGuard, lease: str | None = None) -> None:
        self._guard = guard
        self._released = False
        #: The cluster-wide slot this stream holds (a shared guard's lease id), if any.
        self.lease = lease

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
        clock: Callable[[], float] = time.monotonic,
        on_reject: Callable[[str], None] | None = None,
        on_in_flight: Callable[[int], None] | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        if not rate > 0:
            raise ValueError("rate must be positive")
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
        return cls(
            ingress.max_concurrent,
            ingress.rate,
            ingress.burst,
            clock=clock if clock is not None else time.monotonic,
            on_reject=on_reject,
            on_in_flight=on_in_flight,
        )

    @property
    def in_flight(self) -> int:
        """Streams admitted and not yet released."""
        return self._in_flight

    def rejected(self, reason: str) -> int:
        """Streams rejected so far for ``reason`` (``"concurrency"`` or ``"rate"``)."""
        return self._rejected[reason]

    def acquire(self) -> IngressTicket:
        """Admit one stream or raise :class:`~steadystream.IngressRejected` at once."""
        with self._lock:
            reason, message = self._admit()
            if reason is None:
                self._in_flight += 1
            else:
                self._rejected[reason] += 1
        if reason is not None:
            self._notify(self._on_reject, reason)
            raise IngressRejected(message, reason=reason)
        self._notify(self._on_in_flight, 1)
        return IngressTicket(self)

    async def acquire_async(self) -> IngressTicket:
        """:meth:`acquire` for async callers. The local guard never waits, so this is the
        same call; a shared guard (:mod:`.shared`) awaits its store here instead of blocking
        the event loop."""
        return self.acquire()

    def _admit(self) -> tuple[str | None, str]:
        reason, message = self._check_concurrency()
        if reason is not None:
            return reason, message
        return self._take_token()

    def _check_concurrency(self) -> tuple[str | None, str]:
        """Under the lock: is there a slot in this process?"""
        if self._in_flight >= self.max_concurrent:
            return c.REJECT_CONCURRENCY, (
                f"too many concurrent streams ({self._in_flight} open, limit {self.max_concurrent})"
            )
        return None, ""

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
        with self._lock:
            self._in_flight -= 1
        self._notify(self._on_in_flight, -1)

    @staticmethod
    def _notify(callback: Callable[..., None] | None, value: object) -> None:
        if callback is None:
            return
        try:
            callback(value)
        except Exception:
            log.exception("steadystream: ingress telemetry callback failed (ignored)")
