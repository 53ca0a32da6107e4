"""The demo's SLO report arithmetic, read from a real prometheus_client registry."""

from __future__ import annotations

import io
import json

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Histogram

import steadystream as ss
from steadystream import conventions as c
from steadystream.demo import (
    ClientTally,
    MetricsView,
    Progress,
    build_report,
    histogram_quantile,
    scrape_config,
    slo_results,
)

SERVICE = "report-svc"


@pytest.fixture
def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    labels = [c.LABEL_SERVICE, c.LABEL_MODEL, c.LABEL_PROVIDER]
    ttft = Histogram(
        c.FIRST_TOKEN_LATENCY, "ttft", labels, buckets=c.LATENCY_BUCKETS_MS, registry=reg
    )
    requests = Counter(
        c.REQUESTS_TOTAL.removesuffix("_total"), "req", [*labels, c.LABEL_OUTCOME], registry=reg
    )
    errors = Counter(
        c.ERRORS_TOTAL.removesuffix("_total"), "err", [*labels, c.LABEL_ERROR_CLASS], registry=reg
    )
    retries = Counter(
        c.RETRY_TOTAL.removesuffix("_total"), "retry", [*labels, c.LABEL_REASON], registry=reg
    )
    # 90 fast streams and 10 slow ones on two models; another service's series must be ignored.
    for i in range(100):
        model = "m1" if i % 2 else "m2"
        ttft.labels(SERVICE, model, "openai").observe(3000.0 if i < 10 else 400.0)
    ttft.labels("other-svc", "m1", "openai").observe(60000.0)
    requests.labels(SERVICE, "m1", "openai", c.OUTCOME_OK).inc(97)
    requests.labels(SERVICE, "m1", "openai", c.OUTCOME_ERROR).inc(3)
    errors.labels(SERVICE, "m1", "openai", c.ERROR_CLASS_RATE_LIMITED).inc(3)
    retries.labels(SERVICE, "m1", "openai", c.RETRY_REASON_429).inc(5)
    retries.labels(SERVICE, "m2", "openai", c.RETRY_REASON_5XX).inc(2)
    return reg


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    """Linear interpolation inside the bucket, lowest bucket from 0, +Inf capped."""
    buckets = [(100.0, 10.0), (200.0, 30.0), (float("inf"), 40.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(150.0)
    assert histogram_quantile(0.1, buckets) == pytest.approx(40.0)
    assert histogram_quantile(0.99, buckets) == 200.0
    assert histogram_quantile(0.5, [(100.0, 0.0), (float("inf"), 0.0)]) is None


def test_metrics_view_sums_only_the_service(registry: CollectorRegistry) -> None:
    """Sums match label subsets exactly and skip other services."""
    view = MetricsView(registry, SERVICE)
    assert view.total(c.REQUESTS_TOTAL) == 100
    assert view.total(c.REQUESTS_TOTAL, outcome=c.OUTCOME_ERROR) == 3
    assert view.by_label(c.RETRY_TOTAL, c.LABEL_REASON) == {"429": 5.0, "5xx": 2.0}
    assert view.total(c.count(c.FIRST_TOKEN_LATENCY)) == 100
    assert view.count_le(c.FIRST_TOKEN_LATENCY, 2500.0) == 90


def test_slo_results_use_the_threshold_bucket(registry: CollectorRegistry) -> None:
    """TTFT fails at 90 % within 2.5 s; 3 % errors fail a 1 % budget; no recoveries is no data."""
    spec = ss.default_spec(SERVICE)
    results = {r.name: r for r in slo_results(spec, MetricsView(registry, SERVICE))}
    ttft = results["time-to-first-token"]
    assert (ttft.events, ttft.bad, ttft.good_ratio, ttft.passed) == (100, 10, 0.9, False)
    assert ttft.quantile_ms == pytest.approx(2500 + 500 * (95 - 90) / 10)
    errors = results["stream-errors"]
    assert (errors.events, errors.bad, errors.passed) == (100, 3, False)
    recovery = results["recovery-time"]
    assert (recovery.good_ratio, recovery.passed, recovery.verdict) == (None, None, "NO DATA")


def test_slo_texts_put_measured_and_target_in_the_same_terms(registry: CollectorRegistry) -> None:
    """Measured and target read in the same unit (share within the threshold, share failed)."""
    spec = ss.default_spec(SERVICE)
    results = {r.name: r for r in slo_results(spec, MetricsView(registry, SERVICE))}
    ttft, errors = results["time-to-first-token"], results["stream-errors"]
    assert ttft.measured_text == "90.00% within 2.5s (p95 2.75s)"
    assert ttft.target_text == "95% within 2.5s"
    assert ttft.counts_text == "100 measured, 10 over 2.5s"
    assert errors.measured_text == "3.00% failed"
    assert errors.target_text == "at most 1% failed"
    assert errors.counts_text == "100 streams, 3 failed"
    assert results["recovery-time"].measured_text == "no events"


def test_report_counts_failure_classes_and_serialises(registry: CollectorRegistry) -> None:
    """The report maps 429 retries/errors and 5xx retries to their failure classes; JSON-safe."""
    tally = ClientTally(started=100, ok=97, failed=3)
    tally.errors[c.ERROR_CLASS_RATE_LIMITED] = 3
    report = build_report(
        spec=ss.default_spec(SERVICE),
        registry=registry,
        tally=tally,
        faults="rate-limit",
        seed=1,
        streams=4,
        duration_s=2.0,
        interrupted=False,
        metrics_url=None,
    )
    assert report.failure_classes[c.FC_UPSTREAM_RATE_LIMIT] == 8
    assert report.failure_classes[c.FC_UPSTREAM_ERRORS] == 2
    assert report.error_rate == pytest.approx(0.03)
    data = json.loads(json.dumps(report.to_dict()))
    assert [s["verdict"] for s in data["slos"]] == ["FAIL", "NO DATA", "FAIL"]
    text = report.render_text()
    assert (
        "FAIL     time-to-first-token  90.00% within 2.5s (p95 2.75s); "
        "target 95% within 2.5s (100 measured, 10 over 2.5s)"
    ) in text
    assert "upstream-rate-limit" in text
    assert "not seen in this run: broken-chunks, first-token-timeout," in text


def test_progress_has_no_empty_line_at_start() -> None:
    """Plain progress starts after its interval, not with an all-'no events' line at 0 s."""
    out = io.StringIO()
    progress = Progress(
        ss.default_spec(SERVICE), CollectorRegistry(), ClientTally(), out, live=False, duration=10
    )
    progress.tick()
    assert out.getvalue() == ""


def test_progress_line_gives_each_slo_against_its_target(registry: CollectorRegistry) -> None:
    """A plain progress line shows streams, each SLO vs its target with a verdict, the drain."""
    tally = ClientTally(started=104, ok=97, failed=3)
    out = io.StringIO()
    progress = Progress(
        ss.default_spec(SERVICE), registry, tally, out, live=False, duration=10, plain_every=0
    )
    progress.finishing(8)
    line = progress.line()
    assert "] 100 streams done (3 failed), 4 in flight, finishing, at most " in line
    assert (
        "| time-to-first-token 90.00% within 2.5s (p95 2.75s) vs target 95% within 2.5s: FAIL |"
        in line
    )
    assert "| recovery-time no events vs target 99% within 8s: NO DATA |" in line
    assert "| stream-errors 3.00% failed vs target at most 1% failed: FAIL |" in line
    assert line.endswith("| retries 7, resumes 0")
    progress.tick()
    assert out.getvalue().startswith("[") and "vs target" in out.getvalue()


def test_live_table_fits_an_80_column_terminal(registry: CollectorRegistry) -> None:
    """On an 80-column terminal the live table shows every SLO name and value uncut."""
    from rich.console import Console

    spec = ss.default_spec(SERVICE)
    tally = ClientTally(started=100, ok=97, failed=3)
    progress = Progress(spec, registry, tally, io.StringIO(), live=False, duration=10)
    console = Console(file=io.StringIO(), width=80, color_system=None)
    console.print(progress._table())
    screen = console.file.getvalue()
    assert "…" not in screen
    assert max(len(line) for line in screen.splitlines()) <= 80
    rows = {line.split()[0]: line for line in screen.splitlines() if line.strip()}
    assert "90.00% within 2.5s" in rows["time-to-first-token"]
    assert "FAIL (p95 2.75s)" in rows["time-to-first-token"]
    assert "at most 1%" in rows["stream-errors"]
    assert "recovery-time" in rows


def test_scrape_config_matches_the_spec_selector() -> None:
    """The printed scrape config uses the selector's job and adds its other labels."""
    spec = ss.Spec.model_validate(
        {"version": 1, "service": "svc", "selector": {"job": "gw", "env": "prod"}}
    )
    text = scrape_config("127.0.0.1:9464", spec)
    (job,) = yaml.safe_load(text)["scrape_configs"]
    assert job["job_name"] == "gw"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:9464"], "labels": {"env": "prod"}}]


def test_scrape_config_is_valid_yaml_for_any_selector_value() -> None:
    """A job name with a colon and label values with quotes or backslashes paste as written."""
    selector = {"job": "gw: edge", "env": 'a\\b "q" it\'s', "region": "123"}
    spec = ss.Spec.model_validate({"version": 1, "service": "svc", "selector": selector})
    (job,) = yaml.safe_load(scrape_config("127.0.0.1:9464", spec))["scrape_configs"]
    assert job["job_name"] == "gw: edge"
    assert job["static_configs"][0]["labels"] == {"env": 'a\\b "q" it\'s', "region": "123"}


def test_demo_workers_back_off_after_failures() -> None:
    """After a failed stream a demo worker pauses 50 ms, doubling per consecutive failure up to
    1 s, with jitter taking off at most half: a rejected stream never makes it spin."""
    from steadystream.demo.driver import BACKOFF_MAX, backoff_delay

    assert backoff_delay(1, 0.999999) == pytest.approx(0.05, rel=1e-3)
    assert backoff_delay(1, 0.0) == pytest.approx(0.025)
    assert [round(backoff_delay(n, 0.999999), 3) for n in (1, 2, 3, 4, 5, 6)] == [
        0.05,
        0.1,
        0.2,
        0.4,
        0.8,
        1.0,
    ]
    assert backoff_delay(50, 0.999999) <= BACKOFF_MAX
