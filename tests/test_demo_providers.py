"""demo --provider chat and anthropic from the command line (the in-process counts are checked
for every provider in test_demo_cli.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize("provider", ["chat", "anthropic"])
def test_demo_cli_provider_json(provider: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "steadystream",
            "demo",
            "--provider",
            provider,
            "--duration",
            "2",
            "--streams",
            "3",
            "--faults",
            "drops",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["streams_finished"] == report["streams_started"] > 0
    assert "/v1" in result.stderr  # the upstream line names the simulator
