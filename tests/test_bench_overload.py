"""The overload benchmark's code path, at a small size against the real simulator: every stream
is accounted for, completed streams carry every delta, and steadystream's own counts agree."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import _procs  # noqa: E402
import bench_overload  # noqa: E402


def test_levels_are_exact_for_raw_and_steadystream() -> None:
    """A knee probe and one level per client: completed + failed + shed == started, and the
    monitor's ok/error/overloaded counts equal the benchmark's."""
    spec = bench_overload.bench_spec()
    with _procs.simulator(token_interval="5ms") as url:
        knee, probes = asyncio.run(
            bench_overload.find_knee(url, spec, [2, 4], lag_ms=1e9, deltas=3, ramp=0.1)
        )
        assert knee == 4 and [n for n, _ in probes] == [2, 4]
        base = bench_overload.unloaded(url, spec, 3, rounds=1)
        assert base > 0
        for mode in ("raw", "steadystream"):
            res = asyncio.run(bench_overload.run_level(url, mode, 6, deltas=3, ramp=0.1, spec=spec))
            assert bench_overload.check_exact(res) == [], res
            assert res["completed"] + res["failed"] + res["shed"] == 6
            assert res["lag_p99_ms"] >= 0
            if mode == "steadystream":
                counts = res["counts"]
                assert counts.get("outcome:ok", 0) == res["completed"]
