"""Shared limits across four worker processes and one real redis-server on loopback.

Each worker is this file run as a script: it builds a StreamMonitor from the spec it is given,
says it is ready, waits for "go" on stdin, runs streams and reports JSON lines on stdout. The
tests assert on counts: admissions against the token bucket over the window Redis's own clock
measured, retries against the shared budget, and streams served while Redis is stopped and
after it is back. No test depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from steadystream import conventions as c
from steadystream.simulate import ROUTE_CREATE, Upstream
from steadystream.testing import RedisServer

pytestmark = pytest.mark.redis

SERVICE = "fleet"
WORKERS = 4
READY_TIMEOUT = 180.0  # four interpreters importing the SDKs on a loaded two-core machine
RUN_TIMEOUT = 120.0

# A Responses-shaped stream for the workers' own openers: no upstream needed to count admissions.
EVENTS = (
    {"type": "response.created", "response": {"id": "r"}},
    {"type": "response.output_text.delta", "delta": "ok"},
    {"type": "response.completed", "response": {"id": "r"}},
)


def base_spec(url: str, **stream: Any) -> dict[str, Any]:
    # A generous store timeout: on a loaded machine an event loop busy with thirty streams can
    # take longer than the default 50 ms to connect, and these tests count shared decisions
    # (the outage test stops Redis outright, which fails at once whatever the timeout).
    return {
        "version": 1,
        "service": SERVICE,
        "stream": {"shared": {"url": url, "timeout": "3s"}, **stream},
    }


# ------------------------------------------------------------------------------ the worker


class _Counts:
    def __init__(self) -> None:
        self.admitted = 0
        self.rejected = 0
        self.errors: list[str] = []


def _redis_time(client: Any) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1e6


def _status(counts: _Counts, monitor: Any) -> dict[str, Any]:
    store = monitor.shared
    return {
        "admitted": counts.admitted,
        "rejected": counts.rejected,
        "errors": list(counts.errors[:5]),
        "error_count": len(counts.errors),
        "fallbacks": dict(store.fallbacks) if store is not None else {},
        "available": store is not None and store.available,
    }


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _one_sync(monitor: Any, counts: _Counts) -> None:
    import steadystream as ss

    try:
        for _ in monitor.stream(lambda checkpoint: list(EVENTS), model="m", provider="p"):
            pass
    except ss.IngressRejected:
        counts.rejected += 1
    except Exception as exc:
        counts.errors.append(repr(exc))
    else:
        counts.admitted += 1


async def _one_async(monitor: Any, counts: _Counts) -> None:
    import steadystream as ss

    try:
        async for _ in monitor.stream(lambda checkpoint: list(EVENTS), model="m", provider="p"):
            pass
    except ss.IngressRejected:
        counts.rejected += 1
    except Exception as exc:
        counts.errors.append(repr(exc))
    else:
        counts.admitted += 1


def _rate(config: dict[str, Any], monitor: Any, counts: _Counts) -> dict[str, Any]:
    """Streams one after another (sync or async) for ``duration`` seconds, paced."""
    timer = redis.Redis.from_url(config["redis"])
    start = _redis_time(timer)
    end = time.monotonic() + config["duration"]
    if config["mode"] == "async":

        async def run() -> None:
            while time.monotonic() < end:
                await _one_async(monitor, counts)
                await asyncio.sleep(config["pace"])

        asyncio.run(run())
    else:
        while time.monotonic() < end:
            _one_sync(monitor, counts)
            time.sleep(config["pace"])
    return {"start": start, "end": _redis_time(timer), **_status(counts, monitor)}


def _storm(config: dict[str, Any], monitor: Any, counts: _Counts) -> dict[str, Any]:
    """``streams`` concurrent async responses_stream calls against the simulator."""
    import openai
    from prometheus_client import CollectorRegistry

    import steadystream as ss
    from steadystream.instrumentation.openai import responses_stream

    timer = redis.Redis.from_url(config["redis"])
    results: dict[str, int] = {"exhausted": 0, "gave_up": 0}

    async def one(client: Any, i: int) -> None:
        try:
            async for _ in responses_stream(monitor, client, model="m", input=f"storm {i}"):
                pass
        except ss.RetryBudgetExhausted:
            results["exhausted"] += 1
        except ss.UpstreamError as exc:
            if exc.status != 503:
                counts.errors.append(repr(exc))
            results["gave_up"] += 1
        except Exception as exc:
            counts.errors.append(repr(exc))
        else:
            counts.errors.append(f"stream {i} succeeded against an all-503 upstream")

    async def run() -> None:
        client = openai.AsyncOpenAI(base_url=config["base_url"], api_key="test", max_retries=0)
        await asyncio.gather(*(one(client, i) for i in range(config["streams"])))
        await client.close()

    start = _redis_time(timer)
    asyncio.run(run())
    end = _redis_time(timer)
    registry: CollectorRegistry = config["registry"]
    retries = sum(
        s.value
        for family in registry.collect()
        if family.name == c.RETRY_TOTAL.removesuffix("_total")
        for s in family.samples
        if s.name == c.RETRY_TOTAL
    )
    return {"start": start, "end": end, "retries": retries, **results, **_status(counts, monitor)}


def _serve(config: dict[str, Any], monitor: Any, counts: _Counts) -> dict[str, Any]:
    """Streams until "stop" arrives on stdin, reporting a status line every 100 ms."""
    stop = threading.Event()

    def read_stop() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()

    def report() -> None:
        while not stop.wait(0.1):
            _emit({"status": _status(counts, monitor)})

    threading.Thread(target=read_stop, daemon=True).start()
    threading.Thread(target=report, daemon=True).start()
    if config["mode"] == "async":

        async def run() -> None:
            while not stop.is_set():
                await _one_async(monitor, counts)
                await asyncio.sleep(config["pace"])

        asyncio.run(run())
    else:
        while not stop.is_set():
            _one_sync(monitor, counts)
            time.sleep(config["pace"])
    return _status(counts, monitor)


def worker_main(config: dict[str, Any]) -> None:
    from prometheus_client import CollectorRegistry

    import steadystream as ss

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    registry = CollectorRegistry()
    monitor = ss.StreamMonitor(ss.Spec.model_validate(config["spec"]), registry=registry)
    config["registry"] = registry
    counts = _Counts()
    _emit({"ready": True})
    if sys.stdin.readline().strip() != "go":
        return
    run = {"rate": _rate, "storm": _storm, "serve": _serve}[config["kind"]]
    _emit({"final": run(config, monitor, counts)})


# ------------------------------------------------------------------------------ the parent


class Worker:
    """One worker process, its stdout parsed line by line on a thread."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ready = threading.Event()
        self.status: dict[str, Any] = {}
        self.final: dict[str, Any] | None = None
        self.stdout_rest: list[str] = []
        self.stderr = ""
        self._out = threading.Thread(target=self._read_stdout, daemon=True)
        self._err = threading.Thread(target=self._read_stderr, daemon=True)
        self._out.start()
        self._err.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                self.stdout_rest.append(line)
                continue
            if msg.get("ready"):
                self.ready.set()
            elif "status" in msg:
                self.status = msg["status"]
            elif "final" in msg:
                self.final = msg["final"]

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker did not finish within {timeout:g}s") from None
        self._out.join(timeout=30)
        self._err.join(timeout=30)
        assert code == 0, f"worker exited with {code}:\n{self.stderr}"
        assert "Traceback" not in self.stderr, self.stderr
        assert self.final is not None, f"no final report; stderr:\n{self.stderr}"
        return {**self.final, "stderr": self.stderr}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_for(probe: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


def start_workers(started: list[Worker], configs: list[dict[str, Any]]) -> list[Worker]:
    started.extend(Worker(config) for config in configs)
    for i, worker in enumerate(started):
        if not worker.ready.wait(READY_TIMEOUT):
            worker.kill()
            worker._err.join(timeout=10)
            raise AssertionError(
                f"worker {i} not ready within {READY_TIMEOUT:g}s:\n{worker.stderr}"
            )
    for worker in started:
        worker.send("go")
    return started


# ------------------------------------------------------------------------------ the tests


RATE = 20.0
BURST = 20
DURATION = 3.0


def test_four_workers_share_one_rate_limit(workers: list[Worker]) -> None:
    """4 workers x a 20/s, burst 20 bucket admit about 20 + 20/s x 3 s = 80 streams together,
    not 4 x 80: the count stays within 15 % of what the bucket allows over the window Redis's
    clock measured, and never above it."""
    with RedisServer() as server:
        spec = base_spec(
            server.url,
            ingress={"max_concurrent": 64, "rate": f"{RATE:g}/s", "burst": BURST},
        )
        configs = [
            {
                "kind": "rate",
                "mode": "async" if i % 2 else "sync",
                "spec": spec,
                "redis": server.url,
                "duration": DURATION,
                "pace": 0.005,
            }
            for i in range(WORKERS)
        ]
        finals = [w.finish() for w in start_workers(workers, configs)]

    window = max(f["end"] for f in finals) - min(f["start"] for f in finals)
    admitted = sum(f["admitted"] for f in finals)
    attempts = admitted + sum(f["rejected"] for f in finals)
    allowed = BURST + RATE * window
    assert all(f["error_count"] == 0 for f in finals), [f["errors"] for f in finals]
    assert all(f["fallbacks"] == dict.fromkeys(c.SHARED_LIMITS, 0) for f in finals), finals
    # Demand far above the limit, or the count would measure the workers, not the bucket.
    assert attempts > 2 * allowed, (attempts, allowed)
    assert admitted <= math.floor(allowed) + 1, (admitted, allowed, window)
    assert admitted >= 0.85 * allowed, (admitted, allowed, window)
    # Every worker got a share and was refused too: one bucket, not four.
    assert all(f["admitted"] > 0 and f["rejected"] > 0 for f in finals), finals
    assert admitted < 2 * (BURST + RATE * DURATION)  # 4 local buckets would admit ~320


def test_shared_budget_bounds_retries_across_workers_in_a_503_storm(
    upstream: Upstream, workers: list[Worker]
) -> None:
    """All-503 upstream, 4 workers x 30 concurrent async responses_stream streams: the retries
    of all workers together stay within one budget (20 % of requests + the floor), Redis
    counted every one of them, and the upstream saw no retry beyond it."""
    streams, share, floor, ttl = 30, 0.2, 1.0, 10.0
    upstream.profile = "outage"
    before = upstream.stats.requests_to(ROUTE_CREATE, 503)
    with RedisServer() as server:
        spec = base_spec(
            server.url,
            timeouts={
                "dial": "20s",
                "tls_handshake": "10s",
                "first_token": "30s",
                "stream_idle": "30s",
                "total": "120s",
            },
            retry={
                "max_retries": 3,
                "base_backoff": "5ms",
                "max_backoff": "20ms",
                "budget": f"{share:.0%}",
                "min_per_second": floor,
            },
            # Every stream must be admitted for the counts to be exact, however loaded the
            # machine running four workers is.
            ingress={"max_concurrent": 1000, "rate": "100000/s", "overload": {"shed": False}},
        )
        configs = [
            {
                "kind": "storm",
                "spec": spec,
                "redis": server.url,
                "base_url": upstream.base_url,
                "streams": streams,
            }
            for _ in range(WORKERS)
        ]
        finals = [w.finish() for w in start_workers(workers, configs)]
        stored = redis.Redis.from_url(server.url).hgetall(
            f"steadystream:{{{SERVICE}}}:retry-budget"
        )

    requests = WORKERS * streams
    window = max(f["end"] for f in finals) - min(f["start"] for f in finals)
    retries = sum(f["retries"] for f in finals)
    bound = share * requests + floor * (ttl + window)
    assert all(f["error_count"] == 0 for f in finals), [f["errors"] for f in finals]
    assert all(f["fallbacks"] == dict.fromkeys(c.SHARED_LIMITS, 0) for f in finals), [
        (f["fallbacks"], f["stderr"]) for f in finals
    ]
    assert sum(f["exhausted"] + f["gave_up"] for f in finals) == requests
    assert sum(f["exhausted"] for f in finals) > 0  # the budget, not max_retries, stopped them
    assert 0 < retries <= bound, (retries, bound, window)
    # Four local budgets would have allowed each its own floor on top of its share.
    assert bound < share * requests + WORKERS * floor * ttl
    assert int(stored[b"retries"]) == retries and int(stored[b"requests"]) == requests
    sent = upstream.stats.requests_to(ROUTE_CREATE, 503) - before
    assert sent == requests + retries


def test_workers_keep_serving_while_redis_is_down_and_share_again_after(
    workers: list[Worker],
) -> None:
    """Redis stopped mid-run: every worker keeps admitting streams on its local limits, with
    no error or traceback, and logs the outage once; Redis restarted on the same port: every
    worker goes back to the shared limits (no new fallbacks, the bucket exists again) and logs
    the recovery once."""
    server = RedisServer()
    server.start()
    try:
        spec = base_spec(server.url, ingress={"max_concurrent": 64, "rate": "2000/s"})
        configs = [
            {"kind": "serve", "mode": "async" if i % 2 else "sync", "spec": spec, "pace": 0.01}
            for i in range(WORKERS)
        ]
        start_workers(workers, configs)

        def all_past(field: str, marks: list[int], more: int) -> bool:
            return all(
                w.status.get(field, -1) >= m + more for w, m in zip(workers, marks, strict=True)
            )

        wait_for(lambda: all_past("admitted", [0] * WORKERS, 5), "shared admissions")
        assert all(w.status["available"] for w in workers)
        assert all(sum(w.status["fallbacks"].values()) == 0 for w in workers)

        server.stop()
        marks = [w.status["admitted"] for w in workers]
        wait_for(
            lambda: all(w.status["fallbacks"][c.LIMIT_RATE] >= 5 for w in workers),
            "every worker to decide on local limits",
        )
        wait_for(lambda: all_past("admitted", marks, 10), "streams served while Redis is down")
        assert not any(w.status["available"] for w in workers)

        server.start()  # the same port, empty
        wait_for(
            lambda: all(w.status["available"] for w in workers),
            "every worker to reach the restarted Redis",
        )
        fallen = [w.status["fallbacks"][c.LIMIT_RATE] for w in workers]
        marks = [w.status["admitted"] for w in workers]
        wait_for(lambda: all_past("admitted", marks, 10), "streams admitted after the restart")
        assert [w.status["fallbacks"][c.LIMIT_RATE] for w in workers] == fallen
        client = redis.Redis.from_url(server.url)
        assert client.exists(f"steadystream:{{{SERVICE}}}:rate") == 1
        client.close()

        for worker in workers:
            worker.send("stop")
        finals = [w.finish() for w in workers]
    finally:
        server.stop()

    for worker, final in zip(workers, finals, strict=True):
        assert final["error_count"] == 0, final["errors"]
        assert final["rejected"] == 0
        assert worker.stderr.count("is unreachable or slower than") == 1, worker.stderr
        assert worker.stderr.count("answers again") == 1, worker.stderr


if __name__ == "__main__":
    worker_main(json.loads(sys.argv[1]))
