"""Retry storm: 200 concurrent async streams against an upstream that fails 100 %.

The retry budget must hold retries to its share of requests plus the floor, counted from the
metrics and from the simulator's own request counters (the budget's clock is frozen, so the
floor does not refill and the count is exact, not timed). When the upstream recovers, the same
monitor serves a full wave of streams byte-exactly.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import openai
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from steadystream.instrumentation.monitor import StreamMonitor
from steadystream.instrumentation.openai import responses_stream
from steadystream.instrumentation.policy.budget import RetryBudget
from steadystream.simulate import ROUTE_CREATE, Upstream, expected_text

STREAMS = 200
MODEL = "gpt-4.1"
SHARE = 0.2
FLOOR_PER_SECOND = 1.0
TTL = 10.0
MAX_RETRIES = 3


def make_monitor(registry: CollectorRegistry) -> StreamMonitor:
    spec = ss.Spec.model_validate(
        {
            "version": 1,
            "service": "storm",
            "stream": {
                # Generous connect budgets: 200 connections at once on a loaded machine must not
                # turn a counted 5xx retry into a connect timeout that never reaches the upstream.
                "timeouts": {
                    "dial": "20s",
                    "tls_handshake": "10s",
                    "first_token": "30s",
                    "stream_idle": "30s",
                    "total": "120s",
                },
                "retry": {
                    "max_retries": MAX_RETRIES,
                    "base_backoff": "5ms",
                    "max_backoff": "20ms",
                    "budget": f"{SHARE:.0%}",
                    "min_per_second": FLOOR_PER_SECOND,
                },
                # The upstream runs on this loop too: 200 streams plus a loaded machine lag it,
                # and every stream must be admitted for the counts to be exact.
                "ingress": {
                    "max_concurrent": 1000,
                    "rate": "100000/s",
                    "overload": {"shed": False},
                },
            },
        }
    )
    # A frozen budget clock: the floor's reserve never refills and deposits never decay, so
    # the allowance is exactly share x requests + floor x ttl whatever the machine's speed.
    return StreamMonitor(
        spec,
        registry=registry,
        budget=RetryBudget(SHARE, FLOOR_PER_SECOND, ttl=TTL, clock=lambda: 0.0),
    )


def value(registry: CollectorRegistry, metric: str, **extra: str) -> float:
    labels = {"service": "storm", "model": MODEL, "provider": "openai", **extra}
    return registry.get_sample_value(metric, labels) or 0.0


async def one_stream(monitor: StreamMonitor, client: Any, i: int) -> str | BaseException:
    text = []
    try:
        async for event in responses_stream(monitor, client, model=MODEL, input=f"storm {i}"):
            if event.type == "response.output_text.delta":
                text.append(event.delta)
    except ss.StreamError as exc:
        return exc
    return "".join(text)


async def test_retry_storm_is_bounded_and_service_recovers(upstream: Upstream) -> None:
    """Under a full outage retries stay within the budget; after it, every stream succeeds."""
    registry = CollectorRegistry()
    monitor = make_monitor(registry)
    client = openai.AsyncOpenAI(base_url=upstream.base_url, api_key="test")
    upstream.profile = "outage"
    before = upstream.stats

    results = await asyncio.gather(*(one_stream(monitor, client, i) for i in range(STREAMS)))

    allowance = math.floor(SHARE * STREAMS + FLOOR_PER_SECOND * TTL + 1e-9)
    assert allowance < STREAMS * MAX_RETRIES  # the budget, not max_retries, is the limit
    retries = value(registry, "stream_retry_total", reason=c.RETRY_REASON_5XX)
    assert retries == allowance
    sent = upstream.stats.requests_to(ROUTE_CREATE, 503) - before.requests_to(ROUTE_CREATE, 503)
    assert sent == STREAMS + allowance  # the upstream saw no retry beyond the budget
    assert all(isinstance(r, ss.StreamError) for r in results)
    exhausted = [r for r in results if isinstance(r, ss.RetryBudgetExhausted)]
    gave_up = [r for r in results if type(r) is ss.UpstreamError]
    assert len(exhausted) + len(gave_up) == STREAMS
    assert all(r.status == 503 for r in gave_up)
    assert value(registry, "stream_retry_budget_exhausted_total") == len(exhausted)
    # Each stream that got no token failed fast after one request.
    assert len(exhausted) >= STREAMS - allowance
    assert value(registry, "stream_requests_total", outcome=c.OUTCOME_ERROR) == STREAMS
    # The error class names the root cause; the refused retries have their own counter.
    assert value(registry, "stream_errors_total", error_class=c.ERROR_CLASS_UPSTREAM_5XX) == STREAMS
    assert value(registry, "stream_in_flight") == 0

    upstream.profile = "none"
    recovered = await asyncio.gather(*(one_stream(monitor, client, i) for i in range(STREAMS)))

    for i, text in enumerate(recovered):
        assert text == expected_text(f"storm {i}", seed=0), f"stream {i}: {text!r}"
    assert value(registry, "stream_retry_total", reason=c.RETRY_REASON_5XX) == allowance
    assert value(registry, "stream_requests_total", outcome=c.OUTCOME_OK) == STREAMS
    await client.close()


def test_sync_storm_from_many_threads_shares_one_budget(upstream: Upstream) -> None:
    """Sync streams on 40 threads draw from the same budget; the total is still exact."""
    from concurrent.futures import ThreadPoolExecutor

    threads = 40
    registry = CollectorRegistry()
    monitor = make_monitor(registry)
    client = openai.OpenAI(base_url=upstream.base_url, api_key="test")
    upstream.profile = "outage"
    before = upstream.stats

    def one(i: int) -> BaseException | None:
        try:
            for _ in responses_stream(monitor, client, model=MODEL, input=f"sync storm {i}"):
                pass
        except ss.StreamError as exc:
            return exc
        return None

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(one, range(threads)))

    allowance = math.floor(SHARE * threads + FLOOR_PER_SECOND * TTL + 1e-9)
    assert all(isinstance(r, ss.StreamError) for r in results)
    assert value(registry, "stream_retry_total", reason=c.RETRY_REASON_5XX) == allowance
    sent = upstream.stats.requests_to(ROUTE_CREATE, 503) - before.requests_to(ROUTE_CREATE, 503)
    assert sent == threads + allowance
    exhausted = sum(isinstance(r, ss.RetryBudgetExhausted) for r in results)
    assert value(registry, "stream_retry_budget_exhausted_total") == exhausted
    assert value(registry, "stream_in_flight") == 0
    client.close()
