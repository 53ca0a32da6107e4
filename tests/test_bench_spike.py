"""The spike benchmark's code path, at a small size against the real simulator: the arrival
schedule, every arrival accounted for, and the monitor's counts equal to the benchmark's."""

from __future__ import annotations

import asyncio
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import _procs  # noqa: E402
import bench_spike  # noqa: E402


def test_schedule_is_rate_then_ten_times_then_rate() -> None:
    """2/s for 1 s, 20/s for 0.5 s, 2/s for 1 s: 2 + 10 + 2 arrivals, evenly spaced."""
    arrivals = bench_spike.schedule(2.0, 1.0, 0.5, 1.0)
    assert len(arrivals) == 14
    assert arrivals[:3] == [0.0, 0.5, 1.0]
    assert arrivals[2:12] == pytest.approx([1.0 + i / 20 for i in range(10)])
    assert arrivals[12:] == [1.5, 2.0]


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    """Linear within the bucket; a quantile in the +Inf bucket reads as the top finite bound."""
    buckets = [(10.0, 50.0), (20.0, 100.0), (math.inf, 100.0)]
    assert bench_spike.histogram_quantile(buckets, 0.5) == pytest.approx(10.0)
    assert bench_spike.histogram_quantile(buckets, 0.75) == pytest.approx(15.0)
    assert bench_spike.histogram_quantile([(10.0, 1.0), (math.inf, 2.0)], 0.99) == 10.0
    assert math.isnan(bench_spike.histogram_quantile([(10.0, 0.0)], 0.5))


def test_every_arrival_is_accounted_for() -> None:
    """Raw, queued and unqueued clients over a small spike: completed + rejected + failed ==
    arrivals, and steadystream's ok and rejection counts are the benchmark's."""
    arrivals = bench_spike.schedule(4.0, 0.5, 0.5, 0.5)
    with _procs.simulator(token_interval="20ms") as url:
        specs = {
            "raw": bench_spike.bench_spec(2, 0, 0.0),
            "queue": bench_spike.bench_spec(2, 4, 1.0),
            "no queue": bench_spike.bench_spec(2, 0, 0.0),
        }
        for name, spec in specs.items():
            mode = "raw" if name == "raw" else "steadystream"
            res = asyncio.run(bench_spike.run_client(url, mode, arrivals, deltas=3, spec=spec))
            assert bench_spike.check_exact(res) == [], res
            assert res["arrivals"] == len(arrivals)
