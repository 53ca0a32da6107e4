"""Benchmark 4: generation from a spec with 100 SLOs.

A spec with 100 SLOs (latency SLOs on the first-token, recovery and chunk-gap histograms at
distinct thresholds, and error-rate SLOs at distinct objectives) is written to a temp dir, then
``steadystream generate SPEC --out DIR`` runs as a user runs it: a fresh interpreter, so the wall
time includes Python start-up and every import. The pure part (``load_spec`` +
``generate.render_all``) is also timed in process, in a child interpreter per tree: this tree and
a baseline tree (``git archive`` of ``--baseline``, by default the last commit with 34 rules per
SLO), taking turns, so the two are compared under the same machine load. In process, both the
wall time and the CPU time (``time.process_time``) are reported: on a shared, loaded machine the
wall time mostly measures the scheduler, and the CPU time is what the render costs. Reports the
number of files and of Prometheus rules (recording and alerting) written.

Targets: the CLI under 2 s; the render in process under 1 s (CPU time, this tree).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import yaml

from _common import ROOT, Summary, Table, emit, round_order, verdict
from steadystream import conventions as c

TARGET_S = 2.0
#: load_spec + render_all of the 100 SLOs, in process (CPU time).
TARGET_IN_PROCESS_S = 1.0
N_SLOS = 100
SRC = ROOT / "src"
#: The last commit whose SLI rules recorded an event count and a burn rate per window (34
#: rules per SLO): the baseline of this benchmark and of ``bench_rules.py``.
BASELINE = "5db2f3b772f495b4384f7a4f6003a4f251a04599"

#: Run by a child interpreter with a tree first on PYTHONPATH: argv = spec path, rounds.
_PURE = """
import json, sys, time
from io import BytesIO
from pathlib import Path
import steadystream as ss
from steadystream import generate
spec_path, rounds = Path(sys.argv[1]), int(sys.argv[2])
source = generate.Source.from_bytes(spec_path.name, spec_path.read_bytes())
wall, cpu = [], []
for _ in range(rounds + 1):  # the first render warms caches and is dropped
    w, c = time.perf_counter(), time.process_time()
    generate.render_all(ss.load_spec(spec_path), source)
    cpu.append(time.process_time() - c)
    wall.append(time.perf_counter() - w)
print(json.dumps({"wall": wall[1:], "cpu": cpu[1:]}))
"""


def spec_yaml(n: int = N_SLOS) -> str:
    """A valid spec with ``n`` SLOs, every one distinct (name, threshold or objective)."""
    latency_metrics = (c.FIRST_TOKEN_LATENCY, c.RECOVERY_LATENCY, c.CHUNK_GAP)
    slos: list[dict[str, Any]] = []
    for i in range(n):
        objective = f"{95 + (i % 5) * 0.9 + (i % 7) * 0.01:.2f}%"  # 95% .. 98.66%
        if i % 4 == 3:
            indicator: dict[str, Any] = {
                "errors": {"errors": c.ERRORS_TOTAL, "total": c.REQUESTS_TOTAL}
            }
        else:
            metric = latency_metrics[i % 3]
            threshold_ms = 100 + 25 * i  # whole milliseconds: each is a bucket boundary
            indicator = {"latency": {"metric": metric, "threshold": f"{threshold_ms}ms"}}
        slos.append(
            {
                "name": f"slo-{i:03d}",
                "objective": objective,
                "description": f"Synthetic SLO {i} for the generation benchmark.",
                "indicator": indicator,
            }
        )
    spec = {
        "version": 1,
        "service": "bench-gateway",
        "selector": {"job": "bench-gateway"},
        "period": "28d",
        "slos": slos,
    }
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)


def count_rules(out: Path) -> dict[str, int]:
    """Recording and alerting rules in every YAML rule file under ``out/alerts``."""
    recording = alerting = files = 0
    for path in sorted((out / c.ALERTS_DIR).rglob("*.y*ml")):
        doc = yaml.safe_load(path.read_text())
        if not isinstance(doc, dict) or "groups" not in doc:
            continue  # promtool unit-test files live next to the rules
        files += 1
        for group in doc["groups"]:
            for rule in group.get("rules", []):
                if "record" in rule:
                    recording += 1
                elif "alert" in rule:
                    alerting += 1
    return {"rule_files": files, "recording": recording, "alerting": alerting}


def baseline_tree(rev: str, into: Path) -> Path:
    """``src`` of ``rev`` extracted under ``into`` (``git archive``); the path to put first on
    ``PYTHONPATH``."""
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src"],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"bench_rules: cannot read the baseline tree {rev!r} from git: "
            f"{proc.stderr.decode(errors='replace').strip()}"
        )
    with tarfile.open(fileobj=BytesIO(proc.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def run_cli(spec: Path, out: Path) -> float:
    """Seconds of wall time for one ``steadystream generate`` in a fresh interpreter."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "steadystream", "generate", str(spec), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"steadystream generate failed ({proc.returncode}): {proc.stderr}")
    return elapsed


def run_in_process(tree: Path, spec_path: Path, rounds: int) -> dict[str, list[float]]:
    """Wall and CPU seconds of ``load_spec`` + ``render_all`` with ``tree`` first on
    ``PYTHONPATH`` (a warm interpreter: the first render is dropped)."""
    proc = subprocess.run(
        [sys.executable, "-c", _PURE, str(spec_path), str(rounds)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(tree)),
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"render in process with {tree} failed: {proc.stderr}")
    return json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--baseline", default=BASELINE, help="git revision of the tree compared in process"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="ss-bench-gen-") as tmp:
        spec_path = Path(tmp) / "slo.yaml"
        spec_path.write_text(spec_yaml())
        cli_times = []
        counts: dict[str, int] = {}
        files = 0
        for r in range(args.rounds):
            out = Path(tmp) / f"out-{r}"
            cli_times.append(run_cli(spec_path, out))
            if r == 0:
                counts = count_rules(out)
                files = sum(1 for p in out.rglob("*") if p.is_file())
        cli = Summary.of(cli_times)
        trees = {"before": baseline_tree(args.baseline, Path(tmp) / "baseline"), "after": SRC}
        pure: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in trees}
        for r in range(args.rounds):
            for name in round_order(list(trees), r):
                got = run_in_process(trees[name], spec_path, 2)
                for key in ("wall", "cpu"):
                    pure[name][key] += got[key]
    cpu = {name: Summary.of(t["cpu"]) for name, t in pure.items()}
    wall = {name: Summary.of(t["wall"]) for name, t in pure.items()}
    in_process_met = cpu["after"].median < TARGET_IN_PROCESS_S

    rules = counts["recording"] + counts["alerting"]
    table = Table(
        f"4. Generation: spec with {N_SLOS} SLOs -> alerts, dashboards, runbooks",
        ["what", "median (p25–p75)", "target", ""],
    )
    table.add(
        "`steadystream generate` wall time",
        cli.fmt(".2f", " s"),
        "< 2 s",
        verdict(cli.median < TARGET_S),
    )
    table.add(
        "load_spec + render_all in process, CPU",
        cpu["after"].fmt(".3f", " s"),
        "< 1 s",
        verdict(in_process_met),
    )
    table.add("load_spec + render_all in process, wall", wall["after"].fmt(".3f", " s"), "", "")
    table.add(
        f"baseline {args.baseline[:12]} in process, CPU / wall",
        f"{cpu['before'].fmt('.3f', ' s')} / {wall['before'].fmt('.3f', ' s')}",
        "",
        "",
    )
    table.add(
        "this tree / baseline, in process",
        f"CPU {cpu['after'].median / cpu['before'].median:.2f}x, "
        f"wall {wall['after'].median / wall['before'].median:.2f}x",
        "",
        "",
    )
    table.add("files written", files, "", "")
    table.add(
        "Prometheus rules",
        f"{rules} ({counts['recording']} recording, {counts['alerting']} alerting, "
        f"{counts['rule_files']} rule files)",
        "",
        "",
    )
    table.notes.append(
        f"{args.rounds} runs; wall time includes interpreter start-up and imports "
        "(a fresh `python -m steadystream` per run). In process: "
        f"{args.rounds} alternating child interpreters per tree, 2 renders each."
    )
    emit(
        "generate",
        [table],
        {
            "slos": N_SLOS,
            "cli_seconds": cli.as_dict(),
            "in_process_cpu_seconds": {name: x.as_dict() for name, x in cpu.items()},
            "in_process_wall_seconds": {name: x.as_dict() for name, x in wall.items()},
            "baseline": args.baseline,
            "in_process_target_seconds": TARGET_IN_PROCESS_S,
            "in_process_target_met": in_process_met,
            "files": files,
            "rules": counts,
            "target_seconds": TARGET_S,
            "target_met": cli.median < TARGET_S,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
