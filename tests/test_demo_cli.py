"""`steadystream demo` end to end as a user runs it: real upstream, real openai client, /metrics."""

from __future__ import annotations

import json
import os
import pty
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from steadystream.demo import MetricsView, run_demo


@contextmanager
def _demo_process(*args: str) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    """The demo CLI in a child process (no TTY), with its stdout lines on a queue."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "steadystream", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        reader.join(timeout=5)


def _read_until(lines: queue.Queue[str], prefix: str, seen: list[str], timeout: float) -> str:
    """Collect lines until one starts with ``prefix`` (bounded by ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        if line.startswith(prefix):
            return line
    raise AssertionError(
        f"no line starting with {prefix!r} within {timeout}s; got:\n{''.join(seen)}"
    )


def _drain(proc: subprocess.Popen[str], lines: queue.Queue[str], seen: list[str]) -> int:
    code = proc.wait(timeout=90)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.2))
        except queue.Empty:
            if proc.stdout is None or proc.stdout.closed:
                break
    return code


def test_demo_cli_serves_metrics_and_prints_the_slo_report() -> None:
    """The CLI prints the /metrics address and scrape config, serves stream_* metrics, reports."""
    seen: list[str] = []
    with _demo_process("--duration", "4", "--streams", "4", "--faults", "flaky", "--seed", "3") as (
        proc,
        lines,
    ):
        metrics_line = _read_until(lines, "metrics: http://127.0.0.1:", seen, 60)
        url = metrics_line.split("metrics: ", 1)[1].strip()
        _read_until(lines, "scrape_configs:", seen, 10)
        _read_until(lines, "upstream: http://127.0.0.1:", seen, 30)
        _read_until(lines, "[", seen, 30)  # the first plain progress line
        body = ""
        deadline = time.monotonic() + 20
        while f"{c.REQUESTS_TOTAL}{{" not in body and time.monotonic() < deadline:
            body = httpx.get(url, timeout=5).text
            time.sleep(0.2)
        assert f"{c.REQUESTS_TOTAL}{{" in body
        assert 'service="chat-gateway"' in body
        code = _drain(proc, lines, seen)
    output = "".join(seen)
    assert code == 0, output
    assert "steadystream demo report: service chat-gateway, faults 'flaky'" in output
    for slo in ss.default_spec("x").slos:
        assert slo.name in output
    assert "failure classes seen" in output


def test_demo_cli_ctrl_c_stops_cleanly_and_still_reports() -> None:
    """SIGINT during a long run stops it early, exit 0, and the report says interrupted."""
    seen: list[str] = []
    with _demo_process("--duration", "120", "--streams", "4", "--faults", "none") as (
        proc,
        lines,
    ):
        _read_until(lines, "upstream: http://127.0.0.1:", seen, 60)
        _read_until(lines, "[", seen, 30)
        proc.send_signal(signal.SIGINT)
        code = _drain(proc, lines, seen)
    output = "".join(seen)
    assert code == 0, output
    assert "(interrupted)" in output
    report = output.split("steadystream demo report:", 1)[1]
    assert "abandoned" in report
    for slo in ss.default_spec("x").slos:
        assert f"  {slo.name}  " in report
    assert "Traceback" not in output


def test_demo_cli_rejects_unknown_profile() -> None:
    """An unknown --faults profile exits 2 naming the known profiles, before starting anything."""
    result = subprocess.run(
        [sys.executable, "-m", "steadystream", "demo", "--faults", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unknown fault profile 'nope'" in result.stderr
    assert "mixed" in result.stderr


@pytest.mark.parametrize(("provider", "slow"), [("openai", 0.5), ("chat", 0.3), ("anthropic", 0.3)])
def test_run_demo_counts_agree_with_the_metrics(provider: str, slow: float) -> None:
    """The demo's own stream counts equal the exported stream_requests/errors counters, for
    each provider the demo drives (resilient Responses, Chat Completions and Messages)."""
    registry = CollectorRegistry()
    with open(os.devnull, "w") as out:
        report = run_demo(
            duration=4,
            streams=6,
            faults="mixed",
            seed=5,
            metrics_port=None,
            live=False,
            out=out,
            registry=registry,
            # Relayed slow consumers included: stream_bytes_total counts what they received.
            slow_consumers=slow,
            provider=provider,
        )
    view = MetricsView(registry, report.service)
    assert report.streams_started > 0
    assert report.streams_finished == report.streams_started
    assert view.total(c.REQUESTS_TOTAL) == report.streams_finished
    assert view.total(c.ERRORS_TOTAL) == report.streams_failed
    assert view.by_label(c.ERRORS_TOTAL, c.LABEL_ERROR_CLASS) == {
        k: float(v) for k, v in report.errors.items()
    }
    assert view.total(c.BYTES_TOTAL) == report.content_bytes > 0
    # Chat Completions is OpenAI's API: its streams carry provider="openai".
    label = "openai" if provider == "chat" else provider
    assert view.by_label(c.REQUESTS_TOTAL, c.LABEL_PROVIDER) == {
        label: float(report.streams_finished)
    }
    assert json.loads(json.dumps(report.to_dict()))["streams_finished"] == report.streams_finished


def test_demo_cli_port_in_use_is_a_clear_error() -> None:
    """A metrics port that is already taken exits 1 naming the port, without a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "steadystream", "demo", "--metrics-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"metrics port {port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_cli_json_report_on_stdout() -> None:
    """--json prints the report as JSON on stdout; progress goes to stderr."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "steadystream",
            "demo",
            "--duration",
            "2",
            "--streams",
            "2",
            "--faults",
            "none",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["faults"] == "none"
    assert data["streams_finished"] == data["streams_ok"] > 0
    assert {s["name"]: s["verdict"] for s in data["slos"]}["stream-errors"] == "PASS"
    assert "metrics: http://127.0.0.1:" in result.stderr


def test_demo_cli_on_a_terminal_draws_the_live_table() -> None:
    """On a TTY the progress is a live rich table with every SLO against its target."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "LINES": "50", "TERM": "xterm"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "steadystream",
            "demo",
            "--duration",
            "2",
            "--streams",
            "2",
            "--faults",
            "none",
        ],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    assert proc.wait(timeout=30) == 0
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "steadystream demo: chat-gateway" in screen
    assert "streams done" in screen
    for slo in ss.default_spec("x").slos:
        assert slo.name in screen
    assert "steadystream demo report" in screen
