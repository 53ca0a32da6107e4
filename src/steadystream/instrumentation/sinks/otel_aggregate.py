"""OpenTelemetry histograms and counters aggregated here, in the sink's batched flush, and
handed to the SDK once per collection: no SDK call per observation.

Why: the OpenTelemetry SDK (1.45) has no batch ``record``, no ``MetricProducer`` and no
asynchronous histogram, and one ``Histogram.record`` or ``Counter.add`` costs about 5 us
(attribute hashing, the exemplar filter, one storage per reader). The core hands chunk gaps and
bytes to the sinks in batches of up to 1,024 chunks; recording the gaps one by one made the
OpenTelemetry path six times dearer than the Prometheus one, and the one ``add`` of bytes per
batch was still most of what remained.

How: with an SDK ``MeterProvider`` without views, every ``stream_*`` histogram and counter and
the two GenAI client histograms of :class:`~.otel.OTelMetricsSink` are a
:class:`LocalHistogram` or :class:`LocalCounter`, and so is ``stream_in_flight``, an up-down
counter (its +1 and -1 were two SDK calls per stream, about 17 us each, most of what the
metrics cost a short stream). A batch of gaps is sorted once and bucketed with one bisect per
bucket bound (the SDK's explicit-bucket histogram: the same bounds, an upper bound inclusive),
under one lock per attribute set. The seam is the SDK's collection
path, the one function every reader goes through: ``MetricReader.collect`` calls the
provider's collect callback (``SynchronousMeasurementConsumer.collect``) and hands the result
to the reader's ``_receive_metrics``. :func:`local_aggregation` wraps that callback once per
provider, so the collection of any reader (``PeriodicExportingMetricReader`` with OTLP, the
Prometheus reader, ``InMemoryMetricReader``) returns the SDK's metrics plus ours (``Histogram``
and ``Sum`` metrics of the same instrumentation scope, with the instruments' names, units,
descriptions and bounds; monotonic but for ``stream_in_flight``). The gauges stay SDK
instruments (observable: read once per collection).

Temporality: each reader has its own accumulator per attribute set, updated by every flush
(one reader is the usual case). A cumulative reader sees the totals since the first
observation; a delta reader sees what came since its previous collection (nothing when nothing
came), and its accumulator starts over; a histogram's min and max follow the same windows.
These are the SDK's own rules for synchronous instruments, read from each reader's preferred
temporality. A reader added later (``add_metric_reader``) starts empty, as in the SDK; a removed
one is forgotten.

Falls back, losing nothing, to one ``record`` / ``add`` per observation through the
OpenTelemetry API (:class:`ApiHistogram`, :class:`ApiCounter`) when the provider is not the
SDK's (the API's no-op or proxy provider, a vendor's own), when it has views (a view may
rename, re-bucket or drop an instrument, which only the SDK's pipeline applies), when the SDK is
disabled, or when this SDK version lacks the parts used here. Exemplars are not attached to
the locally aggregated points.
"""

from __future__ import annotations

import threading
import weakref
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from time import time_ns
from typing import Any

from ..sinks.telemetry import report_telemetry_error

__all__ = [
    "ApiCounter",
    "ApiHistogram",
    "LocalCounter",
    "LocalHistogram",
    "LocalProducer",
    "local_aggregation",
]

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

    __slots__ = ("_points", "_producer", "bounds", "description", "kind", "name", "unit")

    def __init__(
        self,
        producer: LocalProducer,
        name: str,
        unit: str,
        description: str,
        bounds: Sequence[float],
        kind: type,
    ) -> None:
        self._producer = producer
        self.name = name
        self.unit = unit
        self.description = description
        self.bounds = tuple(float(b) for b in bounds)
        #: The SDK's instrument class (the key of a reader's preferred temporality).
        self.kind = kind
        self._points: dict[frozenset[tuple[str, Any]], _Point] = {}

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

    def _data(self, points: list[Any], temporality: Any) -> Any:
        from opentelemetry.sdk.metrics.export import Histogram

        return Histogram(data_points=points, aggregation_temporality=temporality)


class _SumAcc:
    __slots__ = ("start", "value")

    def __init__(self, start: int) -> None:
        self.value = 0
        self.start = start


class _SumPoint:
    """One attribute set of a :class:`LocalCounter`: a running total per reader."""

    __slots__ = ("_accs", "_lock", "_monotonic", "_seen", "attributes")

    def __init__(
        self, attributes: dict[str, Any], readers: Sequence[Any], monotonic: bool = True
    ) -> None:
        self.attributes = attributes
        self._monotonic = monotonic
        self._lock = threading.Lock()
        now = time_ns()
        self._accs: dict[Any, _SumAcc] = {r: _SumAcc(now) for r in readers}
        # Per reader: added to since its last collection (a delta reader reports nothing
        # otherwise, as the SDK does; an add of 0 still counts as a measurement).
        self._seen: dict[Any, bool] = dict.fromkeys(readers, False)

    def add(self, amount: float) -> None:
        """Add ``amount`` (not negative to a monotonic counter)."""
        if amount < 0 and self._monotonic:
            return  # what the SDK does with a negative add to a counter (it logs it)
        with self._lock:
            for r, acc in self._accs.items():
                acc.value += amount
                self._seen[r] = True

    def _add_reader(self, reader: Any, now: int) -> None:
        with self._lock:
            if reader not in self._accs:
                self._accs[reader] = _SumAcc(now)
                self._seen[reader] = False

    def _drop_reader(self, reader: Any) -> None:
        with self._lock:
            self._accs.pop(reader, None)
            self._seen.pop(reader, None)

    def _collect(self, reader: Any, delta: bool, now: int) -> Any:
        from opentelemetry.sdk.metrics.export import NumberDataPoint

        with self._lock:
            acc = self._accs.get(reader)
            if acc is None or not self._seen.get(reader):
                if acc is not None and delta:
                    acc.start = now
                return None
            point = NumberDataPoint(
                attributes=dict(self.attributes),
                start_time_unix_nano=acc.start,
                time_unix_nano=now,
                value=acc.value,
                exemplars=[],
            )
            if delta:
                self._accs[reader] = _SumAcc(now)
                self._seen[reader] = False
            return point


class LocalCounter:
    """A counter aggregated in process (``add`` as the API instrument's): monotonic, or an
    up-down counter (``monotonic=False``, a sum that may go down)."""

    __slots__ = ("_points", "_producer", "description", "kind", "monotonic", "name", "unit")

    def __init__(
        self,
        producer: LocalProducer,
        name: str,
        unit: str,
        description: str,
        kind: type,
        monotonic: bool = True,
    ) -> None:
        self._producer = producer
        self.name = name
        self.unit = unit
        self.description = description
        self.kind = kind
        self.monotonic = monotonic
        self._points: dict[frozenset[tuple[str, Any]], _SumPoint] = {}

    def point(self, attributes: Mapping[str, Any]) -> _SumPoint:
        """The running total of ``attributes`` (created on first use)."""
        key = frozenset(attributes.items())
        p = self._points.get(key)
        if p is None:
            with self._producer._lock:
                p = self._points.get(key)
                if p is None:
                    p = self._points[key] = _SumPoint(
                        dict(attributes), self._producer._readers, self.monotonic
                    )
        return p

    def add(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        """The API instrument's ``add``."""
        self.point(attributes or {}).add(amount)

    _collect = LocalHistogram._collect

    def _data(self, points: list[Any], temporality: Any) -> Any:
        from opentelemetry.sdk.metrics.export import Sum

        return Sum(
            data_points=points,
            aggregation_temporality=temporality,
            is_monotonic=self.monotonic,
        )


class _ApiSumPoint:
    __slots__ = ("_add", "_attributes")

    def __init__(self, instrument: Any, attributes: Mapping[str, Any]) -> None:
        self._add = instrument.add
        self._attributes = attributes

    def add(self, amount: float) -> None:
        self._add(amount, self._attributes)


class ApiCounter:
    """The fallback for counters: the API instrument, with :meth:`point` as on
    :class:`LocalCounter`."""

    __slots__ = ("instrument",)

    def __init__(self, instrument: Any) -> None:
        self.instrument = instrument

    def point(self, attributes: Mapping[str, Any]) -> _ApiSumPoint:
        return _ApiSumPoint(self.instrument, attributes)

    def add(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        self.instrument.add(amount, attributes)


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


class LocalProducer:
    """The locally aggregated instruments of one SDK ``MeterProvider``, added to every
    collection of its readers."""

    def __init__(self, meter_provider: Any, consumer: Any, scope: Any) -> None:
        self._resource = meter_provider._sdk_config.resource
        self._consumer = consumer
        self._scope = scope
        self._lock = threading.Lock()
        self._readers: tuple[Any, ...] = tuple(consumer._reader_storages)
        self._instruments: dict[str, LocalHistogram | LocalCounter] = {}

    def histogram(
        self, name: str, unit: str, description: str, bounds: Sequence[float], kind: type
    ) -> LocalHistogram:
        """The histogram ``name`` (the first definition wins, as the SDK keeps the first
        instrument created under a name). ``kind``: the SDK's histogram class."""
        with self._lock:
            h = self._instruments.get(name)
            if h is None:
                h = self._instruments[name] = LocalHistogram(
                    self, name, unit, description, bounds, kind
                )
        if not isinstance(h, LocalHistogram):
            raise TypeError(f"{name} is already a counter")
        return h

    def counter(
        self, name: str, unit: str, description: str, kind: type, *, monotonic: bool = True
    ) -> LocalCounter:
        """The counter ``name`` (the first definition wins): monotonic, or an up-down counter.
        ``kind``: the SDK's counter or up-down counter class."""
        with self._lock:
            h = self._instruments.get(name)
            if h is None:
                h = self._instruments[name] = LocalCounter(
                    self, name, unit, description, kind, monotonic
                )
        if not isinstance(h, LocalCounter):
            raise TypeError(f"{name} is already a histogram")
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
            points: list[_Point | _SumPoint] = [
                p for h in self._instruments.values() for p in list(h._points.values())
            ]
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
            Metric,
            MetricsData,
            ResourceMetrics,
            ScopeMetrics,
        )

        self._sync_readers()
        preferred = reader._instrument_class_temporality
        now = time_ns()
        metrics = []
        for h in list(self._instruments.values()):
            temporality = preferred.get(h.kind, AggregationTemporality.CUMULATIVE)
            points = h._collect(reader, temporality is AggregationTemporality.DELTA, now)
            if points:
                metrics.append(
                    Metric(
                        name=h.name,
                        description=h.description,
                        unit=h.unit,
                        data=h._data(points, temporality),
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
_PRODUCERS: weakref.WeakKeyDictionary[Any, LocalProducer | None] = weakref.WeakKeyDictionary()
_PRODUCERS_LOCK = threading.Lock()


def local_aggregation(meter_provider: Any, scope: Any) -> LocalProducer | None:
    """The :class:`LocalProducer` of ``meter_provider`` (installed on first use), or ``None``
    when its instruments must go through the OpenTelemetry API (see the module
    documentation). ``scope``: the ``InstrumentationScope`` of the meter the metrics belong
    to."""
    try:
        from opentelemetry.sdk.metrics import MeterProvider
    except ImportError:
        return None
    if not isinstance(meter_provider, MeterProvider):
        return None
    with _PRODUCERS_LOCK:
        if meter_provider in _PRODUCERS:
            return _PRODUCERS[meter_provider]
        producer = _install(meter_provider, scope)
        _PRODUCERS[meter_provider] = producer
        return producer


def _install(meter_provider: Any, scope: Any) -> LocalProducer | None:
    try:
        if meter_provider._disabled or tuple(meter_provider._sdk_config.views):
            return None
        consumer = meter_provider._measurement_consumer
        original = consumer.collect
        readers = dict(consumer._reader_storages)
        for reader in readers:
            if not isinstance(reader._instrument_class_temporality, dict):
                return None
            if getattr(reader, "_collect", None) != original:
                return None  # someone else's callback: leave this provider alone
        producer = LocalProducer(meter_provider, consumer, scope)
    except Exception:  # an SDK without the parts used here
        return None

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


def _then_sync(method: Any, producer: LocalProducer) -> Any:
    def call(metric_reader: Any) -> None:
        try:
            method(metric_reader)
        finally:
            producer._sync_readers()

    call.__name__ = method.__name__
    call.__doc__ = method.__doc__
    return call
