"""``triage`` against malformed Prometheus replies, bad arguments and a slow Prometheus: every
case ends in a stated exit code and message, never a traceback or an unbounded wait.

The malformed replies come from a small HTTP server on loopback (a real server, real HTTP);
the reachable-Prometheus cases in test_triage.py use a real Prometheus.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

import steadystream as ss
from steadystream import cli
from steadystream.triage import (
    EXIT_INTERNAL,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    MAX_CONCURRENT_QUERIES,
    MAX_REPLY_BYTES,
    PrometheusUnreachable,
    checks_for,
    discover_services,
    triage,
)

COVERAGE = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {}, "value": [1700000000, "12"]}
]}}  # fmt: skip
EMPTY = {"status": "success", "data": {"resultType": "vector", "result": []}}


class FakePrometheus:
    """A loopback HTTP server answering ``/api/v1/query`` through ``reply(query)``: a dict
    (sent as JSON), bytes (sent raw), or None (hold the request until :meth:`release`)."""

    def __init__(self, reply: Callable[[str], Any]) -> None:
        self.reply = reply
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.queries: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                query = form.get("query", [""])[0]
                with outer.lock:
                    outer.queries.append(query)
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    body = outer.reply(query)
                    if body is None:
                        outer.released.wait(120)
                        body = EMPTY
                    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with outer.lock:
                        outer.in_flight -= 1

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakePrometheus:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[Callable[[Callable[[str], Any]], FakePrometheus]]:
    servers: list[FakePrometheus] = []

    def start(reply: Callable[[str], Any]) -> FakePrometheus:
        server = FakePrometheus(reply).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


def _vector(result: Any) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


MALFORMED: dict[str, Any] = {
    "result-is-a-string": _vector("oops"),
    "value-not-a-number": _vector([{"metric": {}, "value": [1, "many"]}]),
    "value-array-too-short": _vector([{"metric": {}, "value": [1]}]),
    "value-missing": _vector([{"metric": {}}]),
    "item-not-an-object": _vector([["a", "b"]]),
    "metric-not-an-object": _vector([{"metric": "svc", "value": [1, "1"]}]),
    "label-not-a-string": _vector([{"metric": {"service": 7}, "value": [1, "1"]}]),
    "scalar-too-short": {"status": "success", "data": {"resultType": "scalar", "result": [1]}},
    "scalar-not-a-number": {
        "status": "success",
        "data": {"resultType": "scalar", "result": [1, {"x": 1}]},
    },
    "matrix-for-an-instant-query": {
        "status": "success",
        "data": {"resultType": "matrix", "result": []},
    },
    "data-missing": {"status": "success"},
    "status-not-a-string": {"status": ["success"], "data": {}},
    "not-json": b"<html>proxy error</html>",
    "json-nested-100k-deep": b"[" * 100_000 + b"]" * 100_000,
    "json-but-a-list": b"[1, 2]",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_reply_to_a_check_is_that_checks_error(fake: Any, body: Any) -> None:
    """A check whose reply breaks the API's schema is an error finding naming the problem;
    the other checks still run, and the report exits 3, not 1."""
    prom = fake(lambda q: COVERAGE if q.startswith("count(") else body)
    report = triage(ss.default_spec("svc"), prom.url, timeout=30)
    assert report.findings and all(f.state == "error" for f in report.findings)
    assert all("reply" in (f.error or "") for f in report.findings), report.findings[0].error
    assert report.exit_code == EXIT_UNREACHABLE


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_reply_in_discovery_or_coverage_is_unreachable(fake: Any, body: Any) -> None:
    """Service discovery and the coverage query reject a malformed reply as Prometheus not
    speaking its API: PrometheusUnreachable, exit 3."""
    prom = fake(lambda q: body)
    with pytest.raises(PrometheusUnreachable, match="reply"):
        discover_services(prom.url, timeout=30)
    with pytest.raises(PrometheusUnreachable, match="reply"):
        triage(ss.default_spec("svc"), prom.url, timeout=30)


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_cli_malformed_discovery_exits_3_without_traceback(
    fake: Any, json_output: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """`triage` with a malformed discovery reply exits 3 with one message (and, with --json,
    a JSON error object on stdout)."""
    prom = fake(lambda q: MALFORMED["value-array-too-short"])
    code = cli.main(["triage", "--prometheus", prom.url, *(["--json"] if json_output else [])])
    assert code == EXIT_UNREACHABLE
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "reply" in captured.err
    if json_output:
        data = json.loads(captured.out)
        assert data["exit_code"] == EXIT_UNREACHABLE and data["error"]["kind"] == "unreachable"
        assert "reply" in data["error"]["message"]


def test_an_oversized_reply_is_refused_unread(fake: Any) -> None:
    """A reply past MAX_REPLY_BYTES is an error finding, read no further than the bound."""
    huge = (
        b'{"status": "success", "data": {"resultType": "vector", "result": ["'
        + b"x" * (MAX_REPLY_BYTES + 1)
        + b'"]}}'
    )
    prom = fake(lambda q: COVERAGE if q.startswith("count(") else huge)
    spec = ss.default_spec("svc")
    report = triage(spec, prom.url, timeout=60, checks=checks_for(spec)[:1])
    assert [f.state for f in report.findings] == ["error"]
    assert f"over {MAX_REPLY_BYTES} bytes" in (report.findings[0].error or "")


def test_cli_json_prints_an_error_object_when_prometheus_is_down(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`triage --json` against a closed port prints a JSON error object, exit 3."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = cli.main(["triage", "--prometheus", f"http://127.0.0.1:{port}", "--service", "svc",
                     "--json"])  # fmt: skip
    assert code == EXIT_UNREACHABLE
    data = json.loads(capsys.readouterr().out)
    assert data == {
        "error": {"kind": "unreachable", "message": data["error"]["message"]},
        "exit_code": EXIT_UNREACHABLE,
        "prometheus": f"http://127.0.0.1:{port}",
    }


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--prometheus", "localhost:9090"], "--prometheus"),
        (["--prometheus", "http://[::1"], "--prometheus"),
        (["--prometheus", "ftp://prometheus:9090"], "--prometheus"),
        (["--prometheus", "http://"], "--prometheus"),
        (["--prometheus", "http://p:9090", "--timeout", "-1"], "--timeout"),
        (["--prometheus", "http://p:9090", "--timeout", "nan"], "--timeout"),
        (["--prometheus", "http://p:9090", "--timeout", "inf"], "--timeout"),
        (["--prometheus", "http://p:9090", "--timeout", "0"], "--timeout"),
        (["--prometheus", "http://p:9090", "--deadline", "-5"], "--deadline"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], needle: str) -> None:
    """An invalid URL or a timeout that is not a finite positive number: exit 2, one clear
    message, no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "steadystream", "triage", "--service", "svc", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "Traceback" not in done.stderr and needle in done.stderr


def test_triage_refuses_bad_numbers_in_the_api() -> None:
    """The Python API refuses a timeout or deadline that is not finite and positive."""
    for bad in (-1.0, 0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="timeout"):
            triage(ss.default_spec("svc"), "http://127.0.0.1:9", timeout=bad)
        with pytest.raises(ValueError, match="deadline"):
            triage(ss.default_spec("svc"), "http://127.0.0.1:9", deadline=bad)


def test_deadline_bounds_a_slow_prometheus_and_queries_run_a_few_at_a_time(fake: Any) -> None:
    """With every check's query held by the server, triage returns at its deadline: the
    checks it could not finish are errors saying so (exit 3), and the server never saw more
    than MAX_CONCURRENT_QUERIES queries at once (it saw that many: they run concurrently)."""
    prom = fake(lambda q: COVERAGE if q.startswith("count(") else None)
    report = triage(ss.default_spec("svc"), prom.url, timeout=60, deadline=2)
    assert report.exit_code == EXIT_UNREACHABLE
    errors = [f.error or "" for f in report.findings]
    assert errors and all("deadline" in e for e in errors)
    assert prom.max_in_flight == MAX_CONCURRENT_QUERIES
    assert report.to_dict()["findings"][0]["state"] == "error"


def test_queries_run_concurrently_and_all_complete(fake: Any) -> None:
    """Every check is evaluated once, a few at a time, when the server answers."""
    prom = fake(lambda q: COVERAGE if q.startswith("count(") else EMPTY)
    spec = ss.default_spec("svc")
    report = triage(spec, prom.url, timeout=30)
    assert len(prom.queries) == len(report.findings) + 1
    assert sorted(prom.queries[1:]) == sorted(f.check.expr for f in report.findings)
    assert all(f.state == "no_series" for f in report.findings)
    assert prom.max_in_flight <= MAX_CONCURRENT_QUERIES


def test_an_internal_error_has_its_own_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fake: Any
) -> None:
    """A bug inside triage (here: a renderer raising) exits EXIT_INTERNAL with one line
    naming it, never 1 (which means "a failure class is active")."""
    import steadystream.triage as t

    def broken(*_: object) -> str:
        raise KeyError("boom")

    monkeypatch.setattr(t.TriageReport, "render_text", broken)
    prom = fake(lambda q: COVERAGE if q.startswith("count(") else EMPTY)
    code = cli.main(["triage", "--prometheus", prom.url, "--service", "svc"])
    assert code == EXIT_INTERNAL != 1
    err = capsys.readouterr().err
    assert "internal error" in err and "KeyError" in err and "Traceback" not in err
