"""The benchmarks' paired blocks (``benchmarks/_common.py``): the order they run in, the ratio
they report, and the interval given for their median."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import median_interval, paired  # noqa: E402


class _Drifting:
    """Two costs, 1.0 and ``ratio``, read on a machine whose speed falls linearly: the n-th
    measurement, whichever it is, costs ``1 + slope * n`` times more."""

    def __init__(self, ratio: float, slope: float) -> None:
        self.ratio, self.slope = ratio, slope
        self.log: list[str] = []

    def _cost(self, base: float, name: str) -> float:
        factor = 1 + self.slope * len(self.log)
        self.log.append(name)
        return base * factor

    def baseline(self) -> float:
        return self._cost(1.0, "b")

    def variant(self) -> float:
        return self._cost(self.ratio, "v")


def test_blocks_mirror_their_order_and_drop_the_warm_up() -> None:
    m = _Drifting(1.0, 0.0)
    assert len(paired(m.baseline, m.variant, 3, warmup=1)) == 3
    # Warm-up block (k = -1, odd), then blocks 0, 1, 2.
    assert "".join(m.log) == "vbbvbvvbvbbvbvvb"


@pytest.mark.parametrize("slope", [0.0, 0.05, -0.03])
def test_a_linear_drift_cancels_in_every_block(slope: float) -> None:
    m = _Drifting(1.025, slope)
    ratios = paired(m.baseline, m.variant, 6, warmup=0)
    assert ratios == pytest.approx([1.025] * 6, rel=1e-12)


def test_a_lone_pair_would_read_the_drift() -> None:
    # What the blocks are for: measured one after the other, the same drift reads as a cost.
    m = _Drifting(1.025, 0.05)
    assert m.variant() / m.baseline() != pytest.approx(1.025, rel=1e-3)


def _coverage(n: int, k: int) -> float:
    """The probability that x(k) <= median <= x(n+1-k) for n values of a continuous law."""
    return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n


@pytest.mark.parametrize("n", [6, 9, 16, 48, 101])
def test_the_interval_is_the_narrowest_pair_of_order_statistics_with_its_coverage(n: int) -> None:
    xs = [float(i) for i in range(1, n + 1)]
    random.Random(n).shuffle(xs)
    lo, hi = median_interval(xs)
    k = int(lo)  # x(k) == k for these values
    assert hi == n + 1 - k
    assert _coverage(n, k) >= 0.95
    assert k == n // 2 or _coverage(n, k + 1) < 0.95


def test_known_intervals() -> None:
    # The binomial table's values: n = 48 -> x(17)..x(32); n = 16 -> x(4)..x(13).
    assert median_interval([float(i) for i in range(1, 49)]) == (17.0, 32.0)
    assert median_interval([float(i) for i in range(1, 17)]) == (4.0, 13.0)


def test_too_few_values_give_their_range() -> None:
    assert median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0)
    with pytest.raises(ValueError, match="no measurements"):
        median_interval([])
