"""OpenTelemetry sinks: metric instruments with the Prometheus names and units, the GenAI
client metrics, and spans.

Everything GenAI follows the OpenTelemetry GenAI semantic conventions of release
:data:`~steadystream.conventions.SEMCONV_VERSION` (1.41.1).

Spans: one span per logical stream, named ``{gen_ai.operation.name} {gen_ai.request.model}``
(``chat gpt-4.1``; the operation alone without a model), kind CLIENT (INTERNAL under another
instrumentation's GenAI CLIENT span, which then stands for the call); it covers every attempt
(one request of the caller is one GenAI span). Each attempt is an INTERNAL child named
``steadystream.attempt`` with no ``gen_ai.*`` attributes (a retry is not a second GenAI
operation). ``steadystream.span`` (``stream`` / ``attempt``) tells them apart. Events for the
first token, checkpoints, timeouts, retries, resumes and backpressure. Attributes:
``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.request.stream``, ``server.address`` / ``server.port`` (when known), then as the
stream goes: ``gen_ai.response.id``, ``gen_ai.response.time_to_first_chunk`` (seconds), and at
the end ``gen_ai.response.model``, ``gen_ai.response.finish_reasons``,
``gen_ai.usage.input_tokens`` / ``output_tokens`` (each when the upstream reported it) and, on
failure, ``error.type`` (the error class). Also ``steadystream.*`` (service, outcome, error
class, bytes, chunks, attempts, ``steadystream.phase.<phase>`` in ms). Content, prompts and keys
are never recorded. Every text from outside (model, provider, service, response id, response
model, finish reasons, server address, extra attributes) passes through
:func:`~.telemetry.clean_label`, like the Prometheus labels.

Metrics: the ``stream_*`` instruments (Prometheus names and units), and once per stream at its
end ``gen_ai.client.operation.duration`` (seconds, ``error.type`` on failure) and
``gen_ai.client.token.usage`` (``{token}``, one record per ``gen_ai.token.type`` the upstream
reported), with the conventions' bucket advice. Their model and provider attributes are the
capped label values; response models are capped the same way (32 distinct names, then
``other``). Histograms are bucketed in process and handed to an SDK ``MeterProvider`` once
per collection, not recorded one observation at a time, and so are the counters
(:mod:`.otel_aggregate`); ``stream_bytes_total`` is added to once per batch of content.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import Observation
from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span

from ... import conventions as c
from ...version import __version__
from ..sinks.otel_aggregate import (
    ApiCounter,
    ApiHistogram,
    LocalHistogram,
    local_aggregation,
)
from ..sinks.telemetry import (
    _METHODS,
    CapacitySource,
    CapacityTracker,
    ErrorRateWindow,
    LabelCap,
    clean_label,
    report_telemetry_error,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from ..core.checkpoint import Checkpoint

__all__ = ["OTelMetricsSink", "TracingSink"]


_TOKEN_TYPES = (("input_tokens", c.TOKEN_INPUT), ("output_tokens", c.TOKEN_OUTPUT))


class _OTelStream:
    """Attribute sets for one label set; the StreamObserver for OpenTelemetry metrics."""

    def __init__(self, sink: OTelMetricsSink, base: dict[str, str]) -> None:
        self._s = sink
        self._base = base
        self._extra: dict[tuple[str, str], dict[str, str]] = {}
        self.window = ErrorRateWindow()
        # The per-stream histograms bound to this label set once: a flush costs no lookup.
        self._gaps = sink.i[c.CHUNK_GAP].point(base)
        self._ttft = sink.i[c.FIRST_TOKEN_LATENCY].point(base)
        self._bytes = sink.i[c.BYTES_TOTAL].point(base)
        self._in_flight = sink.i[c.IN_FLIGHT].point(base)

    def _attrs(self, key: str, value: str) -> dict[str, str]:
        attrs = self._extra.get((key, value))
        if attrs is None:
            attrs = self._extra[(key, value)] = {**self._base, key: value}
        return attrs

    def started(self, t: float) -> None:
        self._in_flight.add(1)

    def attempt_started(self, attempt: int, t: float) -> None:
        pass

    def attempt_ended(self, attempt: int, t: float, error_class: str | None) -> None:
        pass

    def first_token(self, ttft_s: float, t: float) -> None:
        self._ttft.record(ttft_s * 1000.0)

    def first_token_timeout(self, waited_s: float, t: float) -> None:
        self._ttft.record(waited_s * 1000.0)

    def content(self, nbytes: int, gaps_ms: Sequence[float]) -> None:
        # Once per batch (up to 1,024 chunks): one counter add, one bucketed histogram update.
        if nbytes:
            self._bytes.add(nbytes)
        if gaps_ms:
            self._gaps.record_many(gaps_ms)

    def checkpoint(self, checkpoint: Checkpoint) -> None:
        pass

    def timeout(self, phase: str, t: float) -> None:
        self._s.i[c.TIMEOUTS_TOTAL].add(1, self._attrs(c.LABEL_PHASE, phase))
        if phase == c.TIMEOUT_IDLE:
            self._s.i[c.TIMEOUT_IDLE_TOTAL].add(1, self._base)

    def retry(self, reason: str, attempt: int, t: float) -> None:
        self._s.i[c.RETRY_TOTAL].add(1, self._attrs(c.LABEL_REASON, reason))

    def resume(self, ok: bool, t: float, checkpoint: Checkpoint | None) -> None:
        name = c.RESUME_SUCCESS_TOTAL if ok else c.RESUME_FAILURE_TOTAL
        self._s.i[name].add(1, self._base)

    def recovery(self, ms: float) -> None:
        self._s.i[c.RECOVERY_LATENCY].record(ms, self._base)

    def budget_exhausted(self, t: float) -> None:
        self._s.i[c.RETRY_BUDGET_EXHAUSTED_TOTAL].add(1, self._base)

    def client_slow(self, terminated: bool, dropped_bytes: int, t: float) -> None:
        self._s.i[c.ABORT_CLIENT_SLOW_TOTAL].add(1, self._base)

    def reassembly_error(self, kind: str, detail: str) -> None:
        self._s.i[c.REASSEMBLY_ERRORS_TOTAL].add(1, self._attrs(c.LABEL_KIND, kind))

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
        i = self._s.i
        self._in_flight.add(-1)
        i[c.REQUESTS_TOTAL].add(1, self._attrs(c.LABEL_OUTCOME, outcome))
        if error_class is not None:
            i[c.ERRORS_TOTAL].add(1, self._attrs(c.LABEL_ERROR_CLASS, error_class))
        for phase, ms in phases_ms.items():
            i[c.PHASE_DURATION].record(ms, self._attrs(c.LABEL_PHASE, phase))
        for key, token_type in _TOKEN_TYPES:
            tokens = info.get(key)
            if tokens:
                i[c.TOKENS_TOTAL].add(tokens, self._attrs(c.LABEL_TOKEN_TYPE, token_type))
        self.window.record(t, error_class is not None)

    def rejected(self, reason: str, t: float) -> None:
        i = self._s.i
        i[c.REJECTED_TOTAL].add(1, self._attrs(c.LABEL_REASON, reason))
        i[c.REQUESTS_TOTAL].add(1, self._attrs(c.LABEL_OUTCOME, c.OUTCOME_REJECTED))
        i[c.ERRORS_TOTAL].add(1, self._attrs(c.LABEL_ERROR_CLASS, c.ERROR_CLASS_REJECTED))
        self.window.record(t, True)


# One capacity tracker per meter provider: the SDK keeps the first observable gauge created
# under a name (later ones on the same meter come back as that one, without their callbacks),
# so the first sink's callback must report every monitor's capacity.
_CAPACITY: weakref.WeakKeyDictionary[Any, CapacityTracker] = weakref.WeakKeyDictionary()
_CAPACITY_LOCK = threading.Lock()


def _capacity_for(meter_provider: Any) -> CapacityTracker:
    with _CAPACITY_LOCK:
        try:
            tracker = _CAPACITY.get(meter_provider)
            if tracker is None:
                tracker = _CAPACITY[meter_provider] = CapacityTracker()
        except TypeError:  # a provider that cannot be weakly referenced
            tracker = CapacityTracker()
        return tracker


class OTelMetricsSink:
    """:class:`~.telemetry.TelemetrySink` writing OpenTelemetry instruments named exactly like
    the Prometheus metrics (counters keep their ``_total`` name), with the conventions' units
    and the same histogram bucket bounds (as the explicit-bucket advisory)."""

    def __init__(
        self,
        meter_provider: MeterProvider,
        service: str,
        buckets: Mapping[str, tuple[float, ...]],
        clock: Callable[[], float],
        capacity: CapacitySource | None = None,
    ) -> None:
        meter = meter_provider.get_meter(c.METER_NAME, __version__, schema_url=c.SEMCONV_SCHEMA_URL)
        self._service = service = clean_label(service)
        self._clock = clock
        self._streams: dict[tuple[str, str], _OTelStream] = {}
        self.i: dict[str, Any] = {}
        # Histograms: name -> (unit, description, bounds). With an SDK meter provider they are
        # bucketed here and added to each collection (see .otel_aggregate); otherwise every
        # observation is recorded through the API instrument.
        histograms: dict[str, tuple[str, str, tuple[float, ...]]] = {
            name: (c.UNITS.get(name, "ms"), c.DESCRIPTIONS[name], tuple(buckets[name]))
            for name in c.HISTOGRAMS
        }
        for name in (c.GENAI_TOKEN_USAGE, c.GENAI_OPERATION_DURATION):
            histograms[name] = (
                c.GENAI_UNITS[name],
                c.GENAI_DESCRIPTIONS[name],
                tuple(c.GENAI_BUCKETS[name]),
            )
        api = {
            name: meter.create_histogram(
                name,
                unit=unit,
                description=description,
                explicit_bucket_boundaries_advisory=list(bounds),
            )
            for name, (unit, description, bounds) in histograms.items()
        }
        scope = getattr(meter, "_instrumentation_scope", None)
        producer = local_aggregation(meter_provider, scope) if scope is not None else None
        #: True when histograms and counters are aggregated in process (an SDK meter
        #: provider without views).
        self.aggregates_locally = producer is not None
        hist: dict[str, LocalHistogram | ApiHistogram] = {
            name: (
                producer.histogram(name, *histograms[name], type(instrument))
                if producer is not None
                else ApiHistogram(instrument)
            )
            for name, instrument in api.items()
        }
        for name in c.HISTOGRAMS:
            self.i[name] = hist[name]
        # The counters, and stream_in_flight, the one up-down counter.
        for name in (*c.COUNTERS, *c.USAGE_COUNTERS, c.IN_FLIGHT):
            unit, description = c.UNITS.get(name, "1"), c.DESCRIPTIONS[name]
            monotonic = name != c.IN_FLIGHT
            create = meter.create_counter if monotonic else meter.create_up_down_counter
            counter = create(name, unit=unit, description=description)
            self.i[name] = (
                producer.counter(name, unit, description, type(counter), monotonic=monotonic)
                if producer is not None
                else ApiCounter(counter)
            )
        #: The GenAI client histograms (semantic conventions names, units and buckets).
        self.genai: dict[str, Any] = {
            name: hist[name] for name in (c.GENAI_TOKEN_USAGE, c.GENAI_OPERATION_DURATION)
        }
        self._response_models = LabelCap(c.DEFAULT_MAX_MODELS)
        self.i[c.ERROR_RATE] = meter.create_observable_gauge(
            c.ERROR_RATE,
            callbacks=[self._observe_error_rate],
            unit=c.UNITS[c.ERROR_RATE],
            description=c.DESCRIPTIONS[c.ERROR_RATE],
        )
        self._capacity = _capacity_for(meter_provider)
        if capacity is not None:
            try:
                self._capacity.add(service, capacity)
            except Exception:  # telemetry never breaks the monitor
                report_telemetry_error(type(self).__name__, "track_capacity")
        self.i[c.INGRESS_MAX_CONCURRENT] = meter.create_observable_gauge(
            c.INGRESS_MAX_CONCURRENT,
            callbacks=[self._observe_capacity],
            unit=c.UNITS[c.INGRESS_MAX_CONCURRENT],
            description=c.DESCRIPTIONS[c.INGRESS_MAX_CONCURRENT],
        )

    def _observe_error_rate(self, options: CallbackOptions) -> Iterable[Observation]:
        now = self._clock()
        return [Observation(s.window.rate(now), s._base) for s in list(self._streams.values())]

    def _observe_capacity(self, options: CallbackOptions) -> Iterable[Observation]:
        tracker = self._capacity
        return [
            Observation(tracker.total(service), {c.LABEL_SERVICE: service})
            for service in tracker.services()
        ]

    def _bound(self, model: str, provider: str) -> _OTelStream:
        key = (model, provider)
        s = self._streams.get(key)
        if s is None:
            base = {
                c.LABEL_SERVICE: self._service,
                c.LABEL_MODEL: clean_label(model),
                c.LABEL_PROVIDER: clean_label(provider),
            }
            s = self._streams.setdefault(key, _OTelStream(self, base))
        return s

    def bind(
        self, model: str, provider: str, *, request_model: str, attributes: Mapping[str, Any]
    ) -> _GenAIStream:
        genai: dict[str, Any] = {
            c.ATTR_OPERATION: c.OPERATION_CHAT,
            c.ATTR_PROVIDER: clean_label(provider),
        }
        if request_model != c.UNKNOWN:
            genai[c.ATTR_REQUEST_MODEL] = clean_label(model)  # the capped label, not the name
        for key in (c.ATTR_OPERATION, c.ATTR_SERVER_ADDRESS, c.ATTR_SERVER_PORT):
            val = attributes.get(key)
            if val is not None:
                genai[key] = clean_label(val) if isinstance(val, str) else val
        return _GenAIStream(self._bound(model, provider), self, genai)

    def record_genai(
        self, genai: Mapping[str, Any], error_class: str | None, info: Mapping[str, Any]
    ) -> None:
        """The GenAI client metrics of one stream that ended (``genai``: its attributes)."""
        attrs = dict(genai)
        model = info.get("response_model")
        if model:
            attrs[c.ATTR_RESPONSE_MODEL] = self._response_models(model)
        duration_attrs = attrs
        if error_class is not None:
            duration_attrs = {**attrs, c.ATTR_ERROR_TYPE: c.error_type(error_class)}
        duration = info.get("duration")
        if duration is not None:
            self.genai[c.GENAI_OPERATION_DURATION].record(duration, duration_attrs)
        usage = self.genai[c.GENAI_TOKEN_USAGE]
        for key, token_type in _TOKEN_TYPES:
            tokens = info.get(key)
            if tokens is not None:
                usage.record(tokens, {**attrs, c.ATTR_TOKEN_TYPE: token_type})

    def rejected(self, reason: str, model: str, provider: str) -> None:
        self._bound(model, provider).rejected(reason, self._clock())

    def shared_fallback(self, limit: str, n: int = 1) -> None:
        self.i[c.SHARED_FALLBACK_TOTAL].add(
            n, {c.LABEL_SERVICE: self._service, c.LABEL_LIMIT: limit}
        )

    def loop_lag(self, source: str, ms: float) -> None:
        self.i[c.LOOP_LAG].record(ms, {c.LABEL_SERVICE: self._service, c.LABEL_SOURCE: source})


def _forward(name: str) -> Any:
    def call(self: _GenAIStream, *args: Any) -> None:
        getattr(self._s, name)(*args)

    call.__name__ = name
    return call


class _GenAIStream:
    """One stream's OpenTelemetry metrics observer: the shared instruments of its label set,
    plus the stream's own GenAI attributes (operation, server) for the GenAI client metrics
    recorded when it ends."""

    __slots__ = ("_genai", "_s", "_sink")

    def __init__(self, shared: _OTelStream, sink: OTelMetricsSink, genai: dict[str, Any]) -> None:
        self._s = shared
        self._sink = sink
        self._genai = genai

    for _name in _METHODS:
        if _name != "ended":
            locals()[_name] = _forward(_name)
    del _name

    def ended(
        self,
        outcome: str,
        error_class: str | None,
        phases_ms: Mapping[str, float],
        t: float,
        info: Mapping[str, Any],
    ) -> None:
        try:
            self._s.ended(outcome, error_class, phases_ms, t, info)
        finally:
            self._sink.record_genai(self._genai, error_class, info)


_GENAI_PREFIX = "gen_ai."


def _is_genai_client(span: Any) -> bool:
    """A recording CLIENT span of a GenAI call: it has ``gen_ai.*`` attributes."""
    if getattr(span, "kind", None) is not SpanKind.CLIENT or not span.is_recording():
        return False
    attributes = getattr(span, "attributes", None) or {}
    return any(key.startswith(_GENAI_PREFIX) for key in attributes)


_USAGE_ATTRS = (("input_tokens", c.ATTR_INPUT_TOKENS), ("output_tokens", c.ATTR_OUTPUT_TOKENS))


def _set_error(span: Span, error_class: str) -> None:
    """Mark ``span`` failed with ``error_class`` (its attributes and an ERROR status)."""
    span.set_attributes(
        {c.ATTR_ERROR_CLASS: error_class, c.ATTR_ERROR_TYPE: c.error_type(error_class)}
    )
    span.set_status(Status(StatusCode.ERROR, error_class))


class _SpanStream:
    """Spans of one logical stream (a StreamObserver)."""

    __slots__ = ("_attempt", "_attrs", "_ctx", "_ended", "_name", "_span", "_tracer")

    def __init__(self, tracer: Any, ctx: Any, attrs: dict[str, Any], name: str) -> None:
        self._tracer = tracer
        self._ctx = ctx
        self._attrs = attrs
        self._name = name
        self._span: Span | None = None
        self._attempt: Span | None = None
        self._ended = False

    def started(self, t: float) -> None:
        # Under another instrumentation's GenAI client span (openai-v2, OpenLLMetry) that
        # span is the call: ours adds the stream's view of it as an INTERNAL child, so one
        # call is one CLIENT span.
        parent = get_current_span(self._ctx)
        kind = SpanKind.INTERNAL if _is_genai_client(parent) else SpanKind.CLIENT
        self._span = self._tracer.start_span(
            self._name, context=self._ctx, kind=kind, attributes=self._attrs
        )

    def attempt_started(self, attempt: int, t: float) -> None:
        if self._span is None:
            return
        self._attempt = self._tracer.start_span(
            c.SPAN_ATTEMPT,
            context=trace.set_span_in_context(self._span),
            attributes={c.ATTR_SPAN_ROLE: c.SPAN_ROLE_ATTEMPT, c.ATTR_ATTEMPT: attempt},
        )

    def attempt_ended(self, attempt: int, t: float, error_class: str | None) -> None:
        span, self._attempt = self._attempt, None
        if span is None:
            return
        if error_class is not None:
            _set_error(span, error_class)
        span.end()

    def _event(self, name: str, attrs: dict[str, Any]) -> None:
        if self._span is not None:
            self._span.add_event(name, attrs)

    def first_token_timeout(self, waited_s: float, t: float) -> None:
        pass  # the timeout event says it; the span has no time to first chunk

    def first_token(self, ttft_s: float, t: float) -> None:
        if self._span is not None:
            self._span.set_attribute(c.ATTR_TIME_TO_FIRST_CHUNK, ttft_s)
            self._span.add_event(c.EVENT_FIRST_TOKEN, {c.ATTR_TIME_TO_FIRST_CHUNK: ttft_s})

    def content(self, nbytes: int, gaps_ms: Sequence[float]) -> None:
        pass

    def checkpoint(self, checkpoint: Checkpoint) -> None:
        # The core reports checkpoints where they matter (a timeout, a failed attempt, the
        # end), not every N chunks: that would overflow the span's event limit on long streams.
        attrs: dict[str, Any] = {"offset": checkpoint.offset, "chunks": checkpoint.chunks}
        if checkpoint.sequence_number is not None:
            attrs["sequence_number"] = checkpoint.sequence_number
        self._event(c.EVENT_CHECKPOINT, attrs)

    def timeout(self, phase: str, t: float) -> None:
        self._event(c.EVENT_TIMEOUT, {c.LABEL_PHASE: phase})

    def retry(self, reason: str, attempt: int, t: float) -> None:
        self._event(c.EVENT_RETRY, {c.LABEL_REASON: reason, c.ATTR_ATTEMPT: attempt})

    def resume(self, ok: bool, t: float, checkpoint: Checkpoint | None) -> None:
        attrs: dict[str, Any] = {"ok": ok}
        if checkpoint is not None:
            attrs["offset"] = checkpoint.offset
        self._event(c.EVENT_RESUME, attrs)

    def recovery(self, ms: float) -> None:
        pass

    def budget_exhausted(self, t: float) -> None:
        self._event(c.EVENT_RETRY, {"budget_exhausted": True})

    def client_slow(self, terminated: bool, dropped_bytes: int, t: float) -> None:
        self._event(
            c.EVENT_BACKPRESSURE, {"terminated": terminated, "dropped_bytes": dropped_bytes}
        )

    def reassembly_error(self, kind: str, detail: str) -> None:
        self._event("reassembly_error", {c.LABEL_KIND: kind})

    def response_id(self, response_id: str) -> None:
        if self._span is not None:
            self._span.set_attribute(c.ATTR_RESPONSE_ID, clean_label(response_id))

    def ended(
        self,
        outcome: str,
        error_class: str | None,
        phases_ms: Mapping[str, float],
        t: float,
        info: Mapping[str, Any],
    ) -> None:
        if self._ended or self._span is None:
            return
        self._ended = True
        span = self._span
        if self._attempt is not None:  # defensive: the core ends attempts first
            self._attempt.end()
            self._attempt = None
        # One set_attributes call: the SDK takes its lock (and builds a dict) per call.
        attrs: dict[str, Any] = {
            c.ATTR_OUTCOME: outcome,
            c.ATTR_BYTES: int(info.get("bytes", 0)),
            c.ATTR_CHUNKS: int(info.get("chunks", 0)),
            c.ATTR_ATTEMPT: int(info.get("attempts", 0)),
        }
        for phase, ms in phases_ms.items():
            attrs[c.ATTR_PHASE_PREFIX + phase] = ms
        model = info.get("response_model")
        if model:
            attrs[c.ATTR_RESPONSE_MODEL] = clean_label(model)
        reasons = info.get("finish_reasons")
        if reasons:
            attrs[c.ATTR_FINISH_REASONS] = [clean_label(r) for r in reasons]
        for key, attr in _USAGE_ATTRS:
            tokens = info.get(key)
            if tokens is not None:
                attrs[attr] = int(tokens)
        span.set_attributes(attrs)
        if error_class is not None:
            _set_error(span, error_class)
        span.end()


class TracingSink:
    """:class:`~.telemetry.TelemetrySink` producing spans through ``tracer_provider``."""

    def __init__(self, tracer_provider: TracerProvider, service: str) -> None:
        self._tracer = tracer_provider.get_tracer(
            c.TRACER_NAME, __version__, schema_url=c.SEMCONV_SCHEMA_URL
        )
        self._service = clean_label(service)

    def bind(
        self, model: str, provider: str, *, request_model: str, attributes: Mapping[str, Any]
    ) -> _SpanStream:
        attrs: dict[str, Any] = {
            c.ATTR_OPERATION: c.OPERATION_CHAT,
            c.ATTR_PROVIDER: clean_label(provider),
        }
        if request_model != c.UNKNOWN:  # "if available", say the conventions
            attrs[c.ATTR_REQUEST_MODEL] = clean_label(request_model)
        attrs[c.ATTR_REQUEST_STREAM] = True
        attrs[c.ATTR_SERVICE] = self._service
        attrs[c.ATTR_SPAN_ROLE] = c.SPAN_ROLE_STREAM
        for key, val in attributes.items():
            attrs[key] = clean_label(val) if isinstance(val, str) else val
        name = c.span_name(str(attrs[c.ATTR_OPERATION]), attrs.get(c.ATTR_REQUEST_MODEL))
        # The stream span is a child of whatever span is current where the stream is wrapped.
        return _SpanStream(self._tracer, otel_context.get_current(), attrs, name)

    def rejected(self, reason: str, model: str, provider: str) -> None:
        pass

    def shared_fallback(self, limit: str, n: int = 1) -> None:
        pass

    def loop_lag(self, source: str, ms: float) -> None:
        pass
