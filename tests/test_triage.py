"""`steadystream triage`: ranking, and saying plainly when it cannot tell (unreachable, no data)."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

import steadystream as ss
from steadystream import conventions as c
from steadystream.alerts import failure_class_signals
from steadystream.testing import PrometheusServer
from steadystream.triage import (
    EXIT_ACTIVE,
    EXIT_NO_DATA,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Check,
    Finding,
    PrometheusUnreachable,
    TriageReport,
    checks_for,
    render_rich,
    triage,
)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steadystream", "triage", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def empty_prometheus() -> Iterator[PrometheusServer]:
    with PrometheusServer() as prom:
        yield prom


def _check(group: str, name: str, threshold: float, op: str = ">") -> Check:
    return Check(
        kind="failure_class",
        group=group,
        name=name,
        expr=f"{name}_expr",
        threshold=threshold,
        op=op,  # type: ignore[arg-type]
        description=name,
        runbook=c.failure_class_runbook(group),
    )


def test_checks_are_the_alert_signals() -> None:
    """Triage evaluates exactly the generated alerts' signal expressions and thresholds."""
    spec = ss.default_spec("svc")
    signals = [s for group in failure_class_signals(spec).values() for s in group]
    checks = [ch for ch in checks_for(spec) if ch.kind == "failure_class"]
    assert [(ch.group, ch.name, ch.expr, ch.threshold, ch.op) for ch in checks] == [
        (s.failure_class, s.name, s.expr, s.threshold, s.op) for s in signals
    ]
    assert {ch.group for ch in checks} == set(c.FAILURE_CLASSES)
    burns = {ch.group for ch in checks_for(spec) if ch.kind == "slo_burn"}
    assert burns == {slo.name for slo in spec.slos}


def test_causes_rank_before_their_symptoms_then_by_ratio() -> None:
    """A retry storm during a rate limit ranks after it, even with the larger ratio."""
    findings = (
        Finding(_check(c.FC_RETRY_STORM, "retry-ratio", 0.2), "active", value=20.0),
        Finding(_check(c.FC_UPSTREAM_RATE_LIMIT, "rate-limit-retries", 0.1), "active", value=1.0),
        Finding(_check(c.FC_BROKEN_CHUNKS, "reassembly-errors", 0.0), "active", value=0.5),
        Finding(_check(c.FC_IDLE_STALL, "idle-timeouts", 0.01), "ok", value=0.0),
        Finding(_check(c.FC_NO_TRAFFIC, "metrics-absent", 0.0), "no_series"),
    )
    report = TriageReport("http://p", "svc", 0.0, True, findings)
    ranked = report.ranked_classes
    assert [r.name for r in ranked] == [
        c.FC_UPSTREAM_RATE_LIMIT,
        c.FC_BROKEN_CHUNKS,
        c.FC_RETRY_STORM,
    ]
    assert ranked[2].explained_by == (c.FC_UPSTREAM_RATE_LIMIT,)
    assert ranked[0].score == pytest.approx(10.0)
    assert report.exit_code == EXIT_ACTIVE
    assert report.headline == (
        f"most likely: {c.FC_UPSTREAM_RATE_LIMIT}; open runbooks/upstream-rate-limit.md"
    )
    text = report.render_text()
    assert "3. retry-storm: 100.00x its threshold (a consequence of upstream-rate-limit)" in text
    assert "idle-stall/idle-timeouts: ok" in text
    assert "no-traffic/metrics-absent: no series" in text


def test_below_threshold_signal_scores_inverse() -> None:
    """A '<' signal (traffic stopped) scores threshold / value, infinite at zero."""
    check = _check(c.FC_NO_TRAFFIC, "traffic-stopped", 0.001, "<")
    assert check.breached(0.0)
    assert not check.breached(0.5)
    assert check.score(0.0) == float("inf")
    assert check.score(0.0005) == pytest.approx(2.0)


def test_unreachable_prometheus_exit_3() -> None:
    """A closed port is reported as unreachable with exit 3, not as healthy or no data."""
    url = f"http://127.0.0.1:{_closed_port()}"
    result = _cli("--prometheus", url, "--service", "svc")
    assert result.returncode == EXIT_UNREACHABLE
    assert "Prometheus unreachable" in result.stderr
    with pytest.raises(PrometheusUnreachable):
        triage(ss.default_spec("svc"), url, timeout=2)


@pytest.mark.prometheus
def test_not_a_prometheus_is_unreachable(empty_prometheus: PrometheusServer) -> None:
    """A URL that answers but is not the Prometheus API (a wrong path) says so, exit 3."""
    result = _cli("--prometheus", f"{empty_prometheus.url}/not-prometheus", "--service", "svc")
    assert result.returncode == EXIT_UNREACHABLE
    assert "Prometheus" in result.stderr


@pytest.mark.prometheus
def test_no_series_is_no_data_not_healthy(empty_prometheus: PrometheusServer) -> None:
    """A Prometheus without the service's series gives exit 4 and says 'no data'."""
    result = _cli("--prometheus", empty_prometheus.url, "--service", "svc", "--json")
    assert result.returncode == EXIT_NO_DATA, result.stderr
    data = json.loads(result.stdout)
    assert data["has_data"] is False
    assert data["headline"].startswith("no data:")
    assert data["exit_code"] == EXIT_NO_DATA
    plain = _cli("--prometheus", empty_prometheus.url, "--service", "svc")
    assert plain.returncode == EXIT_NO_DATA
    assert "no data: Prometheus holds no steadystream series for service 'svc'" in plain.stdout


@pytest.mark.prometheus
def test_without_spec_or_service_discovers_nothing_and_says_so(
    empty_prometheus: PrometheusServer,
) -> None:
    """Without --spec/--service and no stream_* series at all, triage exits 4 and says why."""
    result = _cli("--prometheus", empty_prometheus.url)
    assert result.returncode == EXIT_NO_DATA
    assert "no data" in result.stderr


def test_rich_table_names_the_class_value_and_runbook() -> None:
    """On a terminal the report is a table with the ranked class, its value and its runbook."""
    findings = (
        Finding(_check(c.FC_IDLE_STALL, "idle-timeouts", 0.01), "active", value=0.5),
        Finding(_check(c.FC_NO_TRAFFIC, "metrics-absent", 0.0), "no_series"),
    )
    report = TriageReport("http://p", "svc", 0.0, True, findings)
    console = Console(file=io.StringIO(), force_terminal=True, width=160, color_system=None)
    render_rich(report, console)
    out = console.file.getvalue()
    assert "most likely: idle-stall; open runbooks/idle-stall.md" in out
    assert "idle-timeouts" in out
    assert "50.00x" in out
    assert "metrics-absent" in out


def test_invalid_spec_is_a_usage_error(tmp_path: Path) -> None:
    """A spec that does not load exits 2 with its file:line:col message, before any query."""
    bad = tmp_path / "slo.yaml"
    bad.write_text("version: 1\nservice: svc\nperiod: soon\n", encoding="utf-8")
    result = _cli("--prometheus", f"http://127.0.0.1:{_closed_port()}", "--spec", str(bad))
    assert result.returncode == EXIT_USAGE
    assert f"{bad}:3:" in result.stderr


def test_rich_output_keeps_runbooks_and_queries_whole_on_a_narrow_terminal() -> None:
    """At 80 columns every active class's runbook URL and query print whole and literal."""
    url = "https://runbooks.example.com/chat-gateway/platform/upstream-rate-limit.md"
    expr = 'sum(rate(stream_retry_total{reason="429",service="chat-gateway"}[5m]))'
    limit = Check(
        kind="failure_class",
        group=c.FC_UPSTREAM_RATE_LIMIT,
        name="rate-limit-retries",
        expr=expr,
        threshold=0.1,
        op=">",
        description="retries after an upstream 429 per second",
        runbook=url,
    )
    findings = (
        Finding(limit, "active", value=0.5, labels={"model": "[gpt-4.1]"}),
        Finding(_check(c.FC_RETRY_STORM, "retry-budget-exhausted", 0.0), "active", value=2.0),
    )
    report = TriageReport("http://p", "svc", 0.0, True, findings)
    console = Console(file=io.StringIO(), force_terminal=True, width=80, color_system=None)
    render_rich(report, console)
    out = console.file.getvalue()
    assert f"  runbook: {url}\n" in out
    assert f"  runbook: {c.failure_class_runbook(c.FC_RETRY_STORM)}\n" in out
    assert f"  query: {expr}\n" in out
    assert "worst series: model=[gpt-4.1]" in out
    assert (
        "upstream-rate-limit" in out and "retry-storm (a consequence of upstream-rate-limit)" in out
    )
    assert "…" not in out


def test_yes_no_signal_without_series_reads_as_no() -> None:
    """metrics-absent without a series means the metrics exist: 'no', not 'nothing to judge'."""
    absent = Check(
        kind="failure_class",
        group=c.FC_NO_TRAFFIC,
        name="metrics-absent",
        expr="absent(stream_requests_total)",
        threshold=0.0,
        op=">",
        description="no stream_requests_total series",
        runbook=c.failure_class_runbook(c.FC_NO_TRAFFIC),
        unit="bool",
    )
    text = TriageReport("http://p", "svc", 0.0, True, (Finding(absent, "no_series"),)).render_text()
    assert "no-traffic/metrics-absent: no (the condition is false: nothing to alert on)" in text


def test_a_rejected_query_does_not_hide_the_active_class() -> None:
    """With one query rejected, the headline still names the active class and its runbook."""
    findings = (
        Finding(_check(c.FC_IDLE_STALL, "idle-timeouts", 0.01), "active", value=0.5),
        Finding(_check(c.FC_BROKEN_CHUNKS, "reassembly-errors", 0.0), "error", error="bad_data"),
    )
    report = TriageReport("http://p", "svc", 0.0, True, findings)
    assert report.exit_code == EXIT_UNREACHABLE
    assert report.headline == (
        "most likely: idle-stall; open runbooks/idle-stall.md "
        "(incomplete: Prometheus rejected 1 query, see below)"
    )
    assert "broken-chunks/reassembly-errors: ERROR: bad_data" in report.render_text()
