"""The generated rules and dashboards against a real Prometheus scraping the demo workload.

One module-scoped run: `generate` output for the committed example spec is loaded into a real
Prometheus (loopback, 1 s scrape and evaluation), the demo drives resilient streams through the
`mixed` fault profile, and every check below reads what Prometheus made of it.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from steadystream.demo import DemoReport, MetricsView, run_demo, scrape_job
from steadystream.exporters import start_metrics_server
from steadystream.generate import Source, render_all
from steadystream.testing import PrometheusServer, ScrapeTarget
from steadystream.triage import EXIT_ACTIVE, EXIT_HEALTHY

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = Path("examples/chat-gateway/slo.yaml")
#: SLI rule groups evaluate once a minute; allow one full interval plus slack.
RULE_WAIT = 150.0


@dataclass
class Run:
    prom: PrometheusServer
    spec: ss.Spec
    out: Path
    files: dict[str, str]
    report: DemoReport
    registry: CollectorRegistry

    @property
    def sel(self) -> str:
        matchers = {**self.spec.selector, c.LABEL_SERVICE: self.spec.service}
        return ",".join(f'{k}="{v}"' for k, v in sorted(matchers.items()))

    def value(self, expr: str) -> float:
        result = self.prom.query(expr)
        assert len(result) == 1, f"{expr}: {result}"
        return float(result[0]["value"][1])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    raw = (ROOT / EXAMPLE).read_bytes()
    spec = ss.load_spec(ROOT / EXAMPLE)
    files = render_all(spec, Source.from_bytes(str(EXAMPLE), raw))
    out = tmp_path_factory.mktemp("generated")
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert sorted(out.glob(f"{c.ALERTS_DIR}/*.yaml")), f"no rule files: {sorted(files)}"
    # Loaded the way a deployment does: the whole directory by glob (only rules live there).
    rule_files = [out / c.ALERTS_DIR / "*.yaml"]
    registry = CollectorRegistry()
    job, labels = scrape_job(spec)
    with (
        start_metrics_server(0, "127.0.0.1", registry=registry) as exporter,
        PrometheusServer(
            rule_files=rule_files,
            targets=[ScrapeTarget(f"127.0.0.1:{exporter.port}", job=job, labels=labels)],
        ) as prom,
    ):
        prom.wait_for_targets_up()
        with open(os.devnull, "w") as devnull:
            report = run_demo(
                duration=12,
                streams=8,
                faults="mixed",
                seed=11,
                spec=spec,
                registry=registry,
                metrics_port=None,
                live=False,
                out=devnull,
            )
        # The demo has ended: wait until Prometheus has scraped its final counts.
        sel = ",".join(
            f'{k}="{v}"' for k, v in sorted({**spec.selector, "service": spec.service}.items())
        )
        prom.wait_for_query(
            f"sum({c.REQUESTS_TOTAL}{{{sel}}})",
            predicate=lambda r: bool(r) and float(r[0]["value"][1]) == report.streams_finished,
        )
        yield Run(prom, spec, out, files, report, registry)


def _rule_files(run: Run) -> dict[str, Any]:
    return {
        rel: yaml.safe_load(text)
        for rel, text in run.files.items()
        if rel.startswith(f"{c.ALERTS_DIR}/")
    }


def test_every_generated_rule_loads_and_evaluates_ok(run: Run) -> None:
    """Prometheus loads every generated rule and evaluates each with health ok."""
    expected = {
        (group["name"], rule.get("record") or rule.get("alert"))
        for data in _rule_files(run).values()
        for group in data["groups"]
        for rule in group["rules"]
    }
    rules = run.prom.wait_for_rule_evaluations(timeout=RULE_WAIT)
    loaded = {(r["group"], r["name"]) for r in rules}
    assert loaded == expected
    bad = [(r["group"], r["name"], r["health"], r.get("lastError")) for r in rules]
    bad = [b for b in bad if b[2] != "ok"]
    assert not bad, bad


def test_every_recording_rule_produces_series(run: Run) -> None:
    """Each recording rule (by name and static labels) has series once the workload ran."""
    records = [
        (rule["record"], rule.get("labels", {}))
        for data in _rule_files(run).values()
        for group in data["groups"]
        for rule in group["rules"]
        if "record" in rule
    ]
    assert records

    def missing() -> list[str]:
        out = []
        for name, labels in records:
            matchers = ",".join(
                [f'__name__="{name}"', *(f'{k}="{v}"' for k, v in sorted(labels.items()))]
            )
            if not run.prom.query(f"{{{matchers}}}"):
                out.append(f"{name}{labels}")
        return out

    run.prom.wait_until(lambda: not missing(), timeout=RULE_WAIT, what="every recorded series")


_SELECTOR_RE = re.compile(r"\b(stream_[a-z_]+|steadystream:[a-z0-9_:]+)(\{[^}]*\})?")


def _grafana_to_promql(expr: str, spec: ss.Spec) -> str:
    """What Grafana sends for this panel: variables replaced as a user selecting the service."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("${__rate_interval}", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
        .replace("${service}", spec.service)
        .replace("$service", spec.service)
        .replace("${model}", ".*")
        .replace("$model", ".*")
    )


def _panel_exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield panel.get("title", "?"), target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard.get("panels", []))
    for row in dashboard.get("rows", []):
        yield from walk(row.get("panels", []))


def test_every_dashboard_query_parses_and_has_data_where_the_workload_feeds_it(run: Run) -> None:
    """Every panel query parses in Prometheus; with all its input series present it has data."""
    boards = {
        rel: json.loads(text)
        for rel, text in run.files.items()
        if rel.startswith(f"{c.DASHBOARDS_DIR}/") and rel.endswith(".json")
    }
    assert boards
    # Recorded SLO series appear on the SLI groups' one-minute schedule.
    run.prom.wait_for_rule_evaluations(timeout=RULE_WAIT)
    checked = with_data = 0
    empty: list[str] = []
    for rel, board in boards.items():
        for title, raw in _panel_exprs(board):
            expr = _grafana_to_promql(raw, run.spec)
            result = run.prom.query(expr)  # raises with Prometheus's message if it cannot parse
            checked += 1
            fed = all(
                run.prom.query(f"count({name}{matchers or ''})")
                for name, matchers in _SELECTOR_RE.findall(expr)
            )
            if fed and not result:
                empty.append(f"{rel} / {title}: {expr}")
            with_data += bool(result)
    print(f"\n{checked} panel queries parsed, {with_data} returned data")
    assert checked >= 10
    assert not empty, "\n".join(empty)
    # The mixed profile feeds nearly every panel; most must show data, not just parse.
    assert with_data >= checked * 0.8, (with_data, checked)


def test_stream_series_match_the_demo_report(run: Run) -> None:
    """Prometheus's stream_* counts equal the demo's own count, per outcome and error class."""
    report, sel = run.report, run.sel
    assert report.streams_finished > 20
    assert run.value(f"sum({c.REQUESTS_TOTAL}{{{sel}}})") == report.streams_finished
    assert (
        run.value(f'sum({c.REQUESTS_TOTAL}{{{sel},outcome="{c.OUTCOME_OK}"}})') == report.streams_ok
    )
    assert run.value(f"sum({c.ERRORS_TOTAL}{{{sel}}})") == report.streams_failed
    by_class = {
        r["metric"][c.LABEL_ERROR_CLASS]: float(r["value"][1])
        for r in run.prom.query(f"sum by (error_class) ({c.ERRORS_TOTAL}{{{sel}}}) > 0")
    }
    assert by_class == {k: float(v) for k, v in report.errors.items()}
    # Bytes: content delivered to the consumers, relayed slow consumers included.
    exported = MetricsView(run.registry, run.spec.service).total(c.BYTES_TOTAL)
    assert run.value(f"sum({c.BYTES_TOTAL}{{{sel}}})") == exported == report.content_bytes > 0
    # The error rate as Prometheus computes it, against the demo's count.
    prom_rate = run.value(f"sum({c.ERRORS_TOTAL}{{{sel}}}) / sum({c.REQUESTS_TOTAL}{{{sel}}})")
    assert report.error_rate is not None
    assert math.isclose(prom_rate, report.error_rate, rel_tol=1e-9)
    # The SLO report's numbers, recomputed by Prometheus from the scraped histograms.
    for slo in report.slos:
        spec_slo = run.spec.slo(slo.name)
        lat = spec_slo.indicator.latency
        if lat is None or slo.quantile_ms is None:
            continue
        q = run.value(
            f"histogram_quantile({slo.objective}, sum by (le) ({c.bucket(lat.metric)}{{{sel}}}))"
        )
        assert math.isclose(q, slo.quantile_ms, rel_tol=1e-6), slo.name
        good = run.value(
            f'sum({c.bucket(lat.metric)}{{{sel},le="{c.le_label(lat.threshold_ms)}"}})'
        )
        assert good == slo.events - slo.bad
    assert run.value(f"sum({c.RESUME_SUCCESS_TOTAL}{{{sel}}})") == report.resumes_ok
    retries = {
        r["metric"][c.LABEL_REASON]: float(r["value"][1])
        for r in run.prom.query(f"sum by (reason) ({c.RETRY_TOTAL}{{{sel}}}) > 0")
    }
    assert retries == report.retries


def _triage_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steadystream", "triage", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_triage_cli_runs_every_signal_against_the_workload(run: Run) -> None:
    """`triage --spec` evaluates every signal without a query error; JSON and text agree."""
    run.prom.wait_for_rule_evaluations(timeout=RULE_WAIT)
    result = _triage_cli("--prometheus", run.prom.url, "--spec", str(EXAMPLE), "--json")
    data = json.loads(result.stdout)
    assert result.returncode == data["exit_code"] in (EXIT_HEALTHY, EXIT_ACTIVE), result.stderr
    assert data["has_data"] is True
    assert data["service"] == run.spec.service
    assert [f for f in data["findings"] if f["state"] == "error"] == []
    groups = {f["group"] for f in data["findings"]}
    assert groups == set(c.FAILURE_CLASSES) | {slo.name for slo in run.spec.slos}
    # Failure-class signals read raw stream metrics the workload fed: most have a value.
    valued = [
        f for f in data["findings"] if f["kind"] == "failure_class" and f["value"] is not None
    ]
    assert len(valued) >= 10, valued
    text = _triage_cli("--prometheus", run.prom.url, "--spec", str(EXAMPLE))
    assert text.returncode == data["exit_code"]
    assert data["headline"] in text.stdout
    for ranked in data["ranked"]:
        assert ranked["runbook"].startswith(run.spec.links.runbooks or "runbooks/")


def test_triage_cli_discovers_the_only_service(run: Run) -> None:
    """Without --spec or --service, triage finds the one service Prometheus has."""
    result = _triage_cli("--prometheus", run.prom.url, "--json")
    assert result.returncode in (EXIT_HEALTHY, EXIT_ACTIVE), result.stderr
    assert json.loads(result.stdout)["service"] == run.spec.service
