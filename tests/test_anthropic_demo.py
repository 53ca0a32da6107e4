"""demo --provider anthropic: resilient Messages streams through the simulator's faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from prometheus_client import CollectorRegistry

from steadystream import conventions as c
from steadystream.demo import run_demo
from test_demo_cli import MetricsView  # the same metric reading as the OpenAI demo's test


def test_anthropic_demo_counts_agree_with_the_metrics() -> None:
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
            slow_consumers=0.3,
            provider="anthropic",
        )
    view = MetricsView(registry, report.service)
    assert report.streams_started > 0
    assert report.streams_finished == report.streams_started
    assert view.total(c.REQUESTS_TOTAL) == report.streams_finished
    assert view.total(c.ERRORS_TOTAL) == report.streams_failed
    assert view.total(c.BYTES_TOTAL) == report.content_bytes > 0
    providers = {
        s.labels[c.LABEL_PROVIDER]
        for m in registry.collect()
        for s in m.samples
        if s.name == c.REQUESTS_TOTAL
    }
    assert providers == {"anthropic"}


def test_demo_cli_provider_anthropic_json() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "steadystream",
            "demo",
            "--provider",
            "anthropic",
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
