"""A fault makes its failure-class alert go pending or firing in a real Prometheus, and triage
reports both the failure class and the SLO whose error budget it burns.

The spec is written here with a short alert configuration (`for: 1s`, a low traffic floor), its
rules are generated with `render_all` and loaded into a real Prometheus (1 s scrape and
evaluation), and the demo drives streams through the simulator's 100 % 429 profile.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from steadystream.catalog.links import runbook_url
from steadystream.demo import run_demo_async, scrape_job
from steadystream.exporters import start_metrics_server
from steadystream.generate import Source, render_all
from steadystream.testing import PrometheusServer, ScrapeTarget
from steadystream.triage import triage

pytestmark = pytest.mark.prometheus

SPEC = """\
version: 1
service: alert-e2e
selector: {job: alert-e2e}
period: 1h
links: {runbooks: https://runbooks.example.test/alert-e2e}
alerting:
  min_events: 5
  tiers:
    - {severity: critical, long: 2m, short: 1m, budget: 2%, for: 1s}
  failure_classes:
    upstream-rate-limit: {for: 1s}
"""


def _matching(alerts: list[dict[str, Any]], failure_class: str) -> list[dict[str, Any]]:
    return [
        a
        for a in alerts
        if a["labels"].get("failure_class") == failure_class and a["state"] in ("pending", "firing")
    ]


async def test_rate_limit_fault_fires_its_alert_with_the_runbook(tmp_path: Path) -> None:
    """100 % 429s fire the upstream-rate-limit alert with its runbook_url; triage sees the burn."""
    spec_path = tmp_path / "slo.yaml"
    spec_path.write_text(SPEC, encoding="utf-8")
    spec = ss.load_spec(spec_path)
    files = render_all(spec, Source.from_bytes("slo.yaml", SPEC.encode()))
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    # The whole directory by glob, as a deployment loads it (only rule files live there).
    rules = tmp_path / c.ALERTS_DIR / "*.yaml"
    expected_runbook = runbook_url(spec, c.failure_class_runbook(c.FC_UPSTREAM_RATE_LIMIT))
    assert expected_runbook == "https://runbooks.example.test/alert-e2e/upstream-rate-limit.md"

    registry = CollectorRegistry()
    job, labels = scrape_job(spec)
    stop = asyncio.Event()
    with (
        start_metrics_server(0, "127.0.0.1", registry=registry) as exporter,
        PrometheusServer(
            rule_files=[rules],
            targets=[ScrapeTarget(f"127.0.0.1:{exporter.port}", job=job, labels=labels)],
        ) as prom,
        open(os.devnull, "w") as devnull,
    ):
        await asyncio.to_thread(prom.wait_for_targets_up)
        demo = asyncio.create_task(
            run_demo_async(
                duration=300,
                streams=8,
                faults="rate-limit",
                spec=spec,
                registry=registry,
                metrics_port=None,
                live=False,
                out=devnull,
                stop=stop,
                drain=0,
            )
        )
        try:
            deadline = time.monotonic() + 60
            matching: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not matching:
                assert not demo.done()
                await asyncio.sleep(1)
                matching = _matching(await asyncio.to_thread(prom.alerts), c.FC_UPSTREAM_RATE_LIMIT)
            assert matching, f"no upstream-rate-limit alert; active: {prom.alerts()}"
            triaged = await asyncio.to_thread(triage, spec, prom.url)
            # Every stream fails, so the stream-errors budget burns 100x; triage reads the burn
            # from the recorded SLI series, which the SLI groups write once a minute.
            deadline = time.monotonic() + 150
            burning = await asyncio.to_thread(triage, spec, prom.url)
            while time.monotonic() < deadline and not burning.burning:
                assert not demo.done()
                await asyncio.sleep(2)
                burning = await asyncio.to_thread(triage, spec, prom.url)
        finally:
            stop.set()
            report = await demo
    names = {a["labels"]["alertname"] for a in matching}
    assert names <= {"StreamUpstreamRateLimited", "StreamRateLimitFailures"}
    for alert in matching:
        assert alert["annotations"]["runbook_url"] == expected_runbook
        assert alert["labels"]["service"] == spec.service
        assert alert["labels"]["job"] == job
        assert alert["labels"]["severity"]
    # The demo saw the 429s the alert is about, and triage sends on-call to the same runbook.
    assert report.retries.get(c.RETRY_REASON_429, 0) > 0
    assert triaged.ranked_classes[0].name == c.FC_UPSTREAM_RATE_LIMIT
    assert triaged.ranked_classes[0].runbook == expected_runbook
    # The SLO burn half of triage: the burning SLO, its tier's factor and its runbook.
    assert [r.name for r in burning.burning] == ["stream-errors"], burning.to_dict()["findings"]
    # Every stream fails: the outage fast path, the tier, or both by now.
    evidence = burning.burning[0].evidence
    assert evidence and {e.check.name for e in evidence} <= {
        "stream-errors-2m-1m",
        "stream-errors-outage",
    }
    for e in evidence:
        assert e.value is not None and e.value > e.check.threshold
    assert burning.burning[0].runbook == runbook_url(spec, c.slo_runbook("stream-errors"))
    assert burning.exit_code == 1
