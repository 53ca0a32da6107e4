"""Benchmark 7: Prometheus rule evaluation time of the generated rules, 100 SLOs.

The 100-SLO spec of ``bench_generate.py`` is generated twice: by this tree and by a baseline
tree (``git archive`` of ``--baseline``, by default the last commit before the SLI rules were
cut to Sloth's size, 34 rules per SLO). Two real Prometheus servers (the tests' loopback
runner, :class:`steadystream.testing.PrometheusServer`) run side by side, one per rule set,
with a third that loads no rules, all scraping the same synthetic exporter: every SLI
histogram and counter of the spec, in ``LABEL_SETS`` label sets, growing with time. Running at
the same time, they see the same machine load.

Every rule group's ``interval`` is set to ``--interval`` seconds in both rule sets (the SLI
groups say 1m, which would make the run last an hour). After ``--warmup`` evaluations of every
group, each of ``--samples`` rounds waits for one more evaluation of every group on both
servers, then reads ``prometheus_rule_group_last_duration_seconds`` from each server's own
``/metrics`` and sums it over the groups: the time one evaluation of all the rules costs.
Those durations are wall time: groups evaluated at once on a loaded machine wait for a CPU, and
the wait counts. So the Prometheus processes' CPU seconds over the sampled evaluations are read
too, less those of the server without rules (scrapes, TSDB upkeep): the CPU the rules cost.

The TSDB is fresh, so range selectors cover the minutes since start, not hours or days: the
figures weigh what rule count and series lookups cost, and understate the long windows' sample
reads (which both rule sets share: one ratio per window).

Reports the rules per SLO and the summed evaluation time of each tree, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.parser import text_string_to_metric_families

from _common import ROOT, Summary, Table, emit
from bench_generate import BASELINE, N_SLOS, baseline_tree, count_rules, spec_yaml
from steadystream import conventions as c
from steadystream.testing.prometheus import PrometheusServer, ScrapeTarget

SERVICE = "bench-gateway"
#: Sloth's rules per SLO (benchmarks/sloth): 8 SLI windows, 7 metadata, a page and a ticket.
SLOTH_RULES_PER_SLO = 17
#: Label sets of every synthetic series (model x provider), as a gateway serving a few models.
LABEL_SETS: tuple[tuple[str, str], ...] = tuple(
    (model, provider) for model in ("m-large", "m-small", "m-mini") for provider in ("a", "b")
)


class SyntheticSLIs:
    """A collector whose counters grow with wall time: each SLI histogram with a bucket at
    every threshold the spec names, and the request and error counters."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.start = time.monotonic()
        self.bounds: dict[str, list[float]] = {}
        for slo in spec["slos"]:
            lat = slo["indicator"].get("latency")
            if lat is not None:
                ms = float(lat["threshold"].removesuffix("ms"))
                self.bounds.setdefault(lat["metric"], []).append(ms)
        for metric in self.bounds:
            self.bounds[metric].sort()

    def collect(self) -> Iterable[Metric]:
        elapsed = time.monotonic() - self.start
        labels = ["model", "provider"]
        for metric, bounds in self.bounds.items():
            family = HistogramMetricFamily(metric, f"synthetic {metric}", labels=labels)
            for i, values in enumerate(LABEL_SETS):
                count = int((20 + 5 * i) * elapsed)
                top = bounds[-1]
                # A share under each bound growing with the bound: about 90 % under the last.
                buckets = [(c.le_label(b), float(int(count * 0.9 * b / top))) for b in bounds]
                buckets.append(("+Inf", float(count)))
                family.add_metric(list(values), buckets, sum_value=float(count * 300))
            yield family
        requests = CounterMetricFamily(
            c.REQUESTS_TOTAL.removesuffix("_total"), "synthetic requests", labels=labels
        )
        errors = CounterMetricFamily(
            c.ERRORS_TOTAL.removesuffix("_total"), "synthetic errors", labels=labels
        )
        for i, values in enumerate(LABEL_SETS):
            total = int((20 + 5 * i) * elapsed)
            requests.add_metric(list(values), float(total))
            errors.add_metric(list(values), float(total // 50))
        yield requests
        yield errors


def generate(tree: Path, spec: Path, out: Path) -> Path:
    """The rule file the tree at ``tree`` generates for ``spec``."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = subprocess.run(
        [sys.executable, "-m", "steadystream", "generate", str(spec), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if proc.returncode != 0:
        raise SystemExit(f"bench_rules: generate with {tree} failed: {proc.stderr.strip()}")
    (rules,) = sorted((out / c.ALERTS_DIR).glob("*.rules.yaml"))
    return rules


def rules_per_slo(rules: Path, slo: str) -> int:
    """Recording and alerting rules labelled ``slo`` (its SLI group, outage and burn alerts)."""
    doc = yaml.safe_load(rules.read_text())
    return sum(
        1
        for group in doc["groups"]
        for rule in group["rules"]
        if (rule.get("labels") or {}).get("slo") == slo
    )


def with_interval(rules: Path, seconds: int, dest: Path) -> Path:
    """``rules`` with every group evaluated every ``seconds``."""
    doc = yaml.safe_load(rules.read_text())
    for group in doc["groups"]:
        group["interval"] = f"{seconds}s"
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def _own_metrics(server: PrometheusServer) -> Iterable[Any]:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=30) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        yield from family.samples


def cpu_seconds(server: PrometheusServer) -> float:
    """The server process's CPU seconds so far (``process_cpu_seconds_total``)."""
    for sample in _own_metrics(server):
        if sample.name == "process_cpu_seconds_total":
            return float(sample.value)
    raise SystemExit("bench_rules: Prometheus exposes no process_cpu_seconds_total")


def group_metrics(server: PrometheusServer) -> dict[str, dict[str, float]]:
    """Per rule group: its last evaluation's seconds and its evaluations so far, from the
    server's own ``/metrics``."""
    out: dict[str, dict[str, float]] = {}
    for sample in _own_metrics(server):
        group = sample.labels.get("rule_group")
        if group is None:
            continue
        if sample.name == "prometheus_rule_group_last_duration_seconds":
            out.setdefault(group, {})["seconds"] = sample.value
        elif sample.name == "prometheus_rule_group_iterations_total":
            out.setdefault(group, {})["iterations"] = sample.value
    return out


def wait_iterations(server: PrometheusServer, at_least: float, timeout: float) -> None:
    """Wait until every rule group of ``server`` has been evaluated ``at_least`` times."""

    def probe() -> bool:
        groups = group_metrics(server)
        return bool(groups) and all(g.get("iterations", 0) >= at_least for g in groups.values())

    server.wait_until(
        probe, timeout=timeout, interval=0.2, what=f"every rule group evaluated {at_least:.0f}x"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the old tree")
    parser.add_argument("--interval", type=int, default=10, help="seconds between evaluations")
    parser.add_argument("--warmup", type=int, default=6, help="evaluations before sampling")
    parser.add_argument("--samples", type=int, default=10, help="evaluations sampled")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="ss-bench-rules-") as tmp_name:
        tmp = Path(tmp_name)
        spec_text = spec_yaml()
        spec_path = tmp / "slo.yaml"
        spec_path.write_text(spec_text)
        trees = {
            "before": baseline_tree(args.baseline, tmp / "baseline"),
            "after": ROOT / "src",
        }
        rule_files: dict[str, Path] = {}
        counts: dict[str, dict[str, int]] = {}
        per_slo: dict[str, int] = {}
        for name, tree in trees.items():
            out = tmp / f"out-{name}"
            rules = generate(tree, spec_path, out)
            counts[name] = count_rules(out)
            per_slo[name] = rules_per_slo(rules, "slo-000")
            rule_files[name] = with_interval(rules, args.interval, tmp / f"{name}.rules.yaml")

        registry = CollectorRegistry()
        registry.register(SyntheticSLIs(yaml.safe_load(spec_text)))  # type: ignore[arg-type]
        httpd, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
        target = ScrapeTarget(
            f"127.0.0.1:{httpd.server_port}", job=SERVICE, labels={"service": SERVICE}
        )
        servers = {
            name: PrometheusServer(
                rule_files=[path],
                targets=[target],
                scrape_interval=args.interval / 2,
                evaluation_interval=float(args.interval),
                startup_timeout=120.0,
            )
            for name, path in rule_files.items()
        }
        # Scrapes the same target and evaluates nothing: its CPU over the sampled evaluations is
        # what the others spend besides their rules.
        idle = PrometheusServer(
            targets=[target],
            scrape_interval=args.interval / 2,
            evaluation_interval=float(args.interval),
            startup_timeout=120.0,
        )
        sums: dict[str, list[float]] = {name: [] for name in servers}
        try:
            for server in (*servers.values(), idle):
                server.start()
            for server in (*servers.values(), idle):
                server.wait_for_targets_up(timeout=120.0)
            # Generous: on a loaded machine one evaluation of 100 SLOs can overrun its slot.
            timeout = 60.0 + 10.0 * args.interval
            for server in servers.values():
                wait_iterations(server, args.warmup, timeout * args.warmup)
            base = {
                name: min(g.get("iterations", 0) for g in group_metrics(s).values())
                for name, s in servers.items()
            }
            cpu0 = {name: cpu_seconds(s) for name, s in servers.items()}
            idle0 = cpu_seconds(idle)
            for k in range(1, args.samples + 1):
                for name, server in servers.items():
                    wait_iterations(server, base[name] + k, timeout)
                for name, server in servers.items():
                    groups = group_metrics(server)
                    sums[name].append(sum(g["seconds"] for g in groups.values()))
            idle_cpu = (cpu_seconds(idle) - idle0) / args.samples
            cpu = {
                name: (cpu_seconds(s) - cpu0[name]) / args.samples - idle_cpu
                for name, s in servers.items()
            }
        finally:
            for server in (*servers.values(), idle):
                server.stop()
            httpd.shutdown()
            thread.join(timeout=10)

    summary = {name: Summary.of(values) for name, values in sums.items()}
    ratio = summary["after"].median / summary["before"].median
    cpu_ratio = cpu["after"] / cpu["before"]
    table = Table(
        f"7. Rule evaluation: {N_SLOS} SLOs, Prometheus, before and after (side by side)",
        [
            "rules",
            "rules per SLO",
            "recording",
            "alerting",
            "evaluation of every group (sum of group durations)",
            "Prometheus CPU per evaluation, rules only",
        ],
    )
    for name in ("before", "after"):
        cnt = counts[name]
        table.add(
            name,
            per_slo[name],
            cnt["recording"],
            cnt["alerting"],
            summary[name].fmt(".2f", " s"),
            f"{cpu[name]:.2f} s",
        )
    table.notes.append(
        f"after / before: {ratio:.2f}x the group durations, {cpu_ratio:.2f}x the CPU. "
        "Group durations: prometheus_rule_group_last_duration_seconds summed "
        f"over every group, median (p25-p75) of {args.samples} evaluations after "
        f"{args.warmup}, every group every {args.interval} s, {len(LABEL_SETS)} label sets per "
        f"series, scraped every {args.interval / 2:g} s; baseline {args.baseline[:12]}. "
        "CPU: process_cpu_seconds_total over the sampled evaluations, per evaluation, less "
        f"that of a third server that only scrapes ({idle_cpu:.3f} s). "
        "Fresh TSDB: range reads span minutes."
    )
    for name, values in sums.items():
        summary_ms = [round(v * 1000, 2) for v in values]
        table.notes.append(f"{name} per evaluation (ms): {summary_ms}")
    emit(
        "rules",
        [table],
        {
            "slos": N_SLOS,
            "baseline": args.baseline,
            "counts": counts,
            "rules_per_slo": per_slo,
            "seconds": {name: s.as_dict() for name, s in summary.items()},
            "ratio_after_before": ratio,
            "cpu_seconds_per_evaluation": cpu,
            "scrape_only_cpu_seconds_per_evaluation": idle_cpu,
            "cpu_ratio_after_before": cpu_ratio,
            "target_met": per_slo["after"] <= SLOTH_RULES_PER_SLO,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
