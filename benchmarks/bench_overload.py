"""Benchmark 8: overload. Streams at 1x, 2x and 3x the event-loop knee of one process, the raw
openai client vs ``responses_stream``, against the simulator (in its own process).

The knee. One asyncio loop on one core handles so many concurrent streams before its own work
makes it late. The benchmark finds it in the run: raw streams at doubling concurrency
(``--probe`` levels) until the p99 loop lag of a level passes ``--knee-lag`` (100 ms); the knee is
the last level below it (``--knee N`` sets it instead, and says so in the table).

Each level then runs ``multiple x knee`` streams started together (over ``--ramp`` seconds), of
``--deltas`` deltas each with the model paced at ``--token-interval``, once raw and once through
``responses_stream`` with the default runtime policy (first token 3 s, idle 8 s, retries with a
20 % budget, shedding on at 500 ms of lag), raw and steadystream alternating. Per run:

* failed: streams that ended in an error (a retryable ``overloaded`` rejection at admission is
  counted apart, as shed: the caller was told at once to go elsewhere);
* stretch: median stream duration / the median duration of the same stream unloaded (one
  stream alone, after a warm-up);
* loop lag p99: a ticker task sleeping 10 ms records how late it wakes;
* for steadystream: retries, lag-caused timeouts (``process_lag``) and rejections by reason.

Exactness: every stream is accounted for (completed + failed + shed == started), a completed
stream delivered every delta, and steadystream's ``stream_requests_total`` agrees with the
benchmark's own counts. Target: at 2x the knee, no more failed streams than raw.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _procs
import steadystream as ss
from _common import (
    Table,
    emit,
    loop_lag_ticker,
    open_responses,
    percentile,
    plain_client,
    verdict,
)
from steadystream import conventions as c

MODEL = "gpt-4.1"

# The default runtime policy (timeouts, retries, shedding), with an ingress cap above any level
# so only the overload rule sheds.
SPEC = """\
version: 1
service: overload
stream:
  ingress: {max_concurrent: 100000, rate: 100000/s, burst: 100000}
"""


def bench_spec() -> ss.Spec:
    with tempfile.TemporaryDirectory(prefix="ss-bench-spec-") as tmp:
        path = Path(tmp) / "slo.yaml"
        path.write_text(SPEC)
        return ss.load_spec(path)


def _labels(monitor: ss.StreamMonitor, registry: Any) -> dict[str, float]:
    """The monitor's counts that the table reports, summed over models and providers."""
    out: dict[str, float] = {}
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == "stream_requests_total":
                out[f"outcome:{s.labels['outcome']}"] = s.value
            elif s.name == "stream_rejected_total":
                out[f"rejected:{s.labels['reason']}"] = s.value
            elif s.name == "stream_retry_total":
                out["retries"] = out.get("retries", 0.0) + s.value
            elif s.name == "stream_errors_total":
                out[f"error:{s.labels['error_class']}"] = s.value
    return out


async def run_level(
    url: str, mode: str, streams: int, *, deltas: int, ramp: float, spec: ss.Spec
) -> dict[str, Any]:
    """``streams`` streams through ``mode`` (raw | steadystream); returns what happened."""
    from opentelemetry import trace
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    monitor = ss.StreamMonitor(spec, registry=registry, tracer_provider=trace.NoOpTracerProvider())
    client = plain_client(url)
    durations: list[float] = []
    failed: list[str] = []
    shed = 0
    short = 0

    async def one(i: int) -> None:
        nonlocal shed, short
        await asyncio.sleep(ramp * i / max(1, streams))
        t0 = time.perf_counter()
        n = 0
        try:
            stream = await open_responses(
                mode, client, monitor, model=MODEL, prompt="overload", deltas=deltas
            )
            async for event in stream:
                if getattr(event, "type", "") == "response.output_text.delta":
                    n += 1
        except ss.IngressRejected as exc:
            if exc.reason == c.REJECT_OVERLOADED:
                shed += 1
                return
            failed.append(f"{type(exc).__name__}: {exc}")
            return
        except Exception as exc:
            failed.append(f"{type(exc).__name__}: {exc}")
            return
        if n != deltas:
            short += 1
            failed.append(f"short: {n} of {deltas} deltas")
            return
        durations.append(time.perf_counter() - t0)

    lags: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(loop_lag_ticker(stop, lags))
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(streams)))
    elapsed = time.perf_counter() - t0
    stop.set()
    await ticker
    await client.close()
    counts = _labels(monitor, registry) if mode != "raw" else {}
    return {
        "mode": mode,
        "streams": streams,
        "completed": len(durations),
        "failed": len(failed),
        "shed": shed,
        "short": short,
        "errors": sorted(set(failed))[:5],
        "median_s": statistics.median(durations) if durations else float("nan"),
        "seconds": elapsed,
        "lag_p99_ms": percentile(lags, 0.99) * 1000 if lags else float("nan"),
        "counts": counts,
    }


def check_exact(res: dict[str, Any]) -> list[str]:
    """What does not add up in one run (empty: exact)."""
    problems = []
    if res["completed"] + res["failed"] + res["shed"] != res["streams"]:
        problems.append(f"{res['mode']}: completed + failed + shed != {res['streams']}")
    if res["short"]:
        problems.append(f"{res['mode']}: {res['short']} completed stream(s) lost deltas")
    counts = res["counts"]
    if res["mode"] != "raw":
        if counts.get("outcome:ok", 0) != res["completed"]:
            problems.append(f"ok outcomes {counts.get('outcome:ok', 0)} != {res['completed']}")
        if counts.get(f"rejected:{c.REJECT_OVERLOADED}", 0) != res["shed"]:
            problems.append("overloaded rejections != shed streams")
        if counts.get("outcome:error", 0) != res["failed"]:
            problems.append(f"error outcomes {counts.get('outcome:error', 0)} != {res['failed']}")
    return problems


async def find_knee(
    url: str, spec: ss.Spec, levels: list[int], *, lag_ms: float, deltas: int, ramp: float
) -> tuple[int, list[tuple[int, float]]]:
    """The last raw level whose p99 loop lag stays under ``lag_ms`` (and the probes)."""
    probes: list[tuple[int, float]] = []
    knee = levels[0]
    for n in levels:
        res = await run_level(url, "raw", n, deltas=deltas, ramp=ramp, spec=spec)
        probes.append((n, res["lag_p99_ms"]))
        if res["lag_p99_ms"] >= lag_ms:
            break
        knee = n
    return knee, probes


def unloaded(url: str, spec: ss.Spec, deltas: int, rounds: int = 3) -> float:
    """The median duration of one stream alone (after a warm-up stream): the stretch's base."""
    asyncio.run(run_level(url, "raw", 1, deltas=deltas, ramp=0.0, spec=spec))
    return statistics.median(
        asyncio.run(run_level(url, "raw", 1, deltas=deltas, ramp=0.0, spec=spec))["median_s"]
        for _ in range(rounds)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--knee", type=int, default=0, help="set the knee (0: find it)")
    parser.add_argument("--probe", default="10,25,50,100,200,400,800", help="raw levels to probe")
    parser.add_argument("--knee-lag", type=float, default=100.0, help="p99 loop lag, ms")
    parser.add_argument("--multiples", default="1,2,3")
    parser.add_argument("--deltas", type=int, default=20)
    parser.add_argument("--token-interval", default="100ms", help="simulated model pacing")
    parser.add_argument("--ramp", type=float, default=1.0, help="seconds to start a level")
    args = parser.parse_args(argv)

    spec = bench_spec()
    multiples = [int(x) for x in args.multiples.split(",")]
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    load_before = os.getloadavg()
    with _procs.simulator(token_interval=args.token_interval) as url:
        base = unloaded(url, spec, args.deltas)
        if args.knee:
            knee, probes, how = args.knee, [], "set with --knee"
        else:
            levels = [int(x) for x in args.probe.split(",")]
            knee, probes = asyncio.run(
                find_knee(
                    url, spec, levels, lag_ms=args.knee_lag, deltas=args.deltas, ramp=args.ramp
                )
            )
            how = (
                f"found: last raw level with loop lag p99 < {args.knee_lag:g} ms; probes "
                + ", ".join(f"{n}: {lag:.0f} ms" for n, lag in probes)
            )
        for i, m in enumerate(multiples):
            order = ["raw", "steadystream"] if i % 2 == 0 else ["steadystream", "raw"]
            for mode in order:
                res = asyncio.run(
                    run_level(url, mode, m * knee, deltas=args.deltas, ramp=args.ramp, spec=spec)
                )
                res["multiple"] = m
                res["stretch"] = res["median_s"] / base if base > 0 else float("nan")
                problems += check_exact(res)
                rows.append(res)
                print(
                    f"  {m}x {mode}: {res['completed']} ok, {res['failed']} failed, "
                    f"{res['shed']} shed, lag p99 {res['lag_p99_ms']:.0f} ms",
                    flush=True,
                )
    load_after = os.getloadavg()

    table = Table(
        f"8. Overload: streams at 1x/2x/3x the event-loop knee ({knee} streams, {how}); "
        f"{args.deltas} deltas at {args.token_interval}/delta; unloaded stream {base:.2f} s",
        [
            "level",
            "client",
            "streams",
            "failed",
            "shed (overloaded)",
            "stretch",
            "loop lag p99 ms",
            "retries",
            "process_lag",
        ],
    )
    results: dict[str, Any] = {}
    for r in rows:
        counts = r["counts"]
        table.add(
            f"{r['multiple']}x",
            r["mode"],
            str(r["streams"]),
            str(r["failed"]),
            "" if r["mode"] == "raw" else str(r["shed"]),
            f"{r['stretch']:.2f}",
            f"{r['lag_p99_ms']:.0f}",
            "" if r["mode"] == "raw" else f"{counts.get('retries', 0):.0f}",
            "" if r["mode"] == "raw" else f"{counts.get('error:process_lag', 0):.0f}",
        )
        results[f"{r['multiple']}x/{r['mode']}"] = {
            k: r[k]
            for k in (
                "streams",
                "completed",
                "failed",
                "shed",
                "stretch",
                "lag_p99_ms",
                "counts",
                "errors",
            )
        }
    at2 = {r["mode"]: r for r in rows if r["multiple"] == 2}
    target_met = None
    if len(at2) == 2 and not problems:
        target_met = at2["steadystream"]["failed"] <= at2["raw"]["failed"]
    table.notes.append(
        f"target at 2x: failed(steadystream) <= failed(raw): {verdict(target_met)}; "
        f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}"
    )
    if problems:
        table.notes.append("NOT EXACT: " + "; ".join(problems))
    emit(
        "overload",
        [table],
        {
            "knee": knee,
            "knee_how": how,
            "probes": probes,
            "unloaded_s": base,
            "results": results,
            "exact": not problems,
            "problems": problems,
            "target_met": target_met,
            "loadavg": [load_before, load_after],
        },
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
