"""Shared limits in one process, against a real redis-server on loopback: the shared token
bucket and retry budget, cluster-wide leases that expire, the spec section and its environment
variable, and the fallback to local limits while Redis is away."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import redis
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from steadystream.instrumentation.openai import responses_stream
from steadystream.instrumentation.policy.budget import RetryBudget
from steadystream.instrumentation.policy.ingress import IngressGuard
from steadystream.instrumentation.policy.shared import (
    ENV_URL,
    SharedIngressGuard,
    SharedRetryBudget,
    SharedStore,
    shared_settings,
)
from steadystream.simulate import Upstream, expected_text
from steadystream.testing import RedisServer

pytestmark = pytest.mark.redis

SERVICE = "shared-svc"
SHARED_LOGGER = "steadystream.instrumentation.policy.shared"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def make_spec(url: str | None, **stream: Any) -> ss.Spec:
    data: dict[str, Any] = {"version": 1, "service": SERVICE, "stream": dict(stream)}
    if url is not None:
        data["stream"].setdefault("shared", {})["url"] = url
    return ss.Spec.model_validate(data)


def fallbacks(registry: CollectorRegistry, limit: str) -> float | None:
    return registry.get_sample_value(
        c.SHARED_FALLBACK_TOTAL, {c.LABEL_SERVICE: SERVICE, c.LABEL_LIMIT: limit}
    )


def admitted(guard: IngressGuard, attempts: int) -> tuple[int, list[str]]:
    count, reasons = 0, []
    for _ in range(attempts):
        try:
            guard.acquire().release()
        except ss.IngressRejected as exc:
            reasons.append(exc.reason)
        else:
            count += 1
    return count, reasons


def wait_for(probe: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        time.sleep(0.05)


# ------------------------------------------------------------------------------ the spec


def test_spec_section_builds_shared_limits(redis_server: RedisServer) -> None:
    """stream.shared makes the monitor's guard and budget the shared ones, metric at zero."""
    registry = CollectorRegistry()
    monitor = ss.StreamMonitor(make_spec(redis_server.url), registry=registry)
    assert isinstance(monitor.ingress, SharedIngressGuard)
    assert isinstance(monitor.budget, SharedRetryBudget)
    assert monitor.shared is not None and monitor.shared.where == redis_server.url
    assert fallbacks(registry, c.LIMIT_RATE) == 0
    assert fallbacks(registry, c.LIMIT_RETRY_BUDGET) == 0
    # No global cap configured: no concurrency fallback series.
    assert fallbacks(registry, c.LIMIT_CONCURRENCY) is None


def test_without_shared_settings_limits_stay_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """No section and no environment variable: the plain local guard and budget."""
    monkeypatch.delenv(ENV_URL, raising=False)
    monitor = ss.StreamMonitor(make_spec(None), registry=CollectorRegistry())
    assert type(monitor.ingress) is IngressGuard
    assert type(monitor.budget) is RetryBudget
    assert monitor.shared is None


def test_environment_variable_applies_when_the_spec_has_no_section() -> None:
    """STEADYSTREAM_REDIS_URL is used without a section; an explicit section wins over it."""
    env = {ENV_URL: "redis://10.0.0.9:6380/2"}
    from_env = shared_settings(make_spec(None), env)
    assert from_env is not None and from_env.url == "redis://10.0.0.9:6380/2"
    assert from_env.timeout == 0.05
    from_spec = shared_settings(make_spec("redis://127.0.0.1:7000/0"), env)
    assert from_spec is not None and from_spec.url == "redis://127.0.0.1:7000/0"
    assert shared_settings(make_spec(None), {ENV_URL: "  "}) is None
    with pytest.raises(ValueError, match=ENV_URL):
        shared_settings(make_spec(None), {ENV_URL: "http://not-redis"})


def test_bad_shared_section_names_the_field(tmp_path: Any) -> None:
    """A wrong URL, an unknown key or a long timeout is an error at file:line naming the field."""
    path = tmp_path / "slo.yaml"
    path.write_text(
        "version: 1\nservice: x\nstream:\n  shared:\n    url: http://cache:6379\n"
        "    timeout: 10s\n    maxconcurrent: 3\n",
        encoding="utf-8",
    )
    with pytest.raises(ss.SpecError) as info:
        ss.load_spec(path)
    text = str(info.value)
    assert f"{path}:5:" in text and "stream.shared.url" in text and "Redis URL" in text
    assert "stream.shared.timeout" in text and "5s" in text
    assert "stream.shared.maxconcurrent" in text


# ------------------------------------------------------------------------------ rate limit


def test_two_monitors_share_one_token_bucket(redis_server: RedisServer) -> None:
    """Two monitors (as two processes would) draw from one bucket: burst 10 admits 10 in all.
    The bucket refills at 1/h, so the count does not depend on the machine's speed."""
    spec = make_spec(redis_server.url, ingress={"rate": "1/h", "burst": 10})
    a = ss.StreamMonitor(spec, registry=CollectorRegistry())
    b = ss.StreamMonitor(spec, registry=CollectorRegistry())
    got_a, reasons_a = admitted(a.ingress, 8)
    got_b, reasons_b = admitted(b.ingress, 8)
    assert (got_a, got_b) == (8, 2)
    assert reasons_a == [] and reasons_b == [c.REJECT_RATE] * 6
    assert b.ingress.rejected(c.REJECT_RATE) == 6
    assert a.ingress.in_flight == b.ingress.in_flight == 0


def test_rejection_says_the_limit_is_cluster_wide(redis_server: RedisServer) -> None:
    """The rate rejection message names the shared limit and the service."""
    monitor = ss.StreamMonitor(
        make_spec(redis_server.url, ingress={"rate": "1/h", "burst": 1}),
        registry=CollectorRegistry(),
    )
    monitor.ingress.acquire().release()
    with pytest.raises(ss.IngressRejected) as info:
        monitor.ingress.acquire()
    assert info.value.reason == c.REJECT_RATE
    assert "cluster-wide" in str(info.value) and SERVICE in str(info.value)


def test_lost_scripts_are_loaded_again(redis_server: RedisServer) -> None:
    """After SCRIPT FLUSH (as after a restart) EVALSHA's NOSCRIPT falls back to EVAL."""
    monitor = ss.StreamMonitor(make_spec(redis_server.url), registry=CollectorRegistry())
    monitor.ingress.acquire().release()
    client = redis.Redis.from_url(redis_server.url)
    client.script_flush()
    monitor.ingress.acquire().release()
    monitor.budget.deposit()
    assert monitor.shared is not None and monitor.shared.available
    assert monitor.shared.fallbacks == dict.fromkeys(c.SHARED_LIMITS, 0)
    client.close()


# ------------------------------------------------------------------------------ global cap


def test_global_cap_leases_expire_when_their_holder_dies(redis_server: RedisServer) -> None:
    """A cluster-wide slot never released (its process died) frees itself at lease expiry."""
    store = SharedStore(redis_server.url, timeout=0.5)
    guard = SharedIngressGuard(
        10, 1000.0, store=store, service=SERVICE, global_max_concurrent=2, lease_ttl=1.0
    )
    other = SharedIngressGuard(
        10, 1000.0, store=store, service=SERVICE, global_max_concurrent=2, lease_ttl=1.0
    )
    held = [guard.acquire(), guard.acquire()]  # never released: the "dead" holder
    assert all(t.lease for t in held)
    with pytest.raises(ss.IngressRejected) as info:
        other.acquire()
    assert info.value.reason == c.REJECT_CONCURRENCY and "across the cluster" in str(info.value)
    # Redis's clock decides when the leases end; wait for it, bounded.
    ticket = wait_for(lambda: _try(other), "the dead holder's leases to expire")
    ticket.release()
    # A released lease frees its slot at once.
    fresh = other.acquire()
    fresh.release()
    second = other.acquire()
    third = other.acquire()
    with pytest.raises(ss.IngressRejected):
        other.acquire()
    second.release()
    third.release()
    store.close()


def _try(guard: IngressGuard) -> Any:
    try:
        return guard.acquire()
    except ss.IngressRejected:
        return None


def test_local_cap_is_checked_first_and_spends_no_shared_token(redis_server: RedisServer) -> None:
    """The per-process cap still holds, and a stream it refuses takes no token from Redis."""
    monitor = ss.StreamMonitor(
        make_spec(redis_server.url, ingress={"max_concurrent": 1, "rate": "1/h", "burst": 2}),
        registry=CollectorRegistry(),
    )
    first = monitor.ingress.acquire()
    for _ in range(5):
        with pytest.raises(ss.IngressRejected) as info:
            monitor.ingress.acquire()
        assert info.value.reason == c.REJECT_CONCURRENCY
    first.release()
    monitor.ingress.acquire().release()  # the second token of the burst was still there


# ------------------------------------------------------------------------------ retry budget


def test_budget_is_shared_and_counted_in_redis(redis_server: RedisServer) -> None:
    """Deposits from one budget pay for retries in another; Redis holds the cluster counts.
    Deposits live an hour here, so their decay does not depend on the machine's speed."""
    store = SharedStore(redis_server.url, timeout=0.5)
    a, b = (SharedRetryBudget(0.5, 0.0, store=store, service=SERVICE, ttl=3600.0) for _ in range(2))
    for _ in range(4):
        a.deposit()
    granted = [b.try_withdraw() for _ in range(3)]
    assert granted == [True, False, False] or granted == [True, True, False]
    # 4 x 50 % = 2 tokens, less a hair of decay: the second withdrawal needs a whole token.
    a.deposit()
    assert b.try_withdraw() is True
    stats = b.shared_stats()
    assert stats is not None
    assert stats.requests == 5 and stats.retries + stats.refused == 4
    assert b.stats().retries == stats.retries and a.stats().requests == 5
    store.close()


async def test_async_path_awaits_the_shared_limits(redis_server: RedisServer) -> None:
    """acquire_async, deposit_async and try_withdraw_async decide in Redis too."""
    spec = make_spec(
        redis_server.url,
        ingress={"rate": "1/h", "burst": 3},
        retry={"budget": "100%", "min_per_second": 0},
    )
    monitor = ss.StreamMonitor(spec, registry=CollectorRegistry())
    sync_twin = ss.StreamMonitor(spec, registry=CollectorRegistry())
    ticket = await monitor.ingress.acquire_async()
    sync_twin.ingress.acquire().release()
    ticket.release()
    results = []
    for _ in range(3):
        try:
            (await monitor.ingress.acquire_async()).release()
            results.append("ok")
        except ss.IngressRejected as exc:
            results.append(exc.reason)
    assert results == ["ok", c.REJECT_RATE, c.REJECT_RATE]
    for _ in range(3):
        await monitor.budget.deposit_async()
    # Three tokens, decaying over ten seconds: two whole retries for the two monitors.
    assert sync_twin.budget.try_withdraw() is True
    assert await monitor.budget.try_withdraw_async() is True
    assert isinstance(monitor.budget, SharedRetryBudget)
    stats = monitor.budget.shared_stats()
    assert stats is not None and (stats.requests, stats.retries) == (3, 2)


# ------------------------------------------------------------------------------ outage


def test_outage_falls_back_at_once_and_recovery_is_picked_up(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis stopped: every decision is local, counted, logged once; Redis back: shared again."""
    registry = CollectorRegistry()
    spec = make_spec(redis_server.url, ingress={"rate": "1000/s", "burst": 1000})
    monitor = ss.StreamMonitor(spec, registry=registry)
    store = monitor.shared
    assert store is not None
    monitor.ingress.acquire().release()
    caplog.set_level(logging.WARNING, logger=SHARED_LOGGER)

    redis_server.stop()
    got, reasons = admitted(monitor.ingress, 50)
    for _ in range(20):
        monitor.budget.deposit()
    assert got == 50 and not reasons  # served on the local bucket, no exception
    assert not store.available
    assert fallbacks(registry, c.LIMIT_RATE) == 50
    assert fallbacks(registry, c.LIMIT_RETRY_BUDGET) == 20
    assert monitor.budget.try_withdraw() is True  # the local budget (floor) decides
    down = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(down) == 1 and "local limits" in down[0].getMessage()

    redis_server.start()  # same port, empty
    wait_for(
        lambda: (monitor.ingress.acquire().release(), store.available)[1],
        "the monitor to reach the restarted Redis (probed at most every second)",
    )
    before = fallbacks(registry, c.LIMIT_RATE)
    admitted(monitor.ingress, 10)
    assert fallbacks(registry, c.LIMIT_RATE) == before  # decided in Redis again
    client = redis.Redis.from_url(redis_server.url)
    assert client.exists(f"steadystream:{{{SERVICE}}}:rate") == 1
    client.close()
    up = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert len(up) == 1
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1


def test_unreachable_from_the_start_serves_streams_locally(upstream: Upstream) -> None:
    """A Redis that never answers (nothing listens): streams are served, fallbacks counted."""
    from steadystream.testing._process import free_port

    registry = CollectorRegistry()
    url = f"redis://127.0.0.1:{free_port('127.0.0.1')}/0"
    monitor = ss.StreamMonitor(make_spec(url), registry=registry)
    client = openai.OpenAI(base_url=upstream.base_url, api_key="test")
    for i in range(3):
        text = "".join(
            e.delta
            for e in responses_stream(monitor, client, model="m", input=f"local {i}")
            if e.type == "response.output_text.delta"
        )
        assert text == expected_text(f"local {i}", seed=0)
    # The first decision found Redis down; the later ones did not even ask (no probe yet, or
    # one probe per second): all of them are local.
    assert fallbacks(registry, c.LIMIT_RATE) == 3
    assert fallbacks(registry, c.LIMIT_RETRY_BUDGET) == 3
    client.close()


# A script that keeps Redis busy (it answers nothing else) for two seconds of its own clock.
_BUSY = """
local start = tonumber(redis.call('TIME')[1])
while tonumber(redis.call('TIME')[1]) < start + 2 do end
return 1
"""


def test_slow_redis_falls_back_within_the_timeout(redis_server: RedisServer) -> None:
    """A Redis that does not answer within shared.timeout (busy in a script) is an outage too:
    decisions go local without an exception, and later ones do not wait on it again."""
    registry = CollectorRegistry()
    monitor = ss.StreamMonitor(
        make_spec(redis_server.url, ingress={"rate": "1000/s", "burst": 1000}), registry=registry
    )
    monitor.ingress.acquire().release()  # connected, scripts loaded
    busy = redis.Redis.from_url(redis_server.url)
    thread = threading.Thread(target=lambda: busy.eval(_BUSY, 0), daemon=True)
    thread.start()
    try:
        wait_for(lambda: not redis_server.ping(timeout=0.2), "Redis to be busy in the script")
        got, reasons = admitted(monitor.ingress, 20)
        assert got == 20 and not reasons
        assert fallbacks(registry, c.LIMIT_RATE) == 20
        assert monitor.shared is not None and not monitor.shared.available
    finally:
        thread.join(timeout=60)
        busy.close()
    wait_for(
        lambda: (monitor.ingress.acquire().release(), monitor.shared.available)[1],
        "the monitor to use Redis again once the script ended",
    )
