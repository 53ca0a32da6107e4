"""Exporters: the standalone /metrics server, the ASGI app, multiprocess mode and OTLP."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import accumulate
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

import steadystream as ss
from steadystream import conventions as c
from steadystream.exporters import (
    OtlpExport,
    metrics_asgi_app,
    setup_otlp,
    start_metrics_server,
)


def one_stream(registry: CollectorRegistry) -> None:
    monitor = ss.StreamMonitor(
        ss.default_spec("svc"), registry=registry, tracer_provider=TracerProvider()
    )
    list(monitor.wrap(iter(["hello"]), model="m", provider="p"))


def test_standalone_metrics_server_serves_the_registry() -> None:
    """start_metrics_server(port=0) serves the registry on loopback until closed."""
    registry = CollectorRegistry()
    one_stream(registry)
    with start_metrics_server(0, registry=registry) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        resp = httpx.get(server.url, timeout=5)
    assert resp.status_code == 200
    assert (
        'stream_requests_total{model="m",outcome="ok",provider="p",service="svc"} 1.0' in resp.text
    )
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url, timeout=2)


def test_asgi_app_mounts_in_starlette() -> None:
    """metrics_asgi_app() mounted at /metrics answers with the Prometheus text format."""
    registry = CollectorRegistry()
    one_stream(registry)
    app = Starlette(routes=[Mount("/metrics", app=metrics_asgi_app(registry))])
    with TestClient(app) as client:
        resp = client.get("/metrics/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert "stream_bytes_total" in resp.text


def test_asgi_app_as_a_route_answers_metrics_without_a_redirect() -> None:
    """app.add_route("/metrics", metrics_asgi_app()) answers /metrics itself: 200, no 307."""
    registry = CollectorRegistry()
    one_stream(registry)
    app = Starlette()
    app.add_route("/metrics", metrics_asgi_app(registry))
    with TestClient(app, follow_redirects=False) as client:
        resp = client.get("/metrics")
        other = client.get("/other")
    assert resp.status_code == 200, resp.headers
    assert resp.headers["content-type"].startswith("text/plain")
    assert 'stream_requests_total{model="m",outcome="ok",provider="p",service="svc"} 1.0' in (
        resp.text
    )
    assert other.status_code == 404


def test_asgi_app_in_a_route_list() -> None:
    """Route("/metrics", metrics_asgi_app()) in Starlette's route list serves the registry."""
    registry = CollectorRegistry()
    one_stream(registry)
    app = Starlette(routes=[Route("/metrics", metrics_asgi_app(registry))])
    with TestClient(app, follow_redirects=False) as client:
        resp = client.get("/metrics")
    assert resp.status_code == 200
    assert "stream_bytes_total" in resp.text


WORKER = textwrap.dedent(
    """
    import steadystream as ss
    from opentelemetry.sdk.trace import TracerProvider
    monitor = ss.StreamMonitor(ss.default_spec("svc"), tracer_provider=TracerProvider())
    list(monitor.wrap(iter(["hello", " world"]), model="m", provider="p"))
    """
)
SCRAPER = textwrap.dedent(
    """
    from prometheus_client import generate_latest
    from steadystream.exporters import multiprocess_registry
    print(generate_latest(multiprocess_registry()).decode())
    """
)


def test_multiprocess_mode_adds_up_workers(tmp_path: Path) -> None:
    """Two worker processes with PROMETHEUS_MULTIPROC_DIR; the scrape registry sums them."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", WORKER], env=env, check=True, timeout=60)
    out = subprocess.run(
        [sys.executable, "-c", SCRAPER], env=env, check=True, timeout=60, capture_output=True
    ).stdout.decode()
    labels = 'model="m",outcome="ok",provider="p",service="svc"'
    assert f"stream_requests_total{{{labels}}} 2.0" in out
    assert 'stream_bytes_total{model="m",provider="p",service="svc"} 22.0' in out


def test_multiprocess_capacity_sums_live_workers(tmp_path: Path) -> None:
    """stream_ingress_max_concurrent is livesum, like stream_in_flight: the scrape shows the
    sum of the live workers' caps (2 x 256), and a worker marked dead stops counting."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    pids = []
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-c", WORKER], env=env)
        assert proc.wait(timeout=60) == 0
        pids.append(proc.pid)

    def scrape(dead: int | None = None) -> str:
        mark = f"from steadystream.exporters import mark_process_dead; mark_process_dead({dead})"
        code = (mark + "\n" if dead is not None else "") + SCRAPER
        return subprocess.run(
            [sys.executable, "-c", code], env=env, check=True, timeout=60, capture_output=True
        ).stdout.decode()

    out = scrape()
    assert 'stream_ingress_max_concurrent{service="svc"} 512.0' in out
    assert 'stream_in_flight{model="m",provider="p",service="svc"} 0.0' in out
    out = scrape(dead=pids[0])
    assert 'stream_ingress_max_concurrent{service="svc"} 256.0' in out


class Receiver:
    """A tiny OTLP/HTTP endpoint on loopback that records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                outer.requests.append((self.path, self.headers["Content-Type"], body))
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_setup_otlp_exports_spans_and_metrics(receiver: Receiver) -> None:
    """setup_otlp sends the stream span and the stream metrics to the OTLP/HTTP endpoint."""
    otlp = setup_otlp(receiver.url, service_name="svc", set_global=False, export_interval=3600)
    monitor = ss.StreamMonitor(
        ss.default_spec("svc"),
        registry=CollectorRegistry(),
        tracer_provider=otlp.tracer_provider,
        meter_provider=otlp.meter_provider,
    )
    list(monitor.wrap(iter(["hello"]), model="m", provider="p"))
    assert otlp.force_flush()
    otlp.shutdown()
    paths = {path for path, _, _ in receiver.requests}
    assert paths == {"/v1/traces", "/v1/metrics"}
    assert all(ctype == "application/x-protobuf" for _, ctype, _ in receiver.requests)

    span_names = set()
    metric_names = set()
    for path, _, body in receiver.requests:
        if path == "/v1/traces":
            req = ExportTraceServiceRequest.FromString(body)
            span_names |= {
                s.name for rs in req.resource_spans for ss_ in rs.scope_spans for s in ss_.spans
            }
        else:
            mreq = ExportMetricsServiceRequest.FromString(body)
            metric_names |= {
                m.name
                for rm in mreq.resource_metrics
                for sm in rm.scope_metrics
                for m in sm.metrics
            }
    assert span_names == {c.span_name(c.OPERATION_CHAT, "m"), c.SPAN_ATTEMPT}
    assert {c.REQUESTS_TOTAL, c.BYTES_TOTAL, c.FIRST_TOKEN_LATENCY, c.IN_FLIGHT} <= metric_names


def resources(receiver: Receiver) -> dict[str, dict[str, str]]:
    """The resource attributes of every request the receiver got, by path."""
    out: dict[str, dict[str, str]] = {}
    for path, _, body in receiver.requests:
        req = (
            ExportTraceServiceRequest.FromString(body)
            if path.endswith("traces")
            else ExportMetricsServiceRequest.FromString(body)
        )
        res = [
            r.resource
            for r in (req.resource_spans if path.endswith("traces") else req.resource_metrics)
        ]
        assert res, path
        for r in res:
            out[path] = {kv.key: kv.value.string_value for kv in r.attributes}
    return out


def export_one_stream(otlp: OtlpExport) -> None:
    monitor = ss.StreamMonitor(
        ss.default_spec("svc"),
        registry=CollectorRegistry(),
        tracer_provider=otlp.tracer_provider,
        meter_provider=otlp.meter_provider,
    )
    list(monitor.wrap(iter(["hello"]), model="m", provider="p"))
    assert otlp.force_flush()
    otlp.shutdown()


def test_setup_otlp_follows_the_standard_environment(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no arguments, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, the endpoint, the
    per-signal endpoint and the headers variables decide what is exported where."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "chat-gateway")
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,team=llm%20platform"
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"{receiver.url}/custom/metrics")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20t0ken,x-a=1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-a=2")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    otlp = setup_otlp(set_global=False, export_interval=3600)
    assert otlp.traces_endpoint == f"{receiver.url}/v1/traces"
    assert otlp.metrics_endpoint == f"{receiver.url}/custom/metrics"
    export_one_stream(otlp)

    found = resources(receiver)
    assert set(found) == {"/v1/traces", "/custom/metrics"}
    for attrs in found.values():
        assert attrs["service.name"] == "chat-gateway"
        assert attrs["deployment.environment"] == "prod"
        assert attrs["team"] == "llm platform"
        assert attrs["telemetry.sdk.name"] == "opentelemetry"
    for (path, _, _), headers in zip(receiver.requests, receiver.headers, strict=True):
        # The per-signal variable replaces the common one for its signal.
        if path == "/v1/traces":
            assert headers["x-a"] == "2" and "authorization" not in headers
        else:
            assert headers["x-a"] == "1" and headers["authorization"] == "Bearer t0ken"


def test_setup_otlp_explicit_arguments_win_over_the_environment(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """endpoint=, service_name=, resource_attributes= and headers= override the variables;
    the variables still add the attributes and headers no argument names."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=attr-env,region=eu,team=env")
    # Both unreachable: the explicit endpoint must win over them.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-env=1,x-arg=env")
    otlp = setup_otlp(
        receiver.url,
        service_name="explicit",
        resource_attributes={"team": "arg"},
        headers={"x-arg": "1"},
        set_global=False,
        export_interval=3600,
    )
    export_one_stream(otlp)
    found = resources(receiver)
    assert set(found) == {"/v1/traces", "/v1/metrics"}
    for attrs in found.values():
        assert attrs["service.name"] == "explicit"
        assert attrs["region"] == "eu" and attrs["team"] == "arg"
    for headers in receiver.headers:
        assert headers["x-arg"] == "1" and headers["x-env"] == "1"


def test_setup_otlp_service_name_precedence_without_arguments() -> None:
    """OTEL_SERVICE_NAME beats service.name in OTEL_RESOURCE_ATTRIBUTES, which beats the
    default; read from an injected environment, nothing is sent."""
    cases = [
        ({}, "steadystream"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=a"}, "a"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=a", "OTEL_SERVICE_NAME": "b"}, "b"),
    ]
    for env, expected in cases:
        otlp = setup_otlp(environ=env, set_global=False, export_interval=3600)
        try:
            attrs = otlp.tracer_provider.resource.attributes
            assert attrs["service.name"] == expected, env
            assert otlp.traces_endpoint == "http://localhost:4318/v1/traces"
        finally:
            otlp.meter_provider.shutdown()
            otlp.tracer_provider.shutdown()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"),
        (
            {"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json"},
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=http/json",
        ),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "OTEL_EXPORTER_OTLP_HEADERS"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "=x"}, "OTEL_RESOURCE_ATTRIBUTES"),
    ],
)
def test_setup_otlp_refuses_what_it_cannot_honour(env: dict[str, str], named: str) -> None:
    """A protocol other than http/protobuf, or a malformed variable: ValueError naming it."""
    with pytest.raises(ValueError, match=re.escape(named)):
        setup_otlp(environ=env, set_global=False)


def _otlp_histograms(receiver: Receiver, since: int) -> list[Any]:
    """The ``stream_chunk_gap_ms`` metrics of the metric requests from ``since`` on."""
    out = []
    for path, _, body in receiver.requests[since:]:
        if path != "/v1/metrics":
            continue
        req = ExportMetricsServiceRequest.FromString(body)
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                assert sm.scope.name == c.METER_NAME
                out += [m for m in sm.metrics if m.name == c.CHUNK_GAP]
    return out


@pytest.mark.parametrize("temporality", ["cumulative", "delta"])
def test_setup_otlp_exports_locally_aggregated_histograms_exactly(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, temporality: str
) -> None:
    """The chunk-gap histogram, bucketed in the sink, reaches the OTLP receiver with the
    Prometheus sink's bounds, bucket counts, count and sum, export after export, in the
    temporality the exporter asks for."""
    from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", temporality)
    otlp = setup_otlp(receiver.url, service_name="svc", set_global=False, export_interval=3600)
    registry = CollectorRegistry()
    monitor = ss.StreamMonitor(
        ss.default_spec("svc"),
        registry=registry,
        tracer_provider=otlp.tracer_provider,
        meter_provider=otlp.meter_provider,
    )
    labels = {c.LABEL_SERVICE: "svc", c.LABEL_MODEL: "m", c.LABEL_PROVIDER: "p"}
    counts: list[int] = []
    sums: list[float] = []
    buckets: list[list[int]] = []
    try:
        for n in (150, 70):
            events = [{"type": "response.output_text.delta", "delta": "é"}] * n
            list(monitor.wrap(iter(events), model="m", provider="p"))
            since = len(receiver.requests)
            assert otlp.force_flush()
            (metric,) = _otlp_histograms(receiver, since)
            (point,) = metric.histogram.data_points
            assert {kv.key: kv.value.string_value for kv in point.attributes} == labels
            assert metric.unit == c.UNITS.get(c.CHUNK_GAP, "ms")
            expected = getattr(
                AggregationTemporality, f"AGGREGATION_TEMPORALITY_{temporality}".upper()
            )
            assert metric.histogram.aggregation_temporality == expected
            assert list(point.explicit_bounds) == list(monitor.buckets[c.CHUNK_GAP])
            counts.append(point.count)
            sums.append(point.sum)
            buckets.append(list(point.bucket_counts))
    finally:
        otlp.shutdown()
    if temporality == "delta":
        assert counts == [149, 69]
        total_count, total_sum = sum(counts), sum(sums)
        total_buckets = [a + b for a, b in zip(*buckets, strict=True)]
    else:
        assert counts == [149, 149 + 69]
        total_count, total_sum, total_buckets = counts[-1], sums[-1], buckets[-1]
    assert total_count == registry.get_sample_value(c.count(c.CHUNK_GAP), labels)
    prom_sum = registry.get_sample_value(f"{c.CHUNK_GAP}_sum", labels)
    if temporality == "delta":
        # Two exported sums added here: the same numbers, associated differently.
        assert total_sum == pytest.approx(prom_sum, rel=1e-12)
    else:
        assert total_sum == prom_sum
    prom = [
        registry.get_sample_value(f"{c.CHUNK_GAP}_bucket", {**labels, "le": str(float(b))})
        for b in monitor.buckets[c.CHUNK_GAP]
    ]
    assert list(accumulate(total_buckets))[:-1] == prom
