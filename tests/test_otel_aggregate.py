"""OpenTelemetry histograms aggregated in process: what an SDK reader collects equals what the
Prometheus sink holds, bucket by bucket, for cumulative and delta readers, across collections.

Every clock step is a multiple of 2**-10 s, so every gap, phase and sum in milliseconds is an
exact binary fraction and sums compare with ``==`` whatever the order of addition.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from itertools import accumulate, islice
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import Counter as SdkCounter
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from steadystream.instrumentation.sinks.otel import OTelMetricsSink

TICK = 2.0**-10  # seconds; 1000 * TICK ms is exact
# Gaps in ticks: below the first bound, on bounds (1024 ticks = 1000.0 ms exactly), between
# bounds and past the last one (16 s > 15 000 ms).
PATTERN = (1, 5, 10, 41, 103, 1024, 3, 256, 2048, 16384, 7, 512)

# What a delta exporter prefers (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta).
DELTA = {
    SdkCounter: AggregationTemporality.DELTA,
    SdkHistogram: AggregationTemporality.DELTA,
}


def spec() -> ss.Spec:
    """The default spec with room for 16 s gaps and long streams on the fake clock."""
    return ss.Spec.model_validate(
        {
            "version": 1,
            "service": "svc",
            "stream": {"timeouts": {"stream_idle": "60s", "total": "1h"}},
        }
    )


# The series both sinks hold: every histogram and counter of the stream metrics.
COMPARED = frozenset((*c.HISTOGRAMS, *c.COUNTERS, *c.USAGE_COUNTERS))


class Clock:
    """A clock the upstreams move by whole ticks."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def responses_events(clock: Clock, n: int, offset: int) -> Iterator[dict[str, Any]]:
    clock.t += 300 * TICK
    yield {"type": "response.created", "response": {"id": "r"}}
    for i in range(n):
        clock.t += PATTERN[(i + offset) % len(PATTERN)] * TICK
        yield {"type": "response.output_text.delta", "delta": "héllo "}
    clock.t += 2 * TICK
    yield {"type": "response.completed", "response": {"id": "r"}}


def chat_chunk(delta: dict[str, Any], finish: str | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
    )


def chat_chunks(clock: Clock, n: int, offset: int) -> Iterator[ChatCompletionChunk]:
    clock.t += 700 * TICK
    yield chat_chunk({"role": "assistant", "content": ""})
    for i in range(n):
        clock.t += PATTERN[(i + offset) % len(PATTERN)] * TICK
        yield chat_chunk({"content": "wörld "})
    clock.t += 3 * TICK
    yield chat_chunk({}, "stop")


async def aiter_of(items: Iterator[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


class Setup:
    """A monitor whose meter provider has a cumulative and a delta InMemoryMetricReader."""

    def __init__(self, **provider: Any) -> None:
        self.clock = Clock()
        self.registry = CollectorRegistry()
        self.cumulative = InMemoryMetricReader()
        self.delta = InMemoryMetricReader(preferred_temporality=DELTA)
        self.provider = MeterProvider(metric_readers=[self.cumulative, self.delta], **provider)
        self.monitor = ss.StreamMonitor(
            spec(),
            registry=self.registry,
            tracer_provider=TracerProvider(),
            meter_provider=self.provider,
            clock=self.clock,
            watchdog=False,
        )
        # Sums of every delta collection so far: (name, attributes) -> totals.
        self.delta_totals: dict[tuple[str, frozenset[Any]], dict[str, Any]] = {}

    def otel_sink(self) -> OTelMetricsSink:
        (sink,) = [s for s in self.monitor._sinks if isinstance(s, OTelMetricsSink)]
        return sink

    def sync_stream(self, kind: str, n: int, offset: int = 0) -> None:
        source = responses_events if kind == "responses" else chat_chunks
        items = list(self.monitor.wrap(source(self.clock, n, offset), model="m", provider=kind))
        assert len(items) == n + 2

    def async_stream(self, kind: str, n: int, offset: int = 0) -> None:
        source = responses_events if kind == "responses" else chat_chunks

        async def run() -> int:
            wrapped = self.monitor.wrap(
                aiter_of(source(self.clock, n, offset)), model="m", provider=kind
            )
            return len([item async for item in wrapped])

        assert asyncio.run(run()) == n + 2

    def collect_delta(self) -> None:
        """Collect the delta reader once, adding its points to the running totals."""
        for name, attrs, point, temporality in points(self.delta):
            if name not in COMPARED:
                continue  # stream_in_flight (an up-down counter) and the gauges
            assert temporality is AggregationTemporality.DELTA, name
            total = self.delta_totals.setdefault((name, attrs), {})
            if hasattr(point, "bucket_counts"):
                counts = total.get("bucket_counts", [0] * len(point.bucket_counts))
                total["bucket_counts"] = [
                    a + b for a, b in zip(counts, point.bucket_counts, strict=True)
                ]
                total["count"] = total.get("count", 0) + point.count
                total["sum"] = total.get("sum", 0.0) + point.sum
                total["bounds"] = tuple(point.explicit_bounds)
                total["start"] = point.start_time_unix_nano
            else:
                total["value"] = total.get("value", 0) + point.value

    def prometheus(self) -> dict[tuple[str, frozenset[Any]], dict[str, Any]]:
        """Every histogram and counter series of the registry with something in it."""
        out: dict[tuple[str, frozenset[Any]], dict[str, Any]] = {}
        for family in self.registry.collect():
            if family.type == "histogram" and family.name in c.HISTOGRAMS:
                for s in family.samples:
                    labels = {k: v for k, v in s.labels.items() if k != "le"}
                    entry = out.setdefault((family.name, frozenset(labels.items())), {})
                    if s.name.endswith("_bucket"):
                        entry.setdefault("buckets", []).append((float(s.labels["le"]), s.value))
                    elif s.name.endswith("_count"):
                        entry["count"] = s.value
                    elif s.name.endswith("_sum"):
                        entry["sum"] = s.value
            elif family.type == "counter":
                for s in family.samples:
                    if s.name.endswith("_total") and s.value:
                        out[(s.name, frozenset(s.labels.items()))] = {"value": s.value}
        return {k: v for k, v in out.items() if v.get("count", 1)}

    def assert_equal(self, otel: dict[tuple[str, frozenset[Any]], dict[str, Any]]) -> None:
        """``otel`` (cumulative points or delta totals) holds exactly what Prometheus holds,
        for every histogram and counter of the stream metrics."""
        prom = self.prometheus()
        ours = {k: v for k, v in otel.items() if k[0] in COMPARED and v.get("count", 1)}
        assert set(ours) == set(prom)
        for key, p in prom.items():
            o = ours[key]
            if "buckets" not in p:
                assert o["value"] == p["value"], key
                continue
            bounds = [le for le, _ in p["buckets"] if le != float("inf")]
            assert list(o["bounds"]) == bounds, key
            assert list(accumulate(o["bucket_counts"])) == [v for _, v in p["buckets"]], key
            assert o["count"] == p["count"], key
            assert o["sum"] == p["sum"], key


def points(reader: InMemoryMetricReader) -> Iterator[tuple[str, frozenset[Any], Any, Any]]:
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                temporality = getattr(m.data, "aggregation_temporality", None)
                for p in m.data.data_points:
                    yield m.name, frozenset((p.attributes or {}).items()), p, temporality


def cumulative(reader: InMemoryMetricReader) -> dict[tuple[str, frozenset[Any]], dict[str, Any]]:
    out: dict[tuple[str, frozenset[Any]], dict[str, Any]] = {}
    for name, attrs, p, temporality in points(reader):
        assert (name, attrs) not in out, f"{name} {set(attrs)} twice in one collection"
        if temporality is not None:
            assert temporality is AggregationTemporality.CUMULATIVE, name
        if hasattr(p, "bucket_counts"):
            out[(name, attrs)] = {
                "bucket_counts": list(p.bucket_counts),
                "count": p.count,
                "sum": p.sum,
                "bounds": tuple(p.explicit_bounds),
            }
        elif hasattr(p, "value"):
            out[(name, attrs)] = {"value": p.value}
    return out


def test_sdk_provider_aggregates_locally_with_every_histogram_in_one_place() -> None:
    setup = Setup()
    sink = setup.otel_sink()
    assert sink.aggregates_locally
    setup.sync_stream("responses", 150)
    data = setup.cumulative.get_metrics_data()
    names = [m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    # One metric per name (no second, empty SDK histogram beside ours), in one scope.
    assert len(names) == len(set(names))
    assert c.CHUNK_GAP in names and c.FIRST_TOKEN_LATENCY in names
    (scope,) = {sm.scope.name for rm in data.resource_metrics for sm in rm.scope_metrics}
    assert scope == c.METER_NAME
    (gap,) = [
        m
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == c.CHUNK_GAP
    ]
    assert gap.unit == c.UNITS.get(c.CHUNK_GAP, "ms")
    assert gap.description == c.DESCRIPTIONS[c.CHUNK_GAP]
    (point,) = gap.data.data_points
    assert point.count == 149
    gaps_ms = [PATTERN[i % len(PATTERN)] * TICK * 1000.0 for i in range(1, 150)]
    assert point.sum == sum(gaps_ms)
    assert point.min == min(gaps_ms) and point.max == max(gaps_ms)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_cumulative_and_delta_readers_see_what_prometheus_sees(mode: str) -> None:
    """Responses and Chat streams, sync or async, with collections between them: the
    cumulative reader's last collection and the sum of every delta collection equal the
    Prometheus registry, series by series, bucket by bucket."""
    setup = Setup()
    run = setup.sync_stream if mode == "sync" else setup.async_stream
    for round_, (kind, n) in enumerate(
        [("responses", 150), ("chat", 70), ("responses", 3), ("chat", 200), ("responses", 64)]
    ):
        run(kind, n, offset=round_)
        setup.collect_delta()
        setup.assert_equal(cumulative(setup.cumulative))
    setup.collect_delta()  # nothing new: adds nothing
    setup.assert_equal(setup.delta_totals)
    setup.assert_equal(cumulative(setup.cumulative))


def test_a_delta_collection_with_nothing_new_has_no_histogram_points() -> None:
    setup = Setup()
    setup.sync_stream("chat", 10)
    first = {name for name, _, p, _ in points(setup.delta) if hasattr(p, "bucket_counts")}
    assert c.CHUNK_GAP in first
    again = {name for name, _, p, _ in points(setup.delta) if hasattr(p, "bucket_counts")}
    assert again == set()
    # The cumulative reader keeps reporting the totals.
    assert cumulative(setup.cumulative)[(c.CHUNK_GAP, _labels("chat"))]["count"] == 9


def _labels(provider: str) -> frozenset[Any]:
    return frozenset(
        {c.LABEL_SERVICE: "svc", c.LABEL_MODEL: "m", c.LABEL_PROVIDER: provider}.items()
    )


def test_a_stream_spanning_collections_is_counted_once() -> None:
    """Collections in the middle of a stream (after a 64-chunk flush) split its gaps between
    delta points without losing or repeating one, and its end is counted once."""
    setup = Setup()
    key = (c.CHUNK_GAP, _labels("responses"))
    source = responses_events(setup.clock, 300, 0)
    wrapped = iter(setup.monitor.wrap(source, model="m", provider="responses"))
    seen: list[int] = []
    for i, _ in enumerate(wrapped):
        if i in (100, 200):  # two 64-gap flushes before 100: a collection mid-stream
            setup.collect_delta()
            seen.append(cumulative(setup.cumulative)[key]["count"])
    setup.collect_delta()
    total = cumulative(setup.cumulative)
    assert seen[0] > 0 and seen[1] > seen[0]  # the collections did see part of the stream
    assert total[key]["count"] == 299
    assert setup.delta_totals[key]["count"] == 299
    requests = (c.REQUESTS_TOTAL, _labels("responses") | {(c.LABEL_OUTCOME, c.OUTCOME_OK)})
    assert total[requests]["value"] == 1
    assert setup.delta_totals[requests]["value"] == 1
    setup.assert_equal(total)
    setup.assert_equal(setup.delta_totals)


def test_a_reader_added_later_sees_only_what_came_after() -> None:
    setup = Setup()
    setup.sync_stream("responses", 20)
    late = InMemoryMetricReader()
    setup.provider.add_metric_reader(late)
    setup.sync_stream("responses", 30)
    got = cumulative(late)
    assert got[(c.CHUNK_GAP, _labels("responses"))]["count"] == 29
    assert got[(c.FIRST_TOKEN_LATENCY, _labels("responses"))]["count"] == 1
    # The original readers still have both streams.
    assert cumulative(setup.cumulative)[(c.CHUNK_GAP, _labels("responses"))]["count"] == 19 + 29
    setup.provider.remove_metric_reader(late)
    setup.sync_stream("responses", 5)
    setup.assert_equal(cumulative(setup.cumulative))


def test_two_monitors_on_one_provider_share_the_series() -> None:
    setup = Setup()
    other = ss.StreamMonitor(
        spec(),
        registry=setup.registry,
        tracer_provider=TracerProvider(),
        meter_provider=setup.provider,
        clock=setup.clock,
        watchdog=False,
    )
    setup.sync_stream("chat", 40)
    list(other.wrap(chat_chunks(setup.clock, 25, 3), model="m", provider="chat"))
    got = cumulative(setup.cumulative)
    assert got[(c.CHUNK_GAP, _labels("chat"))]["count"] == 39 + 24
    setup.assert_equal(got)


def test_a_provider_with_views_records_through_the_sdk_and_the_view_applies() -> None:
    """Views are the SDK's: with any view, every observation goes through the API instrument
    (no loss), so the view's buckets are what the reader sees."""
    bounds = (2.0, 20.0, 200.0)
    view = View(
        instrument_name=c.CHUNK_GAP,
        aggregation=ExplicitBucketHistogramAggregation(boundaries=bounds),
    )
    setup = Setup(views=[view])
    assert not setup.otel_sink().aggregates_locally
    setup.sync_stream("responses", 150)
    gap = cumulative(setup.cumulative)[(c.CHUNK_GAP, _labels("responses"))]
    assert gap["bounds"] == bounds
    assert gap["count"] == 149
    gaps_ms = [PATTERN[i % len(PATTERN)] * TICK * 1000.0 for i in range(1, 150)]
    assert gap["sum"] == sum(gaps_ms)
    assert gap["bucket_counts"] == [
        sum(1 for g in gaps_ms if lo < g <= hi)
        for lo, hi in zip((float("-inf"), *bounds), (*bounds, float("inf")), strict=True)
    ]


def test_the_api_no_op_provider_costs_nothing_and_breaks_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A meter provider that is not the SDK's (the API's no-op one here) gets one record per
    observation through the API: the stream and the Prometheus sink are unaffected."""
    registry = CollectorRegistry()
    clock = Clock()
    monitor = ss.StreamMonitor(
        spec(),
        registry=registry,
        tracer_provider=TracerProvider(),
        meter_provider=NoOpMeterProvider(),
        clock=clock,
        watchdog=False,
    )
    (sink,) = [s for s in monitor._sinks if isinstance(s, OTelMetricsSink)]
    assert not sink.aggregates_locally
    with caplog.at_level(logging.WARNING, logger="steadystream"):
        items = list(monitor.wrap(responses_events(clock, 100, 0), model="m", provider="p"))
    assert len(items) == 102
    assert not [r for r in caplog.records if r.name.startswith("steadystream")]
    labels = {c.LABEL_SERVICE: "svc", c.LABEL_MODEL: "m", c.LABEL_PROVIDER: "p"}
    assert registry.get_sample_value(c.count(c.CHUNK_GAP), labels) == 99


def test_a_failure_in_our_part_of_a_collection_keeps_the_sdk_metrics(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If adding the local histograms to a collection raises, the collection still returns
    the SDK's own metrics (the gauges) and the failure is logged, not raised."""
    setup = Setup()
    setup.sync_stream("chat", 10)
    producer = setup.otel_sink().i[c.CHUNK_GAP]._producer

    def fail(reader: Any, data: Any) -> Any:
        raise RuntimeError("injected")

    monkeypatch.setattr(producer, "add_to", fail)
    with caplog.at_level(logging.DEBUG, logger="steadystream"):
        got = cumulative(setup.cumulative)
    assert got[(c.ERROR_RATE, _labels("chat"))] == {"value": 0.0}
    assert (c.CHUNK_GAP, _labels("chat")) not in got
    assert (c.IN_FLIGHT, _labels("chat")) not in got
    assert any("OTelMetricsSink.collect" in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    # Nothing was lost: the next collection has the histograms, whole.
    setup.assert_equal(cumulative(setup.cumulative))


def test_failures_count_the_same_in_both_sinks() -> None:
    """An idle timeout and a failed response: requests by outcome, errors by class, timeouts by
    phase and the phase histograms agree between the two sinks."""
    setup = Setup()
    setup.sync_stream("responses", 80)

    def stalled() -> Iterator[dict[str, Any]]:
        yield from responses_events_head(setup.clock, 70)
        setup.clock.t += 61 * 1024 * TICK  # past the 60 s idle budget
        yield {"type": "response.output_text.delta", "delta": "late"}

    with pytest.raises(ss.IdleTimeout):
        list(setup.monitor.wrap(stalled(), model="m", provider="responses"))

    def failed() -> Iterator[dict[str, Any]]:
        yield from responses_events_head(setup.clock, 5)
        yield {
            "type": "response.failed",
            "response": {"id": "r", "error": {"code": "server_error"}},
        }

    # Passive: the failure event is handed on, and counted as the stream's outcome.
    assert len(list(setup.monitor.wrap(failed(), model="m", provider="responses"))) == 7
    setup.collect_delta()
    got = cumulative(setup.cumulative)
    assert any(k[0] == c.ERRORS_TOTAL for k in got)
    assert any(k[0] == c.TIMEOUTS_TOTAL for k in got)
    setup.assert_equal(got)
    setup.assert_equal(setup.delta_totals)


def responses_events_head(clock: Clock, n: int) -> Iterator[dict[str, Any]]:
    """A Responses stream's first ``n`` deltas, no end."""
    yield from islice(responses_events(clock, n, 0), n + 1)


def test_concurrent_streams_and_collections_lose_and_repeat_nothing() -> None:
    """Four threads stream while a fifth collects the delta reader over and over: once the
    streams are done, the delta totals and the cumulative reader hold exactly the Prometheus
    counts and bucket counts (real clock here; sums then compare to within rounding, as the
    threads' batches are added in different orders)."""
    registry = CollectorRegistry()
    cumulative_reader = InMemoryMetricReader()
    delta_reader = InMemoryMetricReader(preferred_temporality=DELTA)
    monitor = ss.StreamMonitor(
        spec(),
        registry=registry,
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(metric_readers=[cumulative_reader, delta_reader]),
        watchdog=False,
    )
    done = threading.Event()
    deltas: list[tuple[str, frozenset[Any], Any]] = []

    def collector() -> None:
        while not done.is_set():
            deltas.extend((n, a, p) for n, a, p, _ in points(delta_reader) if n in COMPARED)

    def streamer(provider: str) -> None:
        for _ in range(5):
            events = [{"type": "response.output_text.delta", "delta": "ab"}] * 300
            list(monitor.wrap(iter(events), model="m", provider=provider))

    threads = [threading.Thread(target=streamer, args=(f"p{i}",)) for i in range(4)]
    collecting = threading.Thread(target=collector)
    collecting.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive(), "a streaming thread did not finish within 300 s"
    done.set()
    collecting.join(timeout=60)
    assert not collecting.is_alive(), "the collecting thread did not stop within 60 s"
    deltas.extend((n, a, p) for n, a, p, _ in points(delta_reader) if n in COMPARED)

    totals: dict[tuple[str, frozenset[Any]], list[Any]] = {}
    for name, attrs, p in deltas:
        t = totals.setdefault((name, attrs), [0, 0.0, None])
        if hasattr(p, "bucket_counts"):
            t[0] += p.count
            t[1] += p.sum
            t[2] = [
                a + b
                for a, b in zip(t[2] or [0] * len(p.bucket_counts), p.bucket_counts, strict=True)
            ]
        else:
            t[0] += p.value
    final = cumulative(cumulative_reader)
    for i in range(4):
        labels = {c.LABEL_SERVICE: "svc", c.LABEL_MODEL: "m", c.LABEL_PROVIDER: f"p{i}"}
        key = (c.CHUNK_GAP, frozenset(labels.items()))
        prom_count = registry.get_sample_value(c.count(c.CHUNK_GAP), labels)
        assert prom_count == 5 * 299
        assert totals[key][0] == final[key]["count"] == prom_count
        prom_buckets = [
            registry.get_sample_value(f"{c.CHUNK_GAP}_bucket", {**labels, "le": le})
            for le in (*(str(b) for b in final[key]["bounds"]), "+Inf")
        ]
        assert list(accumulate(totals[key][2])) == prom_buckets
        assert list(accumulate(final[key]["bucket_counts"])) == prom_buckets
        prom_sum = registry.get_sample_value(f"{c.CHUNK_GAP}_sum", labels)
        assert totals[key][1] == pytest.approx(prom_sum, rel=1e-9)
        assert final[key]["sum"] == pytest.approx(prom_sum, rel=1e-9)
        ok = (c.REQUESTS_TOTAL, frozenset({**labels, c.LABEL_OUTCOME: c.OUTCOME_OK}.items()))
        assert totals[ok][0] == final[ok]["value"] == 5
        nbytes = (c.BYTES_TOTAL, key[1])
        assert totals[nbytes][0] == final[nbytes]["value"] == 5 * 600


def _in_flight(reader: InMemoryMetricReader) -> dict[frozenset[Any], tuple[Any, ...]]:
    """``stream_in_flight`` as ``reader`` collects it now: per attribute set, the value, the
    temporality and whether the sum is monotonic."""
    data = reader.get_metrics_data()
    return {
        frozenset((p.attributes or {}).items()): (
            p.value,
            m.data.aggregation_temporality,
            m.data.is_monotonic,
        )
        for rm in (data.resource_metrics if data else [])
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == c.IN_FLIGHT
        for p in m.data.data_points
    }


def test_in_flight_is_what_an_sdk_up_down_counter_reports() -> None:
    """``stream_in_flight``, aggregated here, against an SDK ``UpDownCounter`` given the same
    +1 and -1: equal for a cumulative and a delta reader at every collection, with streams
    open across collections and a collection with nothing new; and equal to the Prometheus
    gauge."""
    from opentelemetry.sdk.metrics import UpDownCounter

    delta = {**DELTA, UpDownCounter: AggregationTemporality.DELTA}
    clock = Clock()
    registry = CollectorRegistry()
    ours = (InMemoryMetricReader(), InMemoryMetricReader(preferred_temporality=delta))
    monitor = ss.StreamMonitor(
        spec(),
        registry=registry,
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(metric_readers=list(ours)),
        clock=clock,
        watchdog=False,
    )
    (sink,) = [s for s in monitor._sinks if isinstance(s, OTelMetricsSink)]
    assert sink.aggregates_locally
    sdk = (InMemoryMetricReader(), InMemoryMetricReader(preferred_temporality=delta))
    counter = MeterProvider(metric_readers=list(sdk)).get_meter("reference")
    counter = counter.create_up_down_counter(c.IN_FLIGHT)
    labels = dict(_labels("chat"))
    key = frozenset(labels.items())

    def open_one() -> Iterator[Any]:
        wrapped = iter(monitor.wrap(chat_chunks(clock, 5, 0), model="m", provider="chat"))
        next(wrapped)
        counter.add(1, labels)
        return wrapped

    def finish(wrapped: Iterator[Any]) -> None:
        assert len(list(wrapped)) == 6
        counter.add(-1, labels)

    def collect(open_now: int) -> list[dict[frozenset[Any], tuple[Any, ...]]]:
        """Our two readers' points, after checking them against the SDK's and Prometheus."""
        got = [_in_flight(reader) for reader in ours]
        assert got == [_in_flight(reader) for reader in sdk]
        assert registry.get_sample_value(c.IN_FLIGHT, labels) == open_now
        return got

    cumulative_, delta_ = AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA
    a, b = open_one(), open_one()
    assert collect(2) == [{key: (2, cumulative_, False)}, {key: (2, delta_, False)}]
    finish(a)
    assert collect(1) == [{key: (1, cumulative_, False)}, {key: (-1, delta_, False)}]
    assert collect(1) == [{key: (1, cumulative_, False)}, {}]  # nothing new
    c_ = open_one()
    finish(b)
    finish(c_)
    assert collect(0) == [{key: (0, cumulative_, False)}, {key: (-1, delta_, False)}]
