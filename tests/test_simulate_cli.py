"""`steadystream simulate` serves the upstream in the foreground until interrupted."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading

import openai
import pytest

from steadystream.cli import main
from steadystream.simulate import expected_text


def _lines(proc: subprocess.Popen[str]) -> tuple[queue.Queue[str], threading.Thread]:
    # A reader thread, so waiting for the first line is bounded by a timeout.
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return lines, thread


def test_simulate_serves_until_interrupted() -> None:
    """The command prints the base URL, streams to the openai client, and exits 0 on Ctrl-C."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "steadystream",
            "simulate",
            "--faults",
            "none",
            "--seed",
            "4",
            "--token-interval",
            "0",
            "--first-token-latency",
            "1ms",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines, reader = _lines(proc)
        first = lines.get(timeout=30)
        match = re.search(r"(http://127\.0\.0\.1:\d+/v1)", first)
        assert match, first
        base_url = match.group(1)
        client = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)
        events = list(client.responses.create(model="gpt-4.1", input="cli", stream=True))
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert text == expected_text("cli", seed=4)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        reader.join(timeout=10)
        output = first + "".join(lines.get(timeout=5) for _ in range(lines.qsize()))
        assert "OpenAI(base_url=" in output
        assert "stopped: 1 requests" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_simulate_rejects_unknown_profile(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown --faults profile exits 2 and lists the known ones."""
    assert main(["simulate", "--faults", "nonesuch"]) == 2
    err = capsys.readouterr().err
    assert "nonesuch" in err and "flaky" in err and "rate-limit" in err


def test_simulate_rejects_bad_duration(capsys: pytest.CaptureFixture[str]) -> None:
    """A --token-interval without a unit exits 2 with the duration hint."""
    assert main(["simulate", "--token-interval", "20"]) == 2
    assert "invalid duration '20'" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_simulate_rejects_an_impossible_port(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A --port outside 0-65535 is a usage error (exit 2) naming the port, not a traceback."""
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--port", port])
    assert info.value.code == 2
    assert f"invalid port {port.lstrip('+')}" in capsys.readouterr().err.replace("'", "")
