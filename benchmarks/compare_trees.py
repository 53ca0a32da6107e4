"""Before/after for an optimisation: ``bench_chunk.py`` on two source trees, alternating.

Each tree is a directory holding ``steadystream/`` (e.g. ``src`` of this checkout and ``src`` of
a copy with the change). The benchmark runs in a fresh interpreter per run with the tree first
on ``PYTHONPATH``, trees taking turns (A B B A A B ...), and the per-run medians are summarised
per tree, so a change is judged against the code it replaces under the same machine load.

Usage::

    python benchmarks/compare_trees.py /tmp/before/src src --runs 4 -- --deltas 50000 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _common import RESULTS, Summary, Table, round_order

HERE = Path(__file__).resolve().parent


def _figures(payload: dict) -> dict[str, float]:
    out = {}
    for key, res in payload["results"].items():
        if "ns_per_event_above_raw" in res:
            out[f"responses {key}"] = res["ns_per_event_above_raw"]["median"]
    for key, res in payload.get("chat", {}).items():
        if isinstance(res, dict) and "median" in res:
            out[f"chat {key}"] = res["median"]
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--runs", type=int, default=4, help="runs per tree")
    args = parser.parse_args(argv)
    trees = {"before": str(Path(args.before).resolve()), "after": str(Path(args.after).resolve())}
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for r in range(args.runs):
        for name in round_order(list(trees), r):
            env = dict(os.environ, PYTHONPATH=trees[name])
            subprocess.run(
                [sys.executable, str(HERE / "bench_chunk.py"), *extra],
                env=env,
                check=True,
                capture_output=True,
            )
            runs[name].append(_figures(json.loads((RESULTS / "chunk.json").read_text())))
    table = Table(
        f"bench_chunk before/after, ns per event above raw ({args.runs} alternating runs each)",
        ["figure", "before", "after", "change"],
    )
    for key in runs["before"][0]:
        b = Summary.of(x[key] for x in runs["before"])
        a = Summary.of(x[key] for x in runs["after"])
        table.add(key, b.fmt(".0f"), a.fmt(".0f"), f"{(a.median / b.median - 1) * 100:+.0f} %")
    print(table.text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
