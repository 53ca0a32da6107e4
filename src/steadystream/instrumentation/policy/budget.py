"""A retry budget shared by every stream of a monitor: the guard against retry storms.

Per-request retry limits (``max_retries``) do not stop a storm: when the upstream is down, every
stream retries its allowance and the load on the struggling upstream multiplies by
``1 + max_retries``. A budget caps retries across all streams instead, as gRPC retry throttling,
Envoy's ``retry_budget`` and Finagle's ``RetryBudget`` do:

* every new logical request *deposits* ``ratio`` tokens (``spec.stream.retry.budget``, 20 % by
  default), so retries can be at most that share of requests;
* a floor refills at ``min_per_second`` tokens per second, up to ``min_per_second * ttl``, so a
  service with little traffic can still retry at all;
* every retry *withdraws* one token; with less than one token left the retry is refused and the
  stream fails fast with :class:`~steadystream.RetryBudgetExhausted`.

Deposits expire as in Finagle (whose deposits live ``ttl`` seconds): here they decay
exponentially with time constant ``ttl``, which needs O(1) memory. Decay and the floor only ever
*reduce* what a burst may spend, so the invariant the storm test checks holds whatever the clock
does::

    retries <= ratio * requests + min_per_second * (ttl + elapsed seconds)

All state sits behind one :class:`threading.Lock` held for a few arithmetic operations and never
across an ``await``, so the budget is safe to share between threads and between asyncio tasks.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...spec.model import Retry

__all__ = ["DEFAULT_TTL", "BudgetStats", "RetryBudget"]

#: Seconds a deposit stays (Finagle's default ``ttl``); also sizes the floor's reserve.
DEFAULT_TTL = 10.0

# Float dust from decay must not refuse a retry that whole deposits paid for.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class BudgetStats:
    """Counts since the budget was created: requests deposited, retries granted and refused."""

    requests: int
    retries: int
    refused: int
    balance: float


class RetryBudget:
    """Token bucket limiting retries to ``ratio`` of requests plus a floor of ``min_per_second``.

    >>> budget = RetryBudget(ratio=0.2, min_per_second=0.0, clock=lambda: 0.0)
    >>> for _ in range(10):
    ...     budget.deposit()
    >>> [budget.try_withdraw() for _ in range(3)]
    [True, True, False]
    """

    def __init__(
        self,
        ratio: float,
        min_per_second: float,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ratio < 0 or min_per_second < 0:
            raise ValueError("ratio and min_per_second must not be negative")
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.ratio = float(ratio)
        self.min_per_second = float(min_per_second)
        self.ttl = float(ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._reserve_cap = self.min_per_second * self.ttl
        self._reserve = self._reserve_cap  # the floor starts full: a cold service may retry
        self._earned = 0.0
        self._last = clock()
        self._requests = 0
        self._retries = 0
        self._refused = 0

    @classmethod
    def from_spec(
        cls, retry: Retry, *, ttl: float = DEFAULT_TTL, clock: Callable[[], float] | None = None
    ) -> RetryBudget:
        """The budget ``spec.stream.retry`` describes (``budget`` and ``min_per_second``)."""
        return cls(
            retry.budget,
            retry.min_per_second,
            ttl=ttl,
            clock=clock if clock is not None else time.monotonic,
        )

    def _advance(self) -> None:
        now = self._clock()
        elapsed = now - self._last
        if elapsed <= 0:
            # A clock that stands still (tests) or steps back: no refill, no decay.
            return
        self._last = now
        self._reserve = min(self._reserve_cap, self._reserve + elapsed * self.min_per_second)
        self._earned *= math.exp(-elapsed / self.ttl)

    def deposit(self) -> None:
        """Record one new logical request (never a retry): adds ``ratio`` tokens."""
        with self._lock:
            self._advance()
            self._requests += 1
            self._earned += self.ratio

    def try_withdraw(self) -> bool:
        """Take one token for a retry. ``False`` means the budget is spent: fail fast."""
        with self._lock:
            self._advance()
            if self._earned + self._reserve + _EPSILON < 1.0:
                self._refused += 1
                return False
            # Spend earned tokens first so the floor stays for quiet periods.
            take = min(1.0, self._earned)
            self._earned -= take
            self._reserve = max(0.0, self._reserve - (1.0 - take))
            self._retries += 1
            return True

    async def deposit_async(self) -> None:
        """:meth:`deposit` for async callers (a shared budget awaits its store here)."""
        self.deposit()

    async def try_withdraw_async(self) -> bool:
        """:meth:`try_withdraw` for async callers (a shared budget awaits its store here)."""
        return self.try_withdraw()

    @property
    def balance(self) -> float:
        """Tokens available now (retries that would be granted, fractional)."""
        with self._lock:
            self._advance()
            return self._earned + self._reserve

    def stats(self) -> BudgetStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            self._advance()
            return BudgetStats(
                self._requests, self._retries, self._refused, self._earned + self._reserve
            )
