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

The reference wrapper (``reference.py``: the same per-chunk duties in the least pure Python)
runs in the same rounds. Absolute times on a shared machine move 2x from run to run, so the
targets are ratios measured side by side: Prometheus sink, sync, at most 1.5x the reference;
with the OpenTelemetry SDK too (``both``), at most 2.0x; async at most 1.5x sync.

Then the same measurement on an Anthropic Messages stream of as many ``content_block_delta``
events (anthropic SDK objects, same text), Prometheus sink, sync and async (async at most 1.5x
sync), and on Chat Completions chunks against the reference, openai-v2 and OpenLLMetry (full
telemetry at most openai-v2's cost per chunk and a third of OpenLLMetry's).

Every target is also named in the results' ``targets`` (``make bench`` lists them).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

import _events
import reference
import steadystream as ss
from _common import Summary, Table, alternate, emit, verdict
from steadystream import conventions as c

# Async at most this many times the sync figure (both modes measured in the same rounds).
ASYNC_TO_SYNC = 1.5
# CPU time of this process, not wall time: on a shared machine other tenants steal the CPU
# between samples and inflate wall-clock figures at random; the work done per chunk is what is
# measured here. ``--wall`` switches to wall-clock time.
CLOCK = time.process_time
N_DELTAS = 200_000
NAMES = ("prometheus", "otel", "both")
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
            from steadystream.instrumentation.sinks.prometheus import PrometheusSink

            sinks = self.monitor._sinks
            self.monitor._sinks = tuple(s for s in sinks if not isinstance(s, PrometheusSink))
        self.prometheus = prometheus
        self.streams = 0

    def reset_exported(self) -> None:
        """Drop finished spans between runs so memory does not grow with the rounds."""
        if self.span_exporter is not None:
            self.span_exporter.clear()

    def check(self, content_bytes: int, n_deltas: int, provider: str = "openai") -> list[str]:
        """Problems with what the variant recorded, given how many streams it wrapped."""
        problems = []
        labels = {c.LABEL_SERVICE: "bench", c.LABEL_MODEL: MODEL, c.LABEL_PROVIDER: provider}
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
            otel_gaps = 0
            for rm in data.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name == c.BYTES_TOTAL:
                            total += sum(p.value for p in m.data.data_points)
                        elif m.name == c.CHUNK_GAP:
                            otel_gaps += sum(p.count for p in m.data.data_points)
            if total != content_bytes * self.streams:
                problems.append(f"{self.name}: OTel {c.BYTES_TOTAL} {total} != expected")
            if otel_gaps != (n_deltas - 1) * self.streams:
                problems.append(f"{self.name}: OTel chunk gaps {otel_gaps} != {n_deltas - 1}x")
        return problems


def make_setups(spec: ss.Spec) -> dict[str, Setup]:
    return {
        "prometheus": Setup("prometheus", spec, prometheus=True, otel=False),
        "otel": Setup("otel", spec, prometheus=False, otel=True),
        "both": Setup("both", spec, prometheus=True, otel=True),
    }


def sync_runner(
    events: list[Any], setup: Setup | None, provider: str = "openai"
) -> Callable[[], float]:
    """A function that iterates the stream once (raw or wrapped) and returns seconds."""

    def raw() -> float:
        t0 = CLOCK()
        for _event in iter(events):
            pass
        return CLOCK() - t0

    def wrapped() -> float:
        assert setup is not None
        setup.reset_exported()
        t0 = CLOCK()
        for _event in setup.monitor.wrap(iter(events), model=MODEL, provider=provider):
            pass
        elapsed = CLOCK() - t0
        setup.streams += 1
        return elapsed

    return raw if setup is None else wrapped


async def _agen(events: list[Any]) -> Any:
    for event in events:
        yield event


def async_runner(
    loop: asyncio.AbstractEventLoop,
    events: list[Any],
    setup: Setup | None,
    provider: str = "openai",
) -> Callable[[], float]:
    """Like :func:`sync_runner`, iterating an async generator on ``loop``."""

    async def raw() -> float:
        t0 = CLOCK()
        async for _event in _agen(events):
            pass
        return CLOCK() - t0

    async def wrapped() -> float:
        assert setup is not None
        setup.reset_exported()
        t0 = CLOCK()
        async for _event in setup.monitor.wrap(_agen(events), model=MODEL, provider=provider):
            pass
        elapsed = CLOCK() - t0
        setup.streams += 1
        return elapsed

    fn = raw if setup is None else wrapped
    return lambda: loop.run_until_complete(fn())


class OpenAIv2Chat:
    """``opentelemetry-instrumentation-openai-v2``'s own stream wrapper for Chat Completions
    (``LegacyChatStreamWrapper``, what its patched ``chat.completions.create(stream=True)``
    returns by default), with a real SDK span from an SDK ``TracerProvider``."""

    def __init__(self) -> None:
        from opentelemetry._logs import get_logger
        from opentelemetry.instrumentation.openai_v2.patch import LegacyChatStreamWrapper
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.cls = LegacyChatStreamWrapper
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = provider.get_tracer("openai-v2-bench")
        self.logger = get_logger("openai-v2-bench")

    def wrap(self, it: Any) -> Any:
        from opentelemetry.trace import SpanKind

        self.exporter.clear()
        span = self.tracer.start_span(f"chat {MODEL}", kind=SpanKind.CLIENT)
        return self.cls(it, span, self.logger, False)


def reference_runner(
    events: list[Any], sink: reference.ReferenceSink, text_of: Callable[[Any], str | None]
) -> Callable[[], float]:
    """The reference wrapper (``reference.py``) over the stream once, sync; returns seconds."""

    def run() -> float:
        t0 = CLOCK()
        for _event in reference.reference(iter(events), sink, text_of):
            pass
        return CLOCK() - t0

    return run


def reference_sink(spec: ss.Spec) -> reference.ReferenceSink:
    return reference.ReferenceSink(tuple(spec.histogram_buckets()[c.CHUNK_GAP]))


def check_reference(sink: reference.ReferenceSink, runs: int, n_deltas: int) -> list[str]:
    """The reference did its work: every gap counted, every byte hashed and counted."""
    problems = []
    if sink.gaps_counted() != (n_deltas - 1) * runs:
        problems.append(f"reference: {sink.gaps_counted()} gaps != {n_deltas - 1}x{runs}")
    if sink.streams._value.get() != runs:
        problems.append(f"reference: {sink.streams._value.get()} streams != {runs}")
    return problems


class OpenLLMetryChat:
    """OpenLLMetry's (``opentelemetry-instrumentation-openai``) Chat Completions stream wrapper
    (``ChatStream``, what its patched ``chat.completions.create(stream=True)`` returns), with a
    real SDK span. Its optional metric instruments are not passed, so its figure is a floor."""

    def __init__(self) -> None:
        from opentelemetry.instrumentation.openai.shared.chat_wrappers import ChatStream
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.cls = ChatStream
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = provider.get_tracer("openllmetry-bench")

    def wrap(self, it: Any) -> Any:
        from opentelemetry.trace import SpanKind

        self.exporter.clear()
        span = self.tracer.start_span("openai.chat", kind=SpanKind.CLIENT)
        source = _Chunks(it)
        return self.cls(span, source, start_time=time.time(), request_kwargs={"model": MODEL})


class _Chunks:
    """An iterator that takes attributes, as the SDK's ``Stream`` does (OpenLLMetry's proxy
    stores its state on the object it wraps)."""

    def __init__(self, it: Any) -> None:
        self._it = it

    def __iter__(self) -> _Chunks:
        return self

    def __next__(self) -> Any:
        return next(self._it)


def chat_comparison(rounds: int, n_chunks: int) -> tuple[Table, dict[str, Any]]:
    """Per-chunk overhead on Chat Completions chunks: steadystream vs openai-v2, in process."""
    chunks = _events.chat_chunks(n_chunks)
    n = len(chunks)
    spec = ss.default_spec("bench")
    setups = make_setups(spec)
    ref_sink = reference_sink(spec)
    variants: dict[str, Callable[[], float]] = {"raw": sync_runner(chunks, None)}
    variants["reference"] = reference_runner(chunks, ref_sink, reference.chat_text)
    variants["steadystream prometheus"] = sync_runner(chunks, setups["prometheus"])
    variants["steadystream both"] = sync_runner(chunks, setups["both"])
    others = {"openai-v2": OpenAIv2Chat, "OpenLLMetry": OpenLLMetryChat}
    errors: dict[str, str] = {}
    for label, cls in others.items():
        try:
            other = cls()
        except Exception as exc:  # not installed, or an incompatible dependency
            errors[label] = f"{type(exc).__name__}: {exc}"
            continue

        def run_other(other: Any = other) -> float:
            t0 = CLOCK()
            for _chunk in other.wrap(iter(chunks)):
                pass
            return CLOCK() - t0

        variants[label] = run_other
    times = alternate(variants, rounds)
    raw = times["raw"]
    table = Table(
        f"1b. Per-chunk overhead in process, Chat Completions: {n:,} ChatCompletionChunk "
        "objects, sync: steadystream vs the reference wrapper, openai-v2 and OpenLLMetry",
        ["variant", "ns/chunk above raw", "target", ""],
    )
    over: dict[str, Summary] = {}
    for name in variants:
        if name == "raw":
            continue
        over[name] = Summary.of((t - r) / n * 1e9 for t, r in zip(times[name], raw, strict=True))
        table.add(name, over[name].fmt(".0f"), "", "")
    data: dict[str, Any] = {k: v.as_dict() for k, v in over.items()}
    data["errors"] = errors
    data["problems"] = check_reference(ref_sink, rounds + 1, n_chunks)
    # Targets: full telemetry no dearer per chunk than openai-v2, and at most a third of
    # OpenLLMetry; every steadystream figure also as a ratio to the reference wrapper.
    targets = {"openai-v2": 1.0, "OpenLLMetry": 1 / 3}
    for name in ("steadystream prometheus", "steadystream both"):
        for against in ("reference", *others):
            if against not in over:
                continue
            share = over[name].median / over[against].median
            data[f"{name} / {against}"] = share
            target = targets.get(against) if name == "steadystream both" else None
            if target is None:
                table.add(f"{name} / {against}", f"{share:.2f}", "", "")
                continue
            met = share <= target
            data[f"{name} / {against} target_met"] = met
            table.add(f"{name} / {against}", f"{share:.2f}", f"<= {target:.2f}", verdict(met))
    for label, error in errors.items():
        table.notes.append(f"{label} not measured: {error}")
    table.notes.append(
        "openai-v2 per chunk: reads id/model/service_tier/choices/usage and buffers the text; "
        "it times nothing per chunk. OpenLLMetry: accumulates the response and sets span "
        "attributes at the end (its optional metric instruments not passed). steadystream per "
        "chunk: phases, gap, UTF-8 bytes, sha256, fences, checkpoint every 16, batched metric "
        "flushes."
    )
    return table, data


def anthropic_comparison(rounds: int, n_deltas: int) -> tuple[Table, dict[str, Any]]:
    """The same measurement on an Anthropic Messages stream (anthropic SDK event objects),
    Prometheus sink, sync and async (async at most 1.5x sync)."""
    events = _events.anthropic_events(n_deltas)
    n_events = len(events)
    content_bytes = _events.content_bytes(n_deltas)
    spec = ss.default_spec("bench")
    loop = asyncio.new_event_loop()
    setups = {
        mode: Setup("prometheus", spec, prometheus=True, otel=False) for mode in ("sync", "async")
    }
    variants: dict[str, Callable[[], float]] = {
        "sync/raw": sync_runner(events, None),
        "sync/prometheus": sync_runner(events, setups["sync"], "anthropic"),
        "async/raw": async_runner(loop, events, None),
        "async/prometheus": async_runner(loop, events, setups["async"], "anthropic"),
    }
    times = alternate(variants, rounds)
    loop.close()
    problems = [p for s in setups.values() for p in s.check(content_bytes, n_deltas, "anthropic")]
    table = Table(
        f"1c. Per-chunk overhead, Anthropic Messages: {n_deltas:,} content_block_delta events "
        "(+5 lifecycle events), ns per event above raw",
        ["mode", "variant", "ns/event above raw", "raw ns/event", "target", ""],
    )
    data: dict[str, Any] = {"deltas": n_deltas, "events": n_events, "problems": problems}
    for mode in ("sync", "async"):
        raw = times[f"{mode}/raw"]
        ts = times[f"{mode}/prometheus"]
        raw_ns = Summary.of(t / n_events * 1e9 for t in raw)
        over = Summary.of((t - r) / n_events * 1e9 for t, r in zip(ts, raw, strict=True))
        data[f"{mode}/prometheus"] = {"ns_per_event_above_raw": over.as_dict()}
        table.add(mode, "prometheus", over.fmt(".0f"), raw_ns.fmt(".0f"), "", "")
    share = (
        data["async/prometheus"]["ns_per_event_above_raw"]["median"]
        / data["sync/prometheus"]["ns_per_event_above_raw"]["median"]
    )
    data["async/prometheus"]["ratio_to_sync"] = share
    data["ratio_to_sync_target_met"] = met = share <= ASYNC_TO_SYNC
    table.add(
        "async", "prometheus", f"{share:.2f}x sync", "", f"<= {ASYNC_TO_SYNC:.1f}x", verdict(met)
    )
    table.notes.append(
        "RECORDED VALUES WRONG: " + "; ".join(problems)
        if problems
        else "Checked after the run: bytes, chunk-gap count and ok-stream count exact."
    )
    return table, data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--deltas", type=int, default=N_DELTAS)
    parser.add_argument("--wall", action="store_true", help="wall-clock instead of CPU time")
    parser.add_argument("--chat-chunks", type=int, default=50_000)
    parser.add_argument("--anthropic-deltas", type=int, default=N_DELTAS)
    args = parser.parse_args(argv)
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter
    n_deltas = args.deltas

    events = _events.sdk_events(n_deltas)
    n_events = len(events)
    content_bytes = _events.content_bytes(n_deltas)
    spec = ss.default_spec("bench")
    loop = asyncio.new_event_loop()
    sync_setups = make_setups(spec)
    async_setups = make_setups(spec)

    ref_sink = reference_sink(spec)
    variants: dict[str, Callable[[], float]] = {
        "sync/raw": sync_runner(events, None),
        "sync/reference": reference_runner(events, ref_sink, reference.responses_text),
    }
    for name, setup in sync_setups.items():
        variants[f"sync/{name}"] = sync_runner(events, setup)
    variants["async/raw"] = async_runner(loop, events, None)
    for name, setup in async_setups.items():
        variants[f"async/{name}"] = async_runner(loop, events, setup)

    times = alternate(variants, args.rounds)
    loop.close()

    problems = check_reference(ref_sink, args.rounds + 1, n_deltas)
    for setups in (sync_setups, async_setups):
        for setup in setups.values():
            problems += setup.check(content_bytes, n_deltas)

    results: dict[str, Any] = {}
    table = Table(
        f"1. Per-chunk overhead in process: {n_deltas:,} text deltas (+8 lifecycle events), "
        "ns per event above raw",
        ["mode", "variant", "ns/event above raw", "raw ns/event", "target", ""],
    )
    for mode in ("sync", "async"):
        raw = times[f"{mode}/raw"]
        raw_ns = Summary.of(t / n_events * 1e9 for t in raw)
        results[f"{mode}/raw"] = {"ns_per_event": raw_ns.as_dict()}
        names = ("reference", "prometheus", "otel", "both") if mode == "sync" else NAMES
        for name in names:
            ts = times[f"{mode}/{name}"]
            over = Summary.of((t - r) / n_events * 1e9 for t, r in zip(ts, raw, strict=True))
            results[f"{mode}/{name}"] = {
                "ns_per_event_above_raw": over.as_dict(),
                "ns_per_event": Summary.of(t / n_events * 1e9 for t in ts).as_dict(),
            }
            table.add(mode, name, over.fmt(".0f"), raw_ns.fmt(".0f"), "", "")
    # Every figure as a ratio to the reference wrapper measured in the same rounds, and async
    # to sync: the targets of the per-chunk path.
    ref = results["sync/reference"]["ns_per_event_above_raw"]["median"]
    ratio_targets = {"sync/prometheus": 1.5, "sync/both": 2.0}
    for key in ("sync/prometheus", "sync/otel", "sync/both", *(f"async/{n}" for n in NAMES)):
        share = results[key]["ns_per_event_above_raw"]["median"] / ref
        results[key]["ratio_to_reference"] = share
        goal = ratio_targets.get(key)
        met = None if goal is None else share <= goal
        if met is not None:
            results[key]["ratio_target_met"] = met
        table.add(
            *key.split("/"),
            f"{share:.2f}x reference",
            "",
            "" if goal is None else f"<= {goal:.1f}x",
            "" if met is None else verdict(met),
        )
    for name in NAMES:
        share = (
            results[f"async/{name}"]["ns_per_event_above_raw"]["median"]
            / results[f"sync/{name}"]["ns_per_event_above_raw"]["median"]
        )
        met = share <= ASYNC_TO_SYNC
        results[f"async/{name}"]["ratio_to_sync"] = share
        results[f"async/{name}"]["ratio_to_sync_target_met"] = met
        table.add("async", name, f"{share:.2f}x sync", "", f"<= {ASYNC_TO_SYNC:.1f}x", verdict(met))
    table.notes.append(
        f"{args.rounds} alternating rounds after 1 warm-up round; each run is one whole stream "
        f"({n_events:,} events, {content_bytes:,} content bytes) including wrapper set-up and "
        f"end-of-stream flush; {'wall-clock' if args.wall else 'process CPU'} time."
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
    # The Responses stream is freed before the other streams are built (memory on small
    # machines).
    del variants, events, sync_setups, async_setups
    gc.collect()
    chat_table, chat_data = chat_comparison(args.rounds, args.chat_chunks)
    gc.collect()
    anthropic_table, anthropic_data = anthropic_comparison(args.rounds, args.anthropic_deltas)
    problems += anthropic_data["problems"] + chat_data["problems"]

    # One verdict per target, named (make bench's summary lists them).
    targets = {
        "Responses, sync, Prometheus only <= 1.5x the reference": results["sync/prometheus"].get(
            "ratio_target_met"
        ),
        "Responses, sync, Prometheus + OpenTelemetry SDK <= 2.0x the reference": results[
            "sync/both"
        ].get("ratio_target_met"),
        **{
            f"Responses, async {name} <= {ASYNC_TO_SYNC:.1f}x sync": results[f"async/{name}"].get(
                "ratio_to_sync_target_met"
            )
            for name in NAMES
        },
        f"Anthropic, async <= {ASYNC_TO_SYNC:.1f}x sync": anthropic_data.get(
            "ratio_to_sync_target_met"
        ),
        "Chat, full telemetry <= openai-v2 per chunk": chat_data.get(
            "steadystream both / openai-v2 target_met"
        ),
        "Chat, full telemetry <= 1/3 of OpenLLMetry per chunk": chat_data.get(
            "steadystream both / OpenLLMetry target_met"
        ),
    }
    emit(
        "chunk",
        [table, anthropic_table, chat_table],
        {
            "anthropic": anthropic_data,
            "chat": chat_data,
            "deltas": n_deltas,
            "events": n_events,
            "content_bytes": content_bytes,
            "rounds": args.rounds,
            "results": results,
            "targets": targets,
            "recorded_values_problems": problems,
        },
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
