"""Upstreams in their own processes, so their CPU and memory stay out of the measurement.

``simulator()`` runs ``python -m steadystream simulate`` (the fault-injecting Responses API
upstream, exactly as a user starts it); ``chat_upstream()`` runs the Chat Completions upstream in
``_chat_upstream.py``. Both yield the base URL for ``openai.OpenAI(base_url=...)`` and stop the
child (SIGTERM, then SIGKILL after a bound) however the block exits.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
_URL = re.compile(r"(http://127\.0\.0\.1:\d+/v1)")
_START_TIMEOUT = 30.0


def _wait_listening(url: str, deadline: float) -> None:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def _child(cmd: list[str]) -> Iterator[str]:
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE.parent
    )
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        url = None
        assert proc.stdout is not None
        while url is None:
            line = proc.stdout.readline()
            if not line:
                err = proc.stderr.read() if proc.stderr else ""
                raise RuntimeError(f"{' '.join(cmd)} exited before listening: {err.strip()}")
            m = _URL.search(line)
            if m:
                url = m.group(1)
            elif time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(cmd)} did not print its URL in time")
        _wait_listening(url, deadline)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def simulator(
    *, faults: str = "none", seed: int = 0, token_interval: str = "0"
) -> contextlib.AbstractContextManager[str]:
    """``steadystream simulate`` on a free loopback port, in a child process.

    ``token_interval``: the simulated model's time between deltas (``"0"``: as fast as the
    server's loop goes; ``"300ms"``: a paced model)."""
    return _child(
        [
            sys.executable,
            "-m",
            "steadystream",
            "simulate",
            "--port",
            "0",
            "--faults",
            faults,
            "--seed",
            str(seed),
            "--token-interval",
            token_interval,
        ]
    )


def chat_upstream() -> contextlib.AbstractContextManager[str]:
    """The Chat Completions streaming upstream, in a child process."""
    return _child([sys.executable, str(HERE / "_chat_upstream.py")])
