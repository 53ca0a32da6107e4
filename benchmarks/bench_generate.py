"""Benchmark 4: generation from a spec with 100 SLOs.

A spec with 100 SLOs (latency SLOs on the first-token, recovery and chunk-gap histograms at
distinct thresholds, and error-rate SLOs at distinct objectives) is written to a temp dir, then
``steadystream generate SPEC --out DIR`` runs as a user runs it: a fresh interpreter, so the wall
time includes Python start-up and every import. The pure part (``load_spec`` +
``generate.render_all``) is also timed in process. Reports the wall time, the number of files and
the number of Prometheus rules (recording and alerting) written.

Target: the CLI under 2 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from _common import Summary, Table, emit, verdict
from steadystream import conventions as c

TARGET_S = 2.0
N_SLOS = 100


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


def run_in_process(spec_path: Path, rounds: int) -> Summary:
    """Seconds for ``load_spec`` + ``render_all``, the pure part, warm interpreter."""
    import steadystream as ss
    from steadystream import generate

    data = spec_path.read_bytes()
    source = generate.Source.from_bytes(spec_path.name, data)
    times = []
    for _ in range(rounds + 1):
        t0 = time.perf_counter()
        spec = ss.load_spec(spec_path)
        generate.render_all(spec, source)
        times.append(time.perf_counter() - t0)
    return Summary.of(times[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
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
        pure = run_in_process(spec_path, args.rounds)

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
    table.add("load_spec + render_all in process", pure.fmt(".3f", " s"), "", "")
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
        "(a fresh `python -m steadystream` per run)."
    )
    emit(
        "generate",
        [table],
        {
            "slos": N_SLOS,
            "cli_seconds": cli.as_dict(),
            "in_process_seconds": pure.as_dict(),
            "files": files,
            "rules": counts,
            "target_seconds": TARGET_S,
            "target_met": cli.median < TARGET_S,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
