"""Benchmark 1: per-chunk overhead of ``monitor.wrap``, in process, sync and async.

One synthetic Responses API stream of 200k ``response.output_text.delta`` events (openai SDK
objects, multi-byte text; see ``_events.py``) plus its lifecycle events is iterated:

* raw: the bare iterator (sync) or async generator (async), the floor;
* ``prometheus``: ``monitor.wrap`` with the Prometheus sink (OpenTelemetry metrics off, spans
  to a no-op tracer provider): the common production set-up;
* ``otel``: only the OpenTelemetry SDK sinks (SDK ``MeterProvider`` with an in-memory reader,
  SDK ``TracerProvider`` with an in-memory exporter); the monitor's Prometheus sink is taken
  out of its sink list for this variant, because ``StreamMonitor`` always has one;
* ``both``: Prometheus plus the OpenTelemetry SDK sinks, as ``StreamMonitor`` wires them.

Each variant runs once per round, alternating (see ``_common.alternate``); the overhead is
``(t_variant - t_raw) / events`` computed per round against the raw run of the same round and
mode, then summarised as median and spread. Every wrapped run starts a new stream (new wrapper,
span, hasher) and ends it, so per-stream costs are included, amortised over 200k chunks.

After the rounds, ``stream_bytes_total`` and ``stream_requests_total{outcome="ok"}`` in each
variant's registry are checked against the exact expected values: a benchmark of a wrapper that
silently skipped its work would be worthless.

Target: at most 1.5 us per chunk above raw, Prometheus sink, sync.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import _events
import steadystream as ss
from _common import Summary, Table, alternate, emit, verdict
from steadystream import conventions as c

TARGET_NS = 1500.0
N_DELTAS = 200_000
MODEL = _events.MODEL


class Setup:
    """One monitor configuration (a variant) with the handles to read back what it recorded."""

    def __init__(self, name: str, spec: ss.Spec, *, prometheus: bool, otel: bool) -> None:
        from opentelemetry import trace
        from prometheus_client import CollectorRegistry

        self.name = name
        self.registry = CollectorRegistry()
        self.metric_reader: Any = None
        self.span_exporter: Any = None
        tracer_provider: Any = trace.NoOpTracerProvider()
        meter_provider: Any = None
        if otel:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )

            self.metric_reader = InMemoryMetricReader()
            meter_provider = MeterProvider(metric_readers=[self.metric_reader])
            self.span_exporter = InMemorySpanExporter()
            tracer_provider = TracerProvider()
            tracer_provider.add_span_processor(SimpleSpanProcessor(self.span_exporter))
        self.monitor = ss.StreamMonitor(
            spec,
            registry=self.registry,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        if not prometheus:
            # StreamMonitor always wires a Prometheus sink; to measure the OpenTelemetry sinks
            # alone it is taken out here (benchmark-only reach into a private attribute).
            from steadystream.instrumentation.metrics import PrometheusSink

            sinks = self.monitor._sinks
            self.monitor._sinks = tuple(s for s in sinks if not isinstance(s, PrometheusSink))
        self.prometheus = prometheus
        self.streams = 0

    def reset_exported(self) -> None:
        """Drop finished spans between runs so memory does not grow with the rounds."""
        if self.span_exporter is not None:
            self.span_exporter.clear()

    def check(self, content_bytes: int, n_deltas: int) -> list[str]:
        """Problems with what the variant recorded, given how many streams it wrapped."""
        problems = []
        labels = {c.LABEL_SERVICE: "bench", c.LABEL_MODEL: MODEL, c.LABEL_PROVIDER: "openai"}
        if self.prometheus:
            got = self.registry.get_sample_value(c.BYTES_TOTAL, labels)
            if got != content_bytes * self.streams:
                problems.append(f"{self.name}: {c.BYTES_TOTAL} {got} != {content_bytes}x")
            ok = self.registry.get_sample_value(
                c.REQUESTS_TOTAL, {**labels, c.LABEL_OUTCOME: c.OUTCOME_OK}
            )
            if ok != self.streams:
                problems.append(f"{self.name}: ok streams {ok} != {self.streams}")
            gaps = self.registry.get_sample_value(c.count(c.CHUNK_GAP), labels)
            if gaps != (n_deltas - 1) * self.streams:
                problems.append(f"{self.name}: chunk gaps {gaps} != {n_deltas - 1}x")
        if self.metric_reader is not None:
            data = self.metric_reader.get_metrics_data()
            total = 0
            for rm in data.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name == c.BYTES_TOTAL:
                            total += sum(p.value for p in m.data.data_points)
            if total != content_bytes * self.streams:
                problems.append(f"{self.name}: OTel {c.BYTES_TOTAL} {total} != expected")
        return problems


def make_setups(spec: ss.Spec) -> dict[str, Setup]:
    return {
        "prometheus": Setup("prometheus", spec, prometheus=True, otel=False),
        "otel": Setup("otel", spec, prometheus=False, otel=True),
        "both": Setup("both", spec, prometheus=True, otel=True),
    }


def sync_runner(events: list[Any], setup: Setup | None) -> Callable[[], float]:
    """A function that iterates the stream once (raw or wrapped) and returns seconds."""

    def raw() -> float:
        t0 = time.perf_counter()
        for _event in iter(events):
            pass
        return time.perf_counter() - t0

    def wrapped() -> float:
        assert setup is not None
        setup.reset_exported()
        t0 = time.perf_counter()
        for _event in setup.monitor.wrap(iter(events), model=MODEL, provider="openai"):
            pass
        elapsed = time.perf_counter() - t0
        setup.streams += 1
        return elapsed

    return raw if setup is None else wrapped


async def _agen(events: list[Any]) -> Any:
    for event in events:
        yield event


def async_runner(
    loop: asyncio.AbstractEventLoop, events: list[Any], setup: Setup | None
) -> Callable[[], float]:
    """Like :func:`sync_runner`, iterating an async generator on ``loop``."""

    async def raw() -> float:
        t0 = time.perf_counter()
        async for _event in _agen(events):
            pass
        return time.perf_counter() - t0

    async def wrapped() -> float:
        assert setup is not None
        setup.reset_exported()
        t0 = time.perf_counter()
        async for _event in setup.monitor.wrap(_agen(events), model=MODEL, provider="openai"):
            pass
        elapsed = time.perf_counter() - t0
        setup.streams += 1
        return elapsed

    fn = raw if setup is None else wrapped
    return lambda: loop.run_until_complete(fn())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--deltas", type=int, default=N_DELTAS)
    args = parser.parse_args(argv)
    n_deltas = args.deltas

    events = _events.sdk_events(n_deltas)
    n_events = len(events)
    content_bytes = _events.content_bytes(n_deltas)
    spec = ss.default_spec("bench")
    loop = asyncio.new_event_loop()
    sync_setups = make_setups(spec)
    async_setups = make_setups(spec)

    variants: dict[str, Callable[[], float]] = {"sync/raw": sync_runner(events, None)}
    for name, setup in sync_setups.items():
        variants[f"sync/{name}"] = sync_runner(events, setup)
    variants["async/raw"] = async_runner(loop, events, None)
    for name, setup in async_setups.items():
        variants[f"async/{name}"] = async_runner(loop, events, setup)

    times = alternate(variants, args.rounds)
    loop.close()

    problems = []
    for setups in (sync_setups, async_setups):
        for setup in setups.values():
            problems += setup.check(content_bytes, n_deltas)

    results: dict[str, Any] = {}
    table = Table(
        f"1. Per-chunk overhead in process: {n_deltas:,} text deltas (+8 lifecycle events), "
        "ns per event above raw",
        ["mode", "variant", "ns/event above raw", "raw ns/event", "target", ""],
    )
    target_met = None
    for mode in ("sync", "async"):
        raw = times[f"{mode}/raw"]
        raw_ns = Summary.of(t / n_events * 1e9 for t in raw)
        results[f"{mode}/raw"] = {"ns_per_event": raw_ns.as_dict()}
        for name in ("prometheus", "otel", "both"):
            ts = times[f"{mode}/{name}"]
            over = Summary.of((t - r) / n_events * 1e9 for t, r in zip(ts, raw, strict=True))
            results[f"{mode}/{name}"] = {
                "ns_per_event_above_raw": over.as_dict(),
                "ns_per_event": Summary.of(t / n_events * 1e9 for t in ts).as_dict(),
            }
            target, ok = "", ""
            if mode == "sync" and name == "prometheus":
                target_met = over.median <= TARGET_NS
                target, ok = "<= 1500 ns", verdict(target_met)
            table.add(mode, name, over.fmt(".0f"), raw_ns.fmt(".0f"), target, ok)
    table.notes.append(
        f"{args.rounds} alternating rounds after 1 warm-up round; each run is one whole stream "
        f"({n_events:,} events, {content_bytes:,} content bytes) including wrapper set-up and "
        "end-of-stream flush."
    )
    table.notes.append(
        "otel = OpenTelemetry SDK metrics + spans only (Prometheus sink removed); both = "
        "Prometheus + OpenTelemetry SDK, as StreamMonitor wires them."
    )
    if problems:
        table.notes.append("RECORDED VALUES WRONG: " + "; ".join(problems))
    else:
        table.notes.append(
            "Checked after the run: bytes, chunk-gap count and ok-stream count exact in every "
            "variant."
        )
    emit(
        "chunk",
        [table],
        {
            "deltas": n_deltas,
            "events": n_events,
            "content_bytes": content_bytes,
            "rounds": args.rounds,
            "results": results,
            "target_ns": TARGET_NS,
            "target_met": target_met,
            "recorded_values_problems": problems,
        },
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
