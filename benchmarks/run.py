"""``make bench``: every steadystream benchmark, one table, the machine stated.

Runs each benchmark in its own interpreter (so one benchmark's imports, registries, patched
clients or tracemalloc state never leak into another's figures), in this order:

1. ``bench_chunk.py``    per-chunk overhead of ``monitor.wrap`` in process, sync and async
2. ``bench_e2e.py``      end to end over loopback: raw vs wrap vs responses_stream vs openai-v2
3. ``bench_scale.py``    1,000 concurrent async streams: memory per stream, event-loop lag
4. ``bench_generate.py`` ``steadystream generate`` on a spec with 100 SLOs
5. ``bench_sse.py``      SSE parsing of a 256 KiB / 1 MiB / 4 MiB ``data:`` line in 64-byte chunks
6. ``bench_alerting.py`` time to detect: steadystream's rules vs Sloth's in promtool, per incident
7. ``bench_overload.py`` 1x/2x/3x the event-loop knee: raw vs responses_stream, failed streams
8. ``bench_spike.py``    10x the sustainable arrival rate for 10 s: raw, with and without the queue
9. ``bench_rules.py``    Prometheus rule evaluation of the 100-SLO rules, baseline tree vs this one

Then prints the machine, every table and a summary of the targets, and writes
``benchmarks/results/summary.json`` and ``summary.md`` (the Markdown tables for the README).
Each benchmark also leaves its own ``benchmarks/results/<name>.json``. Benchmarks are not tests:
the exit status is non-zero only when a benchmark could not run or recorded wrong values, never
because a target was missed.

Usage::

    python benchmarks/run.py                 # everything (about 17 minutes on 2 cores)
    python benchmarks/run.py --only chunk,generate
    python benchmarks/run.py --quick         # fewer rounds and streams: a smoke run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, ROOT, Table, machine, machine_line, verdict, write_result

HERE = Path(__file__).resolve().parent

BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    # name: (script, full args, quick args)
    "chunk": ("bench_chunk.py", ["--rounds", "4"], ["--rounds", "2", "--deltas", "20000"]),
    "e2e": (
        "bench_e2e.py",
        [],  # three processes of 12 rounds and 16 paired blocks (see its docstring)
        ["--processes", "1", "--rounds", "2", "--blocks", "2"],
    ),
    "scale": (
        "bench_scale.py",
        ["--ramp", "3", "--deltas", "8"],
        ["--streams", "100", "--lag-rounds", "1"],
    ),
    "generate": ("bench_generate.py", ["--rounds", "2"], ["--rounds", "2"]),
    "sse": ("bench_sse.py", ["--rounds", "5"], ["--rounds", "2"]),
    # --quick: four shapes after 1 day of history instead of nine after 3 days.
    "alerting": (
        "bench_alerting.py",
        [],
        ["--history", "1440", "--only", "hard-outage,fast-burn,night-failure,traffic-stops"],
    ),
    "overload": (
        "bench_overload.py",
        [],
        ["--knee", "20", "--multiples", "1,2", "--deltas", "5", "--token-interval", "20ms"],
    ),
    "spike": (
        "bench_spike.py",
        [],
        ["--rate", "5", "--before", "1", "--spike", "3", "--after", "2", "--deltas", "5"],
    ),
    # Two Prometheus servers side by side; --quick: fewer evaluations sampled.
    "rules": ("bench_rules.py", [], ["--warmup", "3", "--samples", "4"]),
}

# Benchmarks with one target; chunk and e2e name theirs in their results' "targets".
TARGETS = (
    ("scale", "target_met", "scale: <= 16 KiB per stream added by responses_stream"),
    ("generate", "target_met", "generate, 100 SLOs: < 2 s"),
    ("sse", "target_met", "SSE parse: linear in line length (4x the bytes <= 6x the time)"),
    ("overload", "target_met", "overload: at 2x the knee, no more failed streams than raw"),
    ("rules", "target_met", "rules per SLO <= 17 (Sloth's count)"),
)


def run_one(name: str, quick: bool) -> tuple[int, float]:
    script, full, short = BENCHMARKS[name]
    cmd = [sys.executable, str(HERE / script), *(short if quick else full)]
    print(
        f"== {name}: {' '.join(Path(a).name if a.endswith('.py') else a for a in cmd[1:])}",
        file=sys.stderr,
        flush=True,
    )
    t0 = time.perf_counter()
    # The benchmark prints its own tables as it finishes; they are printed again together below.
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout, end="")
        print(proc.stderr, end="", file=sys.stderr)
    print(f"   {name}: {elapsed:.0f} s, exit {proc.returncode}", file=sys.stderr, flush=True)
    return proc.returncode, elapsed


def _result(payload: dict[str, Any], key: str) -> bool | None:
    value = payload
    for part in key.split("/"):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value if isinstance(value, bool) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every steadystream benchmark.")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and streams")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")

    m = machine()
    started = time.perf_counter()
    status: dict[str, dict[str, Any]] = {}
    for name in names:
        # A stale result from an earlier run must not pass for this run's.
        (RESULTS / f"{name}.json").unlink(missing_ok=True)
        code, elapsed = run_one(name, args.quick)
        status[name] = {"exit": code, "seconds": round(elapsed, 1)}
    total = time.perf_counter() - started

    payloads: dict[str, dict[str, Any]] = {}
    for name in names:
        path = RESULTS / f"{name}.json"
        if path.exists():
            payloads[name] = json.loads(path.read_text())

    print()
    print(f"Machine: {machine_line(m)}")
    print(f"Command: make bench  (python benchmarks/run.py{' --quick' if args.quick else ''})")
    print()
    md = [f"Machine: {machine_line(m)}", ""]
    for name in names:
        if name not in payloads:
            print(f"[{name}] did not produce results (exit {status[name]['exit']})\n")
            md += [f"**{name}**: did not produce results", ""]
            continue
        for t in payloads[name]["tables"]:
            table = Table.from_dict(t)
            print(table.text())
            print()
            md += [table.markdown(), ""]

    summary = Table("Targets", ["target", "result"])
    targets: dict[str, bool | None] = {}
    for name, key, label in TARGETS:
        if name not in names:
            continue
        met = _result(payloads.get(name, {}), key)
        targets[label] = met
        summary.add(label, verdict(met))
    for name in names:
        # A benchmark with one target per case (alerting: per incident shape) names them.
        named = payloads.get(name, {}).get("targets")
        if isinstance(named, dict):
            for label, met in named.items():
                targets[f"{name}: {label}"] = met if isinstance(met, bool) else None
                summary.add(f"{name}: {label}", verdict(targets[f"{name}: {label}"]))
    summary.notes.append(
        f"total {total:.0f} s; per benchmark: "
        + ", ".join(f"{n} {s['seconds']:.0f} s" for n, s in status.items())
    )
    print(summary.text())
    md += [summary.markdown(), ""]

    write_result(
        "summary",
        {
            "machine": m,
            "quick": args.quick,
            "status": status,
            "targets": targets,
            "total_seconds": total,
        },
    )
    (RESULTS / "summary.md").write_text("\n".join(md))
    failed = [n for n, s in status.items() if s["exit"] != 0]
    if failed:
        print(f"\nbenchmark(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
