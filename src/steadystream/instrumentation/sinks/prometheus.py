"""The Prometheus sink: every steadystream metric in a prometheus_client registry.

Metrics are registered once per registry: two monitors on the same registry share the same
collectors (and a collector already registered under one of our names is reused when it is of
the right kind), so constructing monitors never raises "Duplicated timeseries".

Each (model, provider) label set gets one :class:`PrometheusStream` holding the label-bound
children, created on first use and cached; no label lookup happens per chunk. Chunk gaps and
bytes arrive in batches (see :mod:`.telemetry`) and a batch of histogram observations costs one
lock per bucket touched, not one per observation.

Label values are bounded: ``model`` is capped by the monitor (``spec.stream.max_models``, then
``other``); ``reason``, ``phase``, ``outcome``, ``error_class``, ``kind`` and ``type`` come from
closed sets in :mod:`steadystream.conventions`. ``service``, ``model`` and ``provider`` pass through
:func:`~.telemetry.clean_label` (printable, at most 128 characters), so no value can make the
exposition fail to encode or grow without bound.
"""

from __future__ import annotations

import threading
import weakref
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ... import conventions as c
from ..sinks.telemetry import (
    CapacitySource,
    CapacityTracker,
    ErrorRateWindow,
    clean_label,
    report_telemetry_error,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ..core.checkpoint import Checkpoint

__all__ = ["PrometheusSink", "PrometheusStream", "labelnames"]

# Extra label of each labelled metric (the base labels are service, model, provider).
_EXTRA_LABEL: dict[str, str] = {
    c.RETRY_TOTAL: c.LABEL_REASON,
    c.REQUESTS_TOTAL: c.LABEL_OUTCOME,
    c.ERRORS_TOTAL: c.LABEL_ERROR_CLASS,
    c.TIMEOUTS_TOTAL: c.LABEL_PHASE,
    c.REJECTED_TOTAL: c.LABEL_REASON,
    c.REASSEMBLY_ERRORS_TOTAL: c.LABEL_KIND,
    c.PHASE_DURATION: c.LABEL_PHASE,
    c.TOKENS_TOTAL: c.LABEL_TOKEN_TYPE,
}
# The closed value set of each extra label: series are created up front, at zero, so rate()
# and absent() behave from the first scrape.
_EXTRA_VALUES: dict[str, tuple[str, ...]] = {
    c.RETRY_TOTAL: c.RETRY_REASONS,
    c.REQUESTS_TOTAL: c.OUTCOMES,
    c.ERRORS_TOTAL: c.ERROR_CLASSES,
    c.TIMEOUTS_TOTAL: c.TIMEOUT_PHASES,
    c.REJECTED_TOTAL: c.REJECT_REASONS,
    c.REASSEMBLY_ERRORS_TOTAL: c.REASSEMBLY_KINDS,
    c.PHASE_DURATION: c.PHASES,
    c.TOKENS_TOTAL: c.TOKEN_TYPES,
}


# A process's capacity and its shared-store fallbacks belong to the service, not to a model
# or provider.
_SERVICE_ONLY = frozenset({c.INGRESS_MAX_CONCURRENT})
_SERVICE_AND_LIMIT = frozenset({c.SHARED_FALLBACK_TOTAL})
_SERVICE_AND_SOURCE = frozenset({c.LOOP_LAG})


def labelnames(metric: str) -> tuple[str, ...]:
    """The label names of ``metric``: service, model, provider, plus its extra label
    (``service`` only for the per-process capacity, ``service`` and ``limit`` for the
    shared-store fallbacks)."""
    if metric in _SERVICE_ONLY:
        return (c.LABEL_SERVICE,)
    if metric in _SERVICE_AND_LIMIT:
        return (c.LABEL_SERVICE, c.LABEL_LIMIT)
    if metric in _SERVICE_AND_SOURCE:
        return (c.LABEL_SERVICE, c.LABEL_SOURCE)
    extra = _EXTRA_LABEL.get(metric)
    return (*c.BASE_LABELS, extra) if extra else c.BASE_LABELS


def _is_multiprocess() -> bool:
    """True when prometheus_client stores values in mmap files (multiprocess mode)."""
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue


def _observe_many(child: Any, values: Sequence[float]) -> None:
    """``child.observe(v)`` for every value, touching each bucket's lock once.

    Relies on prometheus_client's histogram layout (per-bucket, non-cumulative values in
    ``_buckets``, bounds in ``_upper_bounds``, the sum in ``_sum``), checked once per child;
    falls back to plain ``observe`` if the layout ever differs.
    """
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for v in values:
            child.observe(v)
        return
    if len(values) == 1:
        child.observe(values[0])
        return
    # observe() puts a value in the first bucket whose bound is >= it. With the batch sorted
    # (in C), bucket i holds the values between bisect_right at bound i-1 and at bound i: one
    # bisect per bound, not one Python-level call per value (5x less for a 64-gap batch).
    ordered = sorted(values)
    n = len(ordered)
    start = 0
    for i, bound in enumerate(bounds):
        end = bisect_right(ordered, bound, start)
        if end > start:
            buckets[i].inc(end - start)
            start = end
            if start == n:
                break
    total.inc(sum(values))


class _Families:
    """The metric families of one registry (created once, shared by every monitor on it)."""

    def __init__(
        self, registry: CollectorRegistry, buckets: Mapping[str, tuple[float, ...]]
    ) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.buckets = dict(buckets)
        self.multiprocess = _is_multiprocess()
        self.lock = threading.Lock()
        self.by_name: dict[str, Any] = {}
        # Bound children per (service, model, provider), shared by every monitor on the
        # registry so that two monitors never fight over one series (e.g. its set_function).
        self.streams: dict[tuple[str, str, str], PrometheusStream] = {}
        existing = getattr(registry, "_names_to_collectors", {})
        for name in c.EMITTED_METRICS:
            doc = c.DESCRIPTIONS[name]
            labels = labelnames(name)
            family: Any
            if name in c.HISTOGRAMS:
                family = self._get_or_make(
                    registry,
                    existing,
                    name,
                    Histogram,
                    lambda n=name, d=doc, lb=labels: Histogram(
                        n, d, lb, registry=registry, buckets=self.buckets[n]
                    ),
                )
            elif name in c.COUNTERS or name in c.USAGE_COUNTERS:
                family = self._get_or_make(
                    registry,
                    existing,
                    name,
                    Counter,
                    lambda n=name, d=doc, lb=labels: Counter(
                        n.removesuffix("_total"), d, lb, registry=registry
                    ),
                )
            else:
                # In multiprocess mode, live gauges forget dead workers (mark_process_dead).
                # In-flight streams and capacity add up over live workers, so one target's
                # value is its workers' sum and sum() across targets compares like with like.
                mode = "livesum" if name in (c.IN_FLIGHT, c.INGRESS_MAX_CONCURRENT) else "liveall"
                family = self._get_or_make(
                    registry,
                    existing,
                    name,
                    Gauge,
                    lambda n=name, d=doc, lb=labels, m=mode: Gauge(
                        n, d, lb, registry=registry, multiprocess_mode=m
                    ),
                )
            self.by_name[name] = family
        self.capacity = CapacityTracker(self._capacity_changed if self.multiprocess else None)
        self._capacity_bound: set[str] = set()

    def track_capacity(self, service: str, source: CapacitySource) -> None:
        """Count ``source``'s cap in ``service``'s ``stream_ingress_max_concurrent``."""
        child = self.by_name[c.INGRESS_MAX_CONCURRENT].labels(service)
        if not self.multiprocess:
            with self.lock:
                if service not in self._capacity_bound:
                    self._capacity_bound.add(service)
                    # Read at scrape time: a guard garbage collected stops counting.
                    tracker = self.capacity
                    child.set_function(lambda: tracker.total(service))
        self.capacity.add(service, source)

    def _capacity_changed(self, service: str) -> None:
        # Multiprocess mode stores values in this process's file: write the new total.
        self.by_name[c.INGRESS_MAX_CONCURRENT].labels(service).set(self.capacity.total(service))

    @staticmethod
    def _get_or_make(
        registry: CollectorRegistry,
        existing: Mapping[str, Any],
        name: str,
        kind: type,
        make: Callable[[], Any],
    ) -> Any:
        try:
            return make()
        except ValueError as exc:
            if "Duplicated timeseries" not in str(exc):
                raise
        found = existing.get(name)
        if isinstance(found, kind) and tuple(getattr(found, "_labelnames", ())) == labelnames(name):
            return found
        raise ValueError(
            f"the registry already has a metric named {name!r} that steadystream cannot share "
            f"(it is a {type(found).__name__} with labels "
            f"{getattr(found, '_labelnames', '?')}); use another registry"
        )


# One set of families per registry; a registry that is garbage collected takes its entry along.
_FAMILIES: weakref.WeakKeyDictionary[Any, _Families] = weakref.WeakKeyDictionary()
_FAMILIES_LOCK = threading.Lock()


def _families_for(
    registry: CollectorRegistry, buckets: Mapping[str, tuple[float, ...]]
) -> _Families:
    with _FAMILIES_LOCK:
        fams = _FAMILIES.get(registry)
        if fams is None:
            fams = _Families(registry, buckets)
            _FAMILIES[registry] = fams
        else:
            missing = {
                m: sorted(set(b) - set(fams.buckets.get(m, ())))
                for m, b in buckets.items()
                if set(b) - set(fams.buckets.get(m, ()))
            }
            if missing:
                import logging

                logging.getLogger("steadystream").warning(
                    "a monitor sharing this registry was created with other histogram buckets; "
                    "bounds %s are missing (give each spec its own registry)",
                    missing,
                )
        return fams


class PrometheusStream:
    """Label-bound children for one (service, model, provider); also the StreamObserver.

    Shared by every stream with these labels: it holds no per-stream state.
    """

    def __init__(
        self,
        fams: _Families,
        base: tuple[str, str, str],
        clock: Callable[[], float],
    ) -> None:
        f = fams.by_name
        self._ttft = f[c.FIRST_TOKEN_LATENCY].labels(*base)
        self._gap = f[c.CHUNK_GAP].labels(*base)
        self._bytes = f[c.BYTES_TOTAL].labels(*base)
        self._abort_slow = f[c.ABORT_CLIENT_SLOW_TOTAL].labels(*base)
        self._resume_ok = f[c.RESUME_SUCCESS_TOTAL].labels(*base)
        self._resume_fail = f[c.RESUME_FAILURE_TOTAL].labels(*base)
        self._timeout_idle = f[c.TIMEOUT_IDLE_TOTAL].labels(*base)
        self._recovery = f[c.RECOVERY_LATENCY].labels(*base)
        self._budget = f[c.RETRY_BUDGET_EXHAUSTED_TOTAL].labels(*base)
        self._in_flight = f[c.IN_FLIGHT].labels(*base)
        self._error_rate = f[c.ERROR_RATE].labels(*base)
        self._extra: dict[str, dict[str, Any]] = {
            metric: {v: f[metric].labels(*base, v) for v in values}
            for metric, values in _EXTRA_VALUES.items()
        }
        self._family = f
        self._base = base
        self._lock = fams.lock
        self._window = ErrorRateWindow()
        self._clock = clock
        self._multiprocess = fams.multiprocess
        if not self._multiprocess:
            # Read at scrape time so the 5-minute window slides even when no stream ends.
            window = self._window
            self._error_rate.set_function(lambda: window.rate(clock()))

    def _child(self, metric: str, value: str) -> Any:
        children = self._extra[metric]
        child = children.get(value)
        if child is None:
            with self._lock:
                child = children.get(value)
                if child is None:
                    child = self._family[metric].labels(*self._base, value)
                    children[value] = child
        return child

    # StreamObserver ----------------------------------------------------------------------

    def started(self, t: float) -> None:
        self._in_flight.inc()

    def attempt_started(self, attempt: int, t: float) -> None:
        pass

    def attempt_ended(self, attempt: int, t: float, error_class: str | None) -> None:
        pass

    def first_token(self, ttft_s: float, t: float) -> None:
        self._ttft.observe(ttft_s * 1000.0)

    def first_token_timeout(self, waited_s: float, t: float) -> None:
        # The time waited, so the TTFT SLO counts the stream as slow.
        self._ttft.observe(waited_s * 1000.0)

    def content(self, nbytes: int, gaps_ms: Sequence[float]) -> None:
        if nbytes:
            self._bytes.inc(nbytes)
        if gaps_ms:
            _observe_many(self._gap, gaps_ms)

    def checkpoint(self, checkpoint: Checkpoint) -> None:
        pass

    def timeout(self, phase: str, t: float) -> None:
        self._child(c.TIMEOUTS_TOTAL, phase).inc()
        if phase == c.TIMEOUT_IDLE:
            self._timeout_idle.inc()

    def retry(self, reason: str, attempt: int, t: float) -> None:
        self._child(c.RETRY_TOTAL, reason).inc()

    def resume(self, ok: bool, t: float, checkpoint: Checkpoint | None) -> None:
        (self._resume_ok if ok else self._resume_fail).inc()

    def recovery(self, ms: float) -> None:
        self._recovery.observe(ms)

    def budget_exhausted(self, t: float) -> None:
        self._budget.inc()

    def client_slow(self, terminated: bool, dropped_bytes: int, t: float) -> None:
        self._abort_slow.inc()

    def reassembly_error(self, kind: str, detail: str) -> None:
        self._child(c.REASSEMBLY_ERRORS_TOTAL, kind).inc()

    def response_id(self, response_id: str) -> None:
        pass

    def ended(
        self,
        outcome: str,
        error_class: str | None,
        phases_ms: Mapping[str, float],
        t: float,
        info: Mapping[str, Any],
    ) -> None:
        self._in_flight.dec()
        self._child(c.REQUESTS_TOTAL, outcome).inc()
        if error_class is not None:
            self._child(c.ERRORS_TOTAL, error_class).inc()
        for phase, ms in phases_ms.items():
            self._child(c.PHASE_DURATION, phase).observe(ms)
        tokens = info.get("input_tokens")
        if tokens:
            self._child(c.TOKENS_TOTAL, c.TOKEN_INPUT).inc(tokens)
        tokens = info.get("output_tokens")
        if tokens:
            self._child(c.TOKENS_TOTAL, c.TOKEN_OUTPUT).inc(tokens)
        self._window.record(t, error_class is not None)
        if self._multiprocess:
            self._error_rate.set(self._window.rate(t))

    def rejected(self, reason: str) -> None:
        self._child(c.REJECTED_TOTAL, reason).inc()
        self._child(c.REQUESTS_TOTAL, c.OUTCOME_REJECTED).inc()
        self._child(c.ERRORS_TOTAL, c.ERROR_CLASS_REJECTED).inc()
        self._window.record(self._clock(), True)


class PrometheusSink:
    """:class:`~.telemetry.TelemetrySink` writing to a prometheus_client registry."""

    def __init__(
        self,
        registry: CollectorRegistry,
        service: str,
        buckets: Mapping[str, tuple[float, ...]],
        clock: Callable[[], float],
        capacity: CapacitySource | None = None,
    ) -> None:
        self._fams = _families_for(registry, buckets)
        self._service = service = clean_label(service)
        if capacity is not None:
            try:
                self._fams.track_capacity(service, capacity)
            except Exception:  # telemetry never breaks the monitor
                report_telemetry_error(type(self).__name__, "track_capacity")
        self._clock = clock
        # Per-monitor cache in front of the registry-wide one: a plain dict hit, no lock.
        self._streams: dict[tuple[str, str], PrometheusStream] = {}

    def _bound(self, model: str, provider: str) -> PrometheusStream:
        key = (model, provider)
        bound = self._streams.get(key)
        if bound is None:
            fams = self._fams
            base = (self._service, clean_label(model), clean_label(provider))
            with fams.lock:
                bound = fams.streams.get(base)
                if bound is None:
                    bound = PrometheusStream(fams, base, self._clock)
                    fams.streams[base] = bound
            self._streams[key] = bound
        return bound

    def bind(
        self, model: str, provider: str, *, request_model: str, attributes: Mapping[str, Any]
    ) -> PrometheusStream:
        return self._bound(model, provider)

    def rejected(self, reason: str, model: str, provider: str) -> None:
        self._bound(model, provider).rejected(reason)

    def shared_fallback(self, limit: str, n: int = 1) -> None:
        self._fams.by_name[c.SHARED_FALLBACK_TOTAL].labels(self._service, limit).inc(n)

    def loop_lag(self, source: str, ms: float) -> None:
        self._fams.by_name[c.LOOP_LAG].labels(self._service, source).observe(ms)
