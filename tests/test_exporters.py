"""Exporters: the standalone /metrics server, the ASGI app, multiprocess mode and OTLP."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

import steadystream as ss
from steadystream import conventions as c
from steadystream.exporters import metrics_asgi_app, setup_otlp, start_metrics_server


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
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                outer.requests.append((self.path, self.headers["Content-Type"], body))
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
