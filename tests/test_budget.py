"""The shared retry budget (token bucket), with an injected clock."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

import steadystream as ss
from steadystream.instrumentation.policy.budget import RetryBudget


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_retries_limited_to_share_of_requests() -> None:
    """Without a floor, 100 requests at 20 % buy exactly 20 retries."""
    budget = RetryBudget(0.2, 0.0, clock=Clock())
    for _ in range(100):
        budget.deposit()
    granted = sum(budget.try_withdraw() for _ in range(50))
    assert granted == 20
    stats = budget.stats()
    assert (stats.requests, stats.retries, stats.refused) == (100, 20, 30)


def test_floor_allows_retries_with_no_traffic() -> None:
    """The floor's reserve (min_per_second x ttl) lets a quiet service retry."""
    budget = RetryBudget(0.2, 1.0, ttl=5.0, clock=Clock())
    assert [budget.try_withdraw() for _ in range(6)] == [True] * 5 + [False]


def test_floor_refills_with_time_but_not_beyond_reserve() -> None:
    """The floor refills at min_per_second and stops at its reserve."""
    clock = Clock()
    budget = RetryBudget(0.0, 2.0, ttl=1.0, clock=clock)
    assert [budget.try_withdraw() for _ in range(3)] == [True, True, False]
    clock.now = 0.5
    assert [budget.try_withdraw() for _ in range(2)] == [True, False]
    clock.now = 100.0
    assert budget.balance == pytest.approx(2.0)


def test_deposits_expire() -> None:
    """Credit earned long ago decays, so a quiet hour does not bank a storm."""
    clock = Clock()
    budget = RetryBudget(0.5, 0.0, ttl=10.0, clock=clock)
    for _ in range(10):
        budget.deposit()
    assert budget.balance == pytest.approx(5.0)
    clock.now = 100.0
    assert budget.balance < 0.01
    assert budget.try_withdraw() is False


def test_clock_stepping_back_changes_nothing() -> None:
    """A clock that goes backwards neither refills nor decays."""
    clock = Clock()
    clock.now = 50.0
    budget = RetryBudget(0.2, 1.0, ttl=2.0, clock=clock)
    budget.deposit()
    before = budget.balance
    clock.now = 10.0
    assert budget.balance == before


def test_from_spec() -> None:
    """The spec's budget share and floor configure the bucket."""
    retry = ss.default_spec("svc").stream.retry
    budget = RetryBudget.from_spec(retry, ttl=10.0, clock=Clock())
    assert (budget.ratio, budget.min_per_second) == (0.2, 1.0)
    assert budget.balance == pytest.approx(10.0)


def test_invalid_arguments() -> None:
    """Negative shares and a zero ttl are programming errors."""
    with pytest.raises(ValueError):
        RetryBudget(-0.1, 0.0)
    with pytest.raises(ValueError):
        RetryBudget(0.1, 0.0, ttl=0.0)


def test_thread_safe_under_contention() -> None:
    """Eight threads hammering one budget never grant more than it holds."""
    budget = RetryBudget(0.25, 0.0, clock=Clock())
    for _ in range(400):
        budget.deposit()
    granted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = sum(budget.try_withdraw() for _ in range(100))
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 100
    assert budget.stats().refused == 700


async def test_shared_between_tasks() -> None:
    """Many asyncio tasks share one budget; the total granted is exact."""
    budget = RetryBudget(0.1, 0.0, clock=Clock())

    async def stream() -> bool:
        budget.deposit()
        await asyncio.sleep(0)
        return budget.try_withdraw()

    results = await asyncio.gather(*(stream() for _ in range(200)))
    assert sum(results) == 20


def test_docstring_example_runs() -> None:
    """The example in RetryBudget's docstring is true."""
    import doctest

    from steadystream.instrumentation.policy import budget

    result = doctest.testmod(budget)
    assert result.attempted > 0 and result.failed == 0


@given(
    ops=st.lists(
        st.one_of(
            st.just("deposit"),
            st.just("withdraw"),
            st.floats(min_value=0.0, max_value=30.0),
        ),
        max_size=300,
    ),
    ratio=st.floats(min_value=0.0, max_value=1.0),
    floor=st.floats(min_value=0.0, max_value=5.0),
)
def test_never_grants_more_than_share_plus_floor(
    ops: list[object], ratio: float, floor: float
) -> None:
    """For any interleaving, retries <= ratio x requests + floor x (ttl + elapsed)."""
    clock = Clock()
    budget = RetryBudget(ratio, floor, ttl=10.0, clock=clock)
    for op in ops:
        if op == "deposit":
            budget.deposit()
        elif op == "withdraw":
            budget.try_withdraw()
        else:
            clock.now += float(op)  # type: ignore[arg-type]
    stats = budget.stats()
    assert stats.retries <= ratio * stats.requests + floor * (10.0 + clock.now) + 1e-6
