"""Benchmark 9: a load spike. 10x the sustainable arrival rate for 10 s, then normal, against the
simulator (in its own process): raw openai client, ``responses_stream`` with the admission queue,
and ``responses_stream`` with the queue switched off.

Sustainable rate. One process serves ``max_concurrent`` streams at once (the spec's ingress cap);
a stream lasts ``d`` seconds unloaded (measured first), so it sustains ``max_concurrent / d``
arrivals per second. The benchmark sets the cap from ``--rate`` and ``d``
(``max_concurrent = rate x d``, rounded up) so the sustainable rate is ``--rate``; the queue is
``{max: rate x queue-timeout, timeout: --queue-timeout}`` (a queue longer than what the cap drains
within its timeout only turns waits into ``queue_timeout`` rejections; see
docs/instrumentation.md, "Running many workers and hosts").

Arrivals are open loop, evenly spaced: ``--rate`` per second for ``--before`` seconds, ten times
that for ``--spike`` seconds, then ``--rate`` again for ``--after`` seconds. Each client runs the
same schedule. Per client:

* goodput: streams completed with their first token within the SLO (2.5 s, queue wait
  included), per second of the run;
* p95 time to first token of admitted streams (from the stream's start, queue wait included);
* queue wait p50/p95 (``stream_phase_duration_ms{phase="queue"}``, from the histogram);
* rejections by reason (``stream_rejected_total``), all retryable;
* failed: admitted streams that ended in an error.

Exactness: every arrival is accounted for (completed + rejected + failed == arrivals), and the
monitor's ok/rejected counts equal the benchmark's.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _procs
import steadystream as ss
from _common import Table, emit, open_responses, percentile, plain_client
from steadystream import conventions as c

MODEL = "gpt-4.1"
TTFT_SLO = 2.5

SPEC = """\
version: 1
service: spike
stream:
  ingress:
    max_concurrent: %(cap)d
    rate: 100000/s
    burst: 100000
%(queue)s
"""


def bench_spec(cap: int, queue_max: int, queue_timeout: float) -> ss.Spec:
    queue = f"    queue: {{max: {queue_max}, timeout: {queue_timeout:g}s}}\n" if queue_max else ""
    with tempfile.TemporaryDirectory(prefix="ss-bench-spec-") as tmp:
        path = Path(tmp) / "slo.yaml"
        path.write_text(SPEC % {"cap": cap, "queue": queue})
        return ss.load_spec(path)


def schedule(rate: float, before: float, spike: float, after: float) -> list[float]:
    """Arrival times (seconds from the start): rate, 10 x rate, rate."""
    out: list[float] = []
    t = 0.0
    for seconds, r in ((before, rate), (spike, rate * 10), (after, rate)):
        n = round(seconds * r)
        out += [t + i / r for i in range(n)]
        t += seconds
    return out


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus's histogram_quantile over cumulative (le, count) pairs, in the same unit."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return float("nan")
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            span = count - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / span if span else 0.0)
        prev_le, prev_count = le, count
    return prev_le


def _monitor_counts(registry: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"rejected": {}, "outcomes": {}, "queue_buckets": []}
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == "stream_rejected_total" and s.value:
                out["rejected"][s.labels["reason"]] = s.value
            elif s.name == "stream_requests_total" and s.value:
                out["outcomes"][s.labels["outcome"]] = s.value
            elif (
                s.name == "stream_phase_duration_ms_bucket"
                and s.labels.get("phase") == c.PHASE_QUEUE
            ):
                out["queue_buckets"].append((float(s.labels["le"]), s.value))
    return out


async def run_client(
    url: str, mode: str, arrivals: list[float], *, deltas: int, spec: ss.Spec
) -> dict[str, Any]:
    """Every arrival through ``mode`` (raw | steadystream): what happened to each."""
    from opentelemetry import trace
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    monitor = ss.StreamMonitor(spec, registry=registry, tracer_provider=trace.NoOpTracerProvider())
    client = plain_client(url)
    ttfts: list[float] = []
    rejected: dict[str, int] = {}
    failed: list[str] = []
    completed = 0
    good = 0

    async def one(at: float, start: float) -> None:
        nonlocal completed, good
        await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
        t0 = time.perf_counter()
        first: float | None = None
        n = 0
        try:
            stream = await open_responses(
                mode, client, monitor, model=MODEL, prompt="spike", deltas=deltas
            )
            async for event in stream:
                if getattr(event, "type", "") == "response.output_text.delta":
                    if first is None:
                        first = time.perf_counter() - t0
                    n += 1
        except ss.IngressRejected as exc:
            rejected[exc.reason] = rejected.get(exc.reason, 0) + 1
            return
        except Exception as exc:
            failed.append(f"{type(exc).__name__}: {exc}")
            return
        if n != deltas or first is None:
            failed.append(f"short: {n} of {deltas} deltas")
            return
        completed += 1
        ttfts.append(first)
        if first <= TTFT_SLO:
            good += 1

    start = time.perf_counter() + 0.05
    await asyncio.gather(*(one(at, start) for at in arrivals))
    elapsed = time.perf_counter() - start
    await client.close()
    counts = _monitor_counts(registry) if mode != "raw" else {}
    queue = counts.get("queue_buckets") or []
    return {
        "mode": mode,
        "arrivals": len(arrivals),
        "completed": completed,
        "good": good,
        "rejected": rejected,
        "failed": len(failed),
        "errors": sorted(set(failed))[:5],
        "seconds": elapsed,
        "goodput_per_s": good / elapsed,
        "ttft_p95_s": percentile(ttfts, 0.95) if ttfts else float("nan"),
        "queue_p50_ms": histogram_quantile(queue, 0.50) if queue else float("nan"),
        "queue_p95_ms": histogram_quantile(queue, 0.95) if queue else float("nan"),
        "counts": {k: v for k, v in counts.items() if k != "queue_buckets"},
    }


def check_exact(res: dict[str, Any]) -> list[str]:
    problems = []
    rejected = sum(res["rejected"].values())
    if res["completed"] + rejected + res["failed"] != res["arrivals"]:
        problems.append(f"{res['mode']}: completed + rejected + failed != {res['arrivals']}")
    if res["mode"] != "raw":
        counts = res["counts"]
        if counts["outcomes"].get("ok", 0) != res["completed"]:
            problems.append(f"{res['mode']}: ok outcomes != completed")
        if {k: int(v) for k, v in counts["rejected"].items()} != res["rejected"]:
            problems.append(f"{res['mode']}: rejections by reason differ from the monitor's")
    return problems


def unloaded(url: str, deltas: int) -> float:
    """One stream alone (after a warm-up): its duration, for the sustainable rate."""

    async def one() -> float:
        client = plain_client(url)
        t0 = time.perf_counter()
        stream = await client.responses.create(
            model=MODEL, input="spike", stream=True, max_output_tokens=deltas
        )
        async for _ in stream:
            pass
        await client.close()
        return time.perf_counter() - t0

    asyncio.run(one())
    return statistics.median(asyncio.run(one()) for _ in range(3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="sustainable arrivals/s")
    parser.add_argument("--before", type=float, default=3.0)
    parser.add_argument("--spike", type=float, default=10.0)
    parser.add_argument("--after", type=float, default=10.0)
    parser.add_argument("--deltas", type=int, default=10)
    parser.add_argument("--token-interval", default="100ms", help="simulated model pacing")
    parser.add_argument("--queue-timeout", type=float, default=2.0)
    args = parser.parse_args(argv)

    arrivals = schedule(args.rate, args.before, args.spike, args.after)
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    load_before = os.getloadavg()
    with _procs.simulator(token_interval=args.token_interval) as url:
        d = unloaded(url, args.deltas)
        cap = max(1, math.ceil(args.rate * d))
        queue_max = max(1, math.ceil(args.rate * args.queue_timeout))
        specs = {
            "raw": bench_spec(cap, 0, 0.0),
            "steadystream + queue": bench_spec(cap, queue_max, args.queue_timeout),
            "steadystream, no queue": bench_spec(cap, 0, 0.0),
        }
        for name, spec in specs.items():
            mode = "raw" if name == "raw" else "steadystream"
            res = asyncio.run(run_client(url, mode, arrivals, deltas=args.deltas, spec=spec))
            res["client"] = name
            problems += check_exact(res)
            rows.append(res)
            print(
                f"  {name}: {res['completed']} ok ({res['good']} within {TTFT_SLO:g} s), "
                f"{sum(res['rejected'].values())} rejected, {res['failed']} failed",
                flush=True,
            )
    load_after = os.getloadavg()

    table = Table(
        f"9. Spike: {args.rate:g}/s, then {args.rate * 10:g}/s for {args.spike:g} s, then "
        f"{args.rate:g}/s ({len(arrivals)} arrivals); cap {cap} = rate x {d:.2f} s per stream, "
        f"queue {{max: {queue_max}, timeout: {args.queue_timeout:g}s}}",
        [
            "client",
            "goodput/s",
            "completed",
            "p95 TTFT s",
            "queue wait p50/p95 ms",
            "rejected by reason",
            "failed",
        ],
    )
    results: dict[str, Any] = {}
    for r in rows:
        rej = ", ".join(f"{k} {v}" for k, v in sorted(r["rejected"].items())) or "0"
        queue = (
            ""
            if math.isnan(r["queue_p50_ms"])
            else f"{r['queue_p50_ms']:.0f} / {r['queue_p95_ms']:.0f}"
        )
        table.add(
            r["client"],
            f"{r['goodput_per_s']:.2f}",
            str(r["completed"]),
            f"{r['ttft_p95_s']:.2f}",
            queue,
            rej,
            str(r["failed"]),
        )
        results[r["client"]] = {k: v for k, v in r.items() if k != "client"}
    raw = results["raw"]["goodput_per_s"]
    if raw > 0:
        table.notes.append(
            "goodput vs raw: "
            + ", ".join(
                f"{name} {results[name]['goodput_per_s'] / raw:.2f}x"
                for name in results
                if name != "raw"
            )
        )
    table.notes.append(
        f"goodput: streams completed with TTFT <= {TTFT_SLO:g} s (queue wait included) per "
        f"second; load average before {load_before[0]:.1f}, after {load_after[0]:.1f}"
    )
    if problems:
        table.notes.append("NOT EXACT: " + "; ".join(problems))
    emit(
        "spike",
        [table],
        {
            "results": results,
            "cap": cap,
            "queue_max": queue_max,
            "unloaded_s": d,
            "exact": not problems,
            "problems": problems,
            "loadavg": [load_before, load_after],
        },
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
