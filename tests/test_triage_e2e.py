"""Triage against a real Prometheus: inject each failure class in turn, triage ranks it first.

One Prometheus (loopback, 1 s scrape) scrapes one /metrics endpoint. Each injection gets its own
service name (so the classes' 5-minute windows do not bleed into each other), its own registry
behind that endpoint, and runs the demo workload (the real openai client, the resilient path)
through the simulator with the fault that causes the class. Triage is asked once the class's
signal is active and Prometheus has scraped three more times (waited for, not timed); the class
it ranks first is recorded.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from steadystream.demo import DEMO_MODEL, run_demo_async, slow_relay_stream
from steadystream.exporters import start_metrics_server
from steadystream.simulate import Profile
from steadystream.testing import PrometheusServer, ScrapeTarget
from steadystream.triage import TriageReport, triage

pytestmark = pytest.mark.prometheus

#: Short timeouts so each fault crosses the policy within seconds (the simulator's single-fault
#: profiles are tuned for the default 3 s / 8 s policy; these keep the test quick).
FAST_TIMEOUTS = {"first_token": "1s", "stream_idle": "1s", "total": "45s"}
STREAMS = 8


def _json_consumer(monitor: Any, client: Any, prompt: str) -> AsyncIterator[Any]:
    """A consumer that asked for JSON: the content is checked to be one complete document."""

    async def gen() -> AsyncIterator[Any]:
        stream = await client.responses.create(model=DEMO_MODEL, input=prompt, stream=True)
        async with monitor.wrap(stream, model=DEMO_MODEL, provider="openai", expect_json=True) as s:
            async for event in s:
                yield event

    return gen()


@dataclass(frozen=True)
class Injection:
    failure_class: str
    faults: str | Profile
    how: str
    stream: dict[str, Any] = field(default_factory=dict)
    stream_factory: Callable[[Any, Any, str], Any] | None = None


INJECTIONS = (
    Injection(
        c.FC_SLOW_CONSUMER,
        "none",
        "no upstream fault; consumers read 1 event / 100 ms through a 2 KiB relay buffer",
        stream_factory=slow_relay_stream,
    ),
    Injection(c.FC_UPSTREAM_RATE_LIMIT, "rate-limit", "profile rate-limit: every create 429"),
    Injection(c.FC_UPSTREAM_ERRORS, "outage", "profile outage: every create 503"),
    Injection(
        c.FC_RETRY_STORM,
        "early-drops",
        "profile early-drops: every connection dropped before content (first-token timeout "
        "30 s, so streams end by exhausting their retries, never by the clock)",
        # With the default 3 s first-token timeout, retries backing off from 300 ms end about
        # when the clock does; on a loaded machine the clock wins, first-token timeouts (which
        # explain a retry storm) become active too, and the injection stops being one class.
        {"timeouts": {"first_token": "30s", "stream_idle": "30s", "total": "45s"}},
    ),
    Injection(
        c.FC_RESUME_FAILURE,
        "resume-failure",
        "profile resume-failure: mid-stream drops, every resume 404",
    ),
    Injection(
        c.FC_IDLE_STALL,
        "stall",
        "profile stall: 10 s silence mid-stream (idle timeout 1 s)",
        {"timeouts": FAST_TIMEOUTS},
    ),
    Injection(
        c.FC_FIRST_TOKEN_TIMEOUT,
        "slow-first-token",
        "profile slow-first-token: 4 s to first token (first-token timeout 1 s)",
        {"timeouts": FAST_TIMEOUTS},
    ),
    Injection(
        c.FC_TIMEOUT_CASCADE,
        Profile("cascade", "slow first tokens and stalls", ((0.5, "delay=4s"), (0.5, "stall=10s"))),
        "half 4 s first tokens, half 10 s stalls, ingress cap = the 8 streams in flight",
        {"timeouts": FAST_TIMEOUTS, "ingress": {"max_concurrent": STREAMS}},
    ),
    Injection(
        c.FC_LOAD_SHEDDING,
        "slow-drip",
        "profile slow-drip (50 ms per write) with 8 streams against an ingress cap of 4",
        {"ingress": {"max_concurrent": STREAMS // 2}},
    ),
    Injection(
        c.FC_BROKEN_CHUNKS,
        "broken-chunks",
        "profile broken-chunks (frames cut at random) to consumers that asked for JSON",
        stream_factory=_json_consumer,
    ),
    Injection(
        c.FC_NO_TRAFFIC,
        Profile("hang", "the upstream never sends a token", ((1.0, "delay=60s"),)),
        "the upstream hangs before the first token: streams open, none finishes",
        {"timeouts": {"first_token": "40s", "stream_idle": "40s", "total": "45s"}},
    ),
)


def _spec(inj: Injection) -> ss.Spec:
    return ss.Spec.model_validate(
        {
            "version": 1,
            "service": f"triage-{inj.failure_class}",
            # Five streams in five minutes are enough traffic to judge, so the test is quick.
            "alerting": {"min_events": 5},
            "stream": inj.stream,
        }
    )


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[PrometheusServer, CollectorRegistry]]:
    parent = CollectorRegistry()
    with (
        start_metrics_server(0, "127.0.0.1", registry=parent) as exporter,
        PrometheusServer(targets=[ScrapeTarget(f"127.0.0.1:{exporter.port}", job="triage")]) as p,
    ):
        p.wait_for_targets_up()
        yield p, parent


async def _inject(
    inj: Injection, prom: PrometheusServer, parent: CollectorRegistry
) -> tuple[TriageReport, float]:
    spec = _spec(inj)
    registry = CollectorRegistry()
    parent.register(registry)  # type: ignore[arg-type]
    stop = asyncio.Event()
    kwargs: dict[str, Any] = {}
    if inj.stream_factory is not None:
        kwargs["stream_factory"] = inj.stream_factory
    with open(os.devnull, "w") as devnull:
        task = asyncio.create_task(
            run_demo_async(
                duration=120,
                streams=STREAMS,
                faults=inj.faults,
                spec=spec,
                registry=registry,
                metrics_port=None,
                seed=1,
                live=False,
                out=devnull,
                stop=stop,
                drain=0,
                **kwargs,
            )
        )
        started = time.monotonic()
        try:
            deadline = started + 60
            report = await asyncio.to_thread(triage, spec, prom.url)
            while time.monotonic() < deadline and not any(
                r.name == inj.failure_class for r in report.ranked_classes
            ):
                assert not task.done(), task
                await asyncio.sleep(1)
                report = await asyncio.to_thread(triage, spec, prom.url)
            active_after = time.monotonic() - started
            # Three more scrapes: let every other signal settle.
            await asyncio.to_thread(prom.wait_for_scrapes, 3, timeout=60)
            report = await asyncio.to_thread(triage, spec, prom.url)
        finally:
            stop.set()
            await task
            # Its series are never read again: off the endpoint, so that every scrape serves
            # one service's series, not those of every injection before it. Otherwise the
            # scrape grows with each injection and, on a loaded machine, outgrows Prometheus's
            # 1 s scrape timeout (0.08 s for the first injection, 0.76 s by the eighth under
            # four CPU-bound processes): a failed scrape records nothing.
            parent.unregister(registry)  # type: ignore[arg-type]
    return report, active_after


def _scrape_health(prom: PrometheusServer) -> str:
    """The endpoint's scrapes over the last two minutes, for a failure message."""
    job = '{job="triage"}'
    values = {
        "up (min)": prom.query_value(f"min_over_time(up{job}[2m])"),
        "scrape seconds (max)": prom.query_value(
            f"max_over_time(scrape_duration_seconds{job}[2m])"
        ),
        "samples": prom.query_value(f"scrape_samples_scraped{job}"),
    }
    return ", ".join(f"{k} {v}" for k, v in values.items())


async def test_triage_ranks_each_injected_failure_class_first(
    setup: tuple[PrometheusServer, CollectorRegistry],
) -> None:
    """For every injected failure class, triage ranks that class first."""
    prom, parent = setup
    table = []
    for inj in INJECTIONS:
        report, after = await _inject(inj, prom, parent)
        first = report.ranked_classes[0].name if report.ranked_classes else "(none)"
        others = [r.name for r in report.ranked_classes[1:]]
        table.append((inj.failure_class, first, others, round(after, 1), inj.how))
        assert report.has_data, (inj.failure_class, _scrape_health(prom))
    print("\ninjected -> ranked first (also active) [s to active] how")
    for row in table:
        print(f"{row[0]:<22} -> {row[1]:<22} {row[2]} [{row[3]}s] {row[4]}")
    assert [row[0] for row in table] == [row[1] for row in table], table
