"""The benchmarks' paired blocks (``benchmarks/_common.py``): the order they run in, the ratio
they report, and the interval given for their median; and ``bench_e2e.py``'s table of them."""

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


def test_table_2p_judges_the_targets_against_raw_and_reports_the_floor_without_one() -> None:
    """bench_e2e's table 2p: a target's verdict comes from its row against its raw client; the
    reference wrappers against raw (the floor) and wrap against the reference get none; the
    results carry every comparison with its interval."""
    import argparse

    import bench_e2e
    from _common import Summary

    # Block ratios 1.015 + k/1000, k = 1..48: median 1.0395 (above 1.03, below 1.05),
    # interval x(17)..x(32).
    blocks = [1.015 + k / 1000 for k in range(1, 49)]
    keys = [bench_e2e.pair_key(name, base) for name, base in bench_e2e.PAIRED]
    data = {"paired": dict.fromkeys(keys, blocks), "paired_per_process": []}
    ratios = {key: Summary.of(blocks) for key in keys}
    results: dict = {}
    table = bench_e2e._paired_table(data, ratios, results, argparse.Namespace(blocks=16))

    rows = {(row[0], row[1]): row for row in table.rows}
    assert set(rows) == set(bench_e2e.PAIRED)
    for (name, base), row in rows.items():
        assert row[4] == "1.032–1.047"
        key = bench_e2e.pair_key(name, base)
        assert results["paired"][key]["interval_95"] == pytest.approx([1.032, 1.047])
        if base == bench_e2e.raw_of(name) and name in bench_e2e.TARGETS:
            met = name == "responses_stream"  # its target is 1.05, the wraps' 1.03
            goal = "<= 1.05" if met else "<= 1.03"
            assert row[5:] == [goal, "met" if met else "MISSED"]
            assert results["paired"][key]["target_met"] is met
        else:  # the floor, and steadystream above the floor: reported, not judged
            assert row[5:] == ["", ""]
            assert "target_met" not in results["paired"][key]
    # Every target is paired against its raw client, and every steadystream wrap against the
    # reference of its kind.
    for name in bench_e2e.TARGETS:
        assert (name, bench_e2e.raw_of(name)) in rows
    assert ("wrap", "reference") in rows
    assert ("async wrap", "async reference") in rows
