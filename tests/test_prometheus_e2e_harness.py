"""The real-Prometheus harness: starts, scrapes a loopback /metrics, answers queries, stops."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from steadystream.testing import PrometheusError, PrometheusServer, ScrapeTarget
from steadystream.testing.prometheus import rfc3339_seconds

pytestmark = pytest.mark.prometheus


@pytest.fixture
def exporter() -> Iterator[tuple[str, Counter]]:
    registry = CollectorRegistry()
    counter = Counter("harness_probe", "Probe counter.", ["service"], registry=registry)
    counter.labels(service="probe").inc(7)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{server.server_port}", counter
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_scrapes_loopback_target_and_query_returns_value(
    exporter: tuple[str, Counter], tmp_path: Path
) -> None:
    """A started server scrapes a prometheus_client endpoint; a query returns its value."""
    address, counter = exporter
    rules = tmp_path / "r.rules.yaml"
    rules.write_text(
        "groups:\n- name: probe\n  rules:\n"
        "  - record: service:harness_probe:sum\n    expr: sum by (service) (harness_probe_total)\n"
    )
    with PrometheusServer(
        rule_files=[rules], targets=[ScrapeTarget(address, job="probe-job")]
    ) as prom:
        assert prom.url.startswith("http://127.0.0.1:")
        targets = prom.wait_for_targets_up()
        assert targets[0]["labels"]["job"] == "probe-job"
        result = prom.wait_for_query('harness_probe_total{job="probe-job"}')
        assert float(result[0]["value"][1]) == 7.0
        assert result[0]["metric"]["service"] == "probe"
        counter.labels(service="probe").inc(3)
        prom.wait_for_query(
            "service:harness_probe:sum",
            predicate=lambda r: bool(r) and float(r[0]["value"][1]) == 10.0,
        )
        (rule,) = prom.wait_for_rule_evaluations()
        assert rule["health"] == "ok"
        assert rule["group"] == "probe"
        # Waiting for an evaluation after a moment reads Prometheus's own timestamps.
        since = time.time()
        (later,) = prom.wait_for_rule_evaluations(after=since)
        first, then = (rfc3339_seconds(r["lastEvaluation"]) for r in (rule, later))
        assert first < then and then > since
        data_dir = prom.data_dir
        assert (data_dir / "prometheus.yml").exists()
        url = prom.url
    assert not data_dir.exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/-/ready", timeout=2)


def test_wait_for_scrapes_waits_for_new_samples(exporter: tuple[str, Counter]) -> None:
    """wait_for_scrapes(n) returns only after n more scrapes: n more ``up`` samples exist."""
    address, _ = exporter
    with PrometheusServer(targets=[ScrapeTarget(address, job="probe-job")]) as prom:
        prom.wait_for_targets_up()
        samples = 'count_over_time(up{job="probe-job"}[10m])'
        before = prom.query_value(samples)
        assert before is not None
        prom.wait_for_scrapes(3)
        after = prom.query_value(samples)
        assert after is not None and after >= before + 3


def test_query_parse_error_carries_prometheus_message() -> None:
    """A PromQL syntax error raises PrometheusError with Prometheus's own message."""
    with PrometheusServer() as prom, pytest.raises(PrometheusError, match="bad_data"):
        prom.query("sum(rate(x[5m])")


def test_bad_rule_file_fails_start_with_log_tail(tmp_path: Path) -> None:
    """An invalid rule file makes start() raise with the log naming the problem; nothing stays."""
    rules = tmp_path / "bad.rules.yaml"
    rules.write_text("groups:\n- name: g\n  rules:\n  - record: x\n    expr: sum(\n")
    server = PrometheusServer(rule_files=[rules], startup_timeout=20)
    with pytest.raises(PrometheusError) as info:
        server.start()
    assert "bad.rules.yaml" in str(info.value)
    with pytest.raises(PrometheusError, match="not running"):
        _ = server.url


def test_config_scrape_timeout_never_exceeds_interval() -> None:
    """The generated config keeps scrape_timeout within the 1 s interval and groups jobs."""
    server = PrometheusServer(
        targets=[ScrapeTarget("127.0.0.1:1", job="a"), ScrapeTarget("127.0.0.1:2", job="a")],
        scrape_interval=1.0,
    )
    config = server.config()
    assert config["global"]["scrape_interval"] == "1s"
    assert config["global"]["scrape_timeout"] == "1s"
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "a"
    assert [sc["targets"] for sc in job["static_configs"]] == [["127.0.0.1:1"], ["127.0.0.1:2"]]


def test_wait_until_is_bounded() -> None:
    """wait_until stops by itself and says what it waited for."""
    with PrometheusServer() as prom, pytest.raises(PrometheusError, match="never_there_metric"):
        prom.wait_for_query("never_there_metric", timeout=1.0)


def test_taken_fixed_port_fails_with_the_reason() -> None:
    """A fixed port that is already taken makes start() fail with Prometheus's own reason."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = PrometheusServer(port=port, startup_timeout=20)
        with pytest.raises(PrometheusError, match="address already in use"):
            server.start()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2026-12-02T04:20:01Z", 1796185201.0),
        ("2026-12-02T04:20:01.123456789Z", 1796185201.123456789),
        ("2026-12-02T05:20:01.5+01:00", 1796185201.5),
        ("2026-12-01T23:20:01.25-05:00", 1796185201.25),
    ],
)
def test_rfc3339_seconds_reads_go_timestamps(text: str, seconds: float) -> None:
    assert rfc3339_seconds(text) == pytest.approx(seconds, abs=1e-6)


def test_rfc3339_seconds_names_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="not an RFC 3339 timestamp: '04:20'"):
        rfc3339_seconds("04:20")
