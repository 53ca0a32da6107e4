"""OpenTelemetry histograms bucketed here, in the sink's batched flush, and handed to the SDK
once per collection: no SDK call per observation.

Why: the OpenTelemetry SDK (1.45) has no batch ``record``, no ``MetricProducer`` and no
asynchronous histogram, and one ``Histogram.record`` costs about 5 us (attribute hashing, the
exemplar filter, one storage per reader). The core hands chunk gaps to the sinks in batches of
up to 64; recording them one by one made the OpenTelemetry path six times dearer than the
Prometheus one.

How: every histogram of :class:`~.otel.OTelMetricsSink` is a :class:`LocalHistogram` when its
meter provider is an SDK ``MeterProvider`` without views. A batch is sorted once and bucketed
with one bisect per bucket bound (the explicit-bucket histogram of the SDK, same bounds, an
upper bound inclusive), under one lock per attribute set. The seam is the SDK's collection
path, the one function every reader goes through: ``MetricReader.collect`` calls the provider's
collect callback (``SynchronousMeasurementConsumer.collect``) and hands the result to the
reader's ``_receive_metrics``. :func:`local_histograms` wraps that callback once per provider, so
the collection of any reader (``PeriodicExportingMetricReader`` with OTLP, the Prometheus
reader, ``InMemoryMetricReader``) returns the SDK's metrics plus ours, as ``Histogram`` metrics
of the same instrumentation scope, with the instruments' names, units, descriptions and bounds.

Temporality: each reader has its own accumulator per attribute set, updated by every flush
(one reader is the usual case). A cumulative reader sees the totals since the first
observation; a delta reader sees what came since its previous collection (nothing when nothing
came), and its accumulator starts over; min and max follow the same windows. These are the
SDK's own rules for synchronous histograms. A reader added later (``add_metric_reader``) starts
empty, as in the SDK; a removed one is forgotten.

Falls back, logging nothing and losing nothing, to one ``record`` per observation through the
OpenTelemetry API (:class:`ApiHistogram`) when the provider is not the SDK's (the API's no-op
or proxy provider, a vendor's own), when it has views (a view may rename, re-bucket or drop an
instrument, which only the SDK's pipeline applies), when the SDK is disabled, or when this SDK
version lacks the parts used here. Exemplars are not attached to the locally aggregated points.
"""

from __future__ import annotations

import threading
import weakref
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from time import time_ns
from typing import Any

from ..sinks.telemetry import report_telemetry_error

__all__ = ["ApiHistogram", "HistogramProducer", "LocalHistogram", "local_histograms"]

_INF = float("inf")


class _Acc:
    """One reader's view of one attribute set: bucket counts, count, sum, min, max."""

    __slots__ = ("count", "counts", "max", "min", "start", "sum")

    def __init__(self, nbuckets: int, start: int) -> None:
        self.counts = [0] * nbuckets
        self.count = 0
        self.sum = 0.0
        self.min = _INF
        self.max = -_INF
        self.start = start


class _Point:
    """One attribute set of a :class:`LocalHistogram`: an accumulator per reader."""

    __slots__ = ("_accs", "_bounds", "_lock", "attributes")

    def __init__(
        self, attributes: dict[str, Any], bounds: tuple[float, ...], readers: Sequence[Any]
    ) -> None:
        self.attributes = attributes
        self._bounds = bounds
        self._lock = threading.Lock()
        now = time_ns()
        self._accs: dict[Any, _Acc] = {r: _Acc(len(bounds) + 1, now) for r in readers}

    def record(self, value: float) -> None:
        """One observation."""
        i = bisect_left(self._bounds, value)  # a value on a bound is in that bound's bucket
        with self._lock:
            for acc in self._accs.values():
                acc.counts[i] += 1
                acc.count += 1
                acc.sum += value
                if value < acc.min:
                    acc.min = value
                if value > acc.max:
                    acc.max = value

    def record_many(self, values: Sequence[float]) -> None:
        """A batch of observations: sorted once, one bisect per bucket bound touched."""
        n = len(values)
        if n == 0:
            return
        if n == 1:
            self.record(values[0])
            return
        ordered = sorted(values)
        incs: list[tuple[int, int]] = []
        start = 0
        for i, bound in enumerate(self._bounds):
            end = bisect_right(ordered, bound, start)  # values <= bound: le semantics
            if end > start:
                incs.append((i, end - start))
                start = end
                if start == n:
                    break
        if start < n:
            incs.append((len(self._bounds), n - start))
        # The same sum, in the same order, as the Prometheus sink's batch: equal floats.
        total = sum(values)
        lo = ordered[0]
        hi = ordered[-1]
        with self._lock:
            for acc in self._accs.values():
                counts = acc.counts
                for j, k in incs:
                    counts[j] += k
                acc.count += n
                acc.sum += total
                if lo < acc.min:
                    acc.min = lo
                if hi > acc.max:
                    acc.max = hi

    def _add_reader(self, reader: Any, now: int) -> None:
        with self._lock:
            self._accs.setdefault(reader, _Acc(len(self._bounds) + 1, now))

    def _drop_reader(self, reader: Any) -> None:
        with self._lock:
            self._accs.pop(reader, None)

    def _collect(self, reader: Any, delta: bool, now: int) -> Any:
        from opentelemetry.sdk.metrics.export import HistogramDataPoint

        with self._lock:
            acc = self._accs.get(reader)
            if acc is None:
                return None
            if acc.count == 0:
                if delta:
                    acc.start = now
                return None
            point = HistogramDataPoint(
                attributes=dict(self.attributes),
                start_time_unix_nano=acc.start,
                time_unix_nano=now,
                count=acc.count,
                sum=acc.sum,
                bucket_counts=tuple(acc.counts),
                explicit_bounds=self._bounds,
                min=acc.min,
                max=acc.max,
                exemplars=[],
            )
            if delta:
                self._accs[reader] = _Acc(len(self._bounds) + 1, now)
            return point


class LocalHistogram:
    """A histogram instrument aggregated in process; :meth:`point` binds an attribute set
    (cache it: the batch path then costs no attribute hashing)."""

    __slots__ = ("_lock", "_points", "_producer", "bounds", "description", "name", "unit")

    def __init__(
        self,
        producer: HistogramProducer,
        name: str,
        unit: str,
        description: str,
        bounds: Sequence[float],
    ) -> None:
        self._producer = producer
        self.name = name
        self.unit = unit
        self.description = description
        self.bounds = tuple(float(b) for b in bounds)
        self._points: dict[frozenset[tuple[str, Any]], _Point] = {}
        self._lock = threading.Lock()

    def point(self, attributes: Mapping[str, Any]) -> _Point:
        """The accumulator of ``attributes`` (created on first use)."""
        key = frozenset(attributes.items())
        p = self._points.get(key)
        if p is None:
            with self._producer._lock:
                p = self._points.get(key)
                if p is None:
                    p = self._points[key] = _Point(
                        dict(attributes), self.bounds, self._producer._readers
                    )
        return p

    def record(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        """The API instrument's ``record``: one observation for ``attributes``."""
        self.point(attributes or {}).record(amount)

    def _collect(self, reader: Any, delta: bool, now: int) -> list[Any]:
        out = []
        for p in list(self._points.values()):
            dp = p._collect(reader, delta, now)
            if dp is not None:
                out.append(dp)
        return out


class _ApiPoint:
    __slots__ = ("_attributes", "_record")

    def __init__(self, instrument: Any, attributes: Mapping[str, Any]) -> None:
        self._record = instrument.record
        self._attributes = attributes

    def record(self, value: float) -> None:
        self._record(value, self._attributes)

    def record_many(self, values: Sequence[float]) -> None:
        record = self._record
        attributes = self._attributes
        for v in values:
            record(v, attributes)


class ApiHistogram:
    """The fallback: an OpenTelemetry API histogram behind the :class:`LocalHistogram`
    interface, one ``record`` per observation (every observation reaches the provider)."""

    __slots__ = ("instrument",)

    def __init__(self, instrument: Any) -> None:
        self.instrument = instrument

    def point(self, attributes: Mapping[str, Any]) -> _ApiPoint:
        return _ApiPoint(self.instrument, attributes)

    def record(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        self.instrument.record(amount, attributes)


class HistogramProducer:
    """The locally aggregated histograms of one SDK ``MeterProvider``, added to every
    collection of its readers."""

    def __init__(self, meter_provider: Any, consumer: Any, scope: Any, temporality: Any) -> None:
        self._resource = meter_provider._sdk_config.resource
        self._consumer = consumer
        self._scope = scope
        self._lock = threading.Lock()
        self._readers: tuple[Any, ...] = tuple(consumer._reader_storages)
        self._histograms: dict[str, LocalHistogram] = {}
        self._temporality = temporality  # reader -> AggregationTemporality of histograms

    def histogram(
        self, name: str, unit: str, description: str, bounds: Sequence[float]
    ) -> LocalHistogram:
        """The histogram ``name`` (the first definition wins, as the SDK keeps the first
        instrument created under a name)."""
        with self._lock:
            h = self._histograms.get(name)
            if h is None:
                h = self._histograms[name] = LocalHistogram(self, name, unit, description, bounds)
            return h

    def _sync_readers(self) -> None:
        """Follow readers added to or removed from the provider since the last look."""
        current = tuple(self._consumer._reader_storages)
        if current == self._readers:
            return
        with self._lock:
            added = [r for r in current if r not in self._readers]
            gone = [r for r in self._readers if r not in current]
            self._readers = current
            points = [p for h in self._histograms.values() for p in list(h._points.values())]
        now = time_ns()
        for p in points:
            for r in added:
                p._add_reader(r, now)
            for r in gone:
                p._drop_reader(r)

    def add_to(self, reader: Any, data: Any) -> Any:
        """``data`` (the SDK's ``MetricsData`` for ``reader``, or None) plus our metrics."""
        from opentelemetry.sdk.metrics.export import (
            AggregationTemporality,
            Histogram,
            Metric,
            MetricsData,
            ResourceMetrics,
            ScopeMetrics,
        )

        self._sync_readers()
        temporality = self._temporality(reader)
        delta = temporality is AggregationTemporality.DELTA
        now = time_ns()
        metrics = []
        for h in list(self._histograms.values()):
            points = h._collect(reader, delta, now)
            if points:
                metrics.append(
                    Metric(
                        name=h.name,
                        description=h.description,
                        unit=h.unit,
                        data=Histogram(data_points=points, aggregation_temporality=temporality),
                    )
                )
        if not metrics:
            return data
        scope = self._scope
        if data is None or not data.resource_metrics:
            ours = ScopeMetrics(scope=scope, metrics=metrics, schema_url=scope.schema_url)
            return MetricsData(
                resource_metrics=[
                    ResourceMetrics(
                        resource=self._resource,
                        scope_metrics=[ours],
                        schema_url=self._resource.schema_url,
                    )
                ]
            )
        first, *rest = data.resource_metrics
        scopes = list(first.scope_metrics)
        for i, sm in enumerate(scopes):
            if sm.scope == scope:
                scopes[i] = ScopeMetrics(
                    scope=sm.scope, metrics=[*sm.metrics, *metrics], schema_url=sm.schema_url
                )
                break
        else:
            scopes.append(ScopeMetrics(scope=scope, metrics=metrics, schema_url=scope.schema_url))
        merged = ResourceMetrics(
            resource=first.resource, scope_metrics=scopes, schema_url=first.schema_url
        )
        return MetricsData(resource_metrics=[merged, *rest])


# One producer per meter provider (several monitors on one provider share it).
_PRODUCERS: weakref.WeakKeyDictionary[Any, HistogramProducer | None] = weakref.WeakKeyDictionary()
_PRODUCERS_LOCK = threading.Lock()


def local_histograms(
    meter_provider: Any, scope: Any, histogram_class: type
) -> HistogramProducer | None:
    """The :class:`HistogramProducer` of ``meter_provider`` (installed on first use), or
    ``None`` when its histograms must go through the OpenTelemetry API (see the module
    documentation). ``scope``: the ``InstrumentationScope`` of the meter the metrics belong to;
    ``histogram_class``: the class of the SDK's histogram instruments (the key of a reader's
    preferred temporality).
    """
    try:
        from opentelemetry.sdk.metrics import MeterProvider
    except ImportError:
        return None
    if not isinstance(meter_provider, MeterProvider):
        return None
    with _PRODUCERS_LOCK:
        if meter_provider in _PRODUCERS:
            return _PRODUCERS[meter_provider]
        producer = _install(meter_provider, scope, histogram_class)
        _PRODUCERS[meter_provider] = producer
        return producer


def _install(meter_provider: Any, scope: Any, histogram_class: type) -> HistogramProducer | None:
    try:
        if meter_provider._disabled or tuple(meter_provider._sdk_config.views):
            return None
        consumer = meter_provider._measurement_consumer
        original = consumer.collect
        readers = dict(consumer._reader_storages)
        for reader in readers:
            if histogram_class not in reader._instrument_class_temporality:
                return None
            if getattr(reader, "_collect", None) != original:
                return None  # someone else's callback: leave this provider alone
    except Exception:  # an SDK without the parts used here
        return None

    def temporality(reader: Any) -> Any:
        return reader._instrument_class_temporality[histogram_class]

    producer = HistogramProducer(meter_provider, consumer, scope, temporality)

    def collect(metric_reader: Any, timeout_millis: float = 10_000) -> Any:
        data = original(metric_reader, timeout_millis=timeout_millis)
        try:
            return producer.add_to(metric_reader, data)
        except Exception:  # the SDK's own metrics still go out
            report_telemetry_error("OTelMetricsSink", "collect")
            return data

    # Readers registered from now on (add_metric_reader) take the consumer's collect, and
    # get their accumulators as they are added (they see what comes after, as in the SDK).
    consumer.collect = collect
    for reader in readers:
        reader._set_collect_callback(collect)
    for name in ("add_metric_reader", "remove_metric_reader"):
        setattr(meter_provider, name, _then_sync(getattr(meter_provider, name), producer))
    return producer


def _then_sync(method: Any, producer: HistogramProducer) -> Any:
    def call(metric_reader: Any) -> None:
        try:
            method(metric_reader)
        finally:
            producer._sync_readers()

    call.__name__ = method.__name__
    call.__doc__ = method.__doc__
    return call
