"""``StreamMonitor``: one per service and registry; instruments streams according to the spec.

::

    import steadystream as ss

    monitor = ss.StreamMonitor(ss.load_spec("slo.yaml"))

    stream = client.responses.create(model="gpt-4.1", input="hi", stream=True)
    for event in monitor.wrap(stream, model="gpt-4.1", provider="openai"):
        ...

Where telemetry goes:

* ``registry``: a prometheus_client ``CollectorRegistry``; ``None`` means the default
  ``REGISTRY``. Metrics are registered once per registry, so several monitors may share one.
* ``tracer_provider``: ``None`` means the global provider (``opentelemetry.trace``), looked up
  through OpenTelemetry's proxy, so a provider installed later is still used.
* ``meter_provider``: ``None`` means the global provider *if one was installed* when the monitor
  is created (``opentelemetry.metrics.set_meter_provider``); with none installed, OpenTelemetry
  metrics are off and Prometheus carries them. This keeps the per-chunk path free of no-op calls
  in the common Prometheus-only set-up. Pass a provider explicitly to always get instruments.
* A provider whose meter, tracer or instruments cannot be created (it raises) is logged once and
  left out: that sink records nothing, the others (Prometheus at least) work, and streams are
  never affected, as with failures at run time.
* ``stream_ingress_max_concurrent`` is the ingress guard's cap (each distinct guard of the
  process's monitors counted once), so ``sum()`` across processes is the fleet's capacity.
* ``budget`` / ``ingress`` / ``backoff``: the retry budget
  (:class:`~.policy.budget.RetryBudget`), ingress guard (:class:`~.policy.ingress.IngressGuard`)
  and backoff (:class:`~.policy.retry.Backoff`) shared by the monitor's active streams; ``None``
  builds each from the spec (on the monitor's clock). Pass your own to share one budget between
  monitors, or to drive them with a test clock.
* Shared limits: with ``stream.shared`` in the spec, or ``STEADYSTREAM_REDIS_URL`` set when the
  spec has no such section (the spec wins), the budget and guard built from the spec are
  :class:`~.policy.shared.SharedRetryBudget` and :class:`~.policy.shared.SharedIngressGuard`:
  one rate limit and one retry budget in Redis for every process and host of the service, with
  local limits while Redis is unreachable (counted in ``stream_shared_fallback_total``). See
  :mod:`.policy.shared`.
* ``clock``: a monotonic clock in seconds (``time.monotonic``); tests pass a fake one.
  ``wall_clock``: Unix time (``time.time``), for HTTP-date ``retry-after`` values.
* ``watchdog``: enforce deadlines on blocked sync reads with a watchdog thread (see
  :mod:`.core.watchdog`); ``False`` checks deadlines only when items arrive.
* ``max_providers``: distinct ``provider`` label values before new ones become ``other``
  (models are capped by ``spec.stream.max_models``), so an application that passes arbitrary
  provider strings cannot explode the metrics' cardinality. Model and provider names are cleaned
  before they are counted (:func:`~.sinks.telemetry.clean_label`: invalid Unicode and control
  characters replaced, at most 128 characters), in metrics and spans alike.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .. import conventions as c
from ._response import MAX_DEPTH, from_response, wrapped
from .core.machine import CorePolicy, StreamCore
from .core.shell import AsyncStreamWrapper, EitherStreamWrapper, SyncStreamWrapper
from .core.watchdog import Watchdog
from .policy.budget import RetryBudget
from .policy.ingress import IngressGuard
from .policy.pool import pool_wait
from .policy.retry import Backoff
from .policy.shared import SharedIngressGuard, SharedRetryBudget, SharedStore, shared_settings
from .sinks.prometheus import PrometheusSink
from .sinks.telemetry import (
    Fanout,
    LabelCap,
    TelemetrySink,
    report_telemetry_error,
    server_attributes,
)

if TYPE_CHECKING:
    import httpx
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider
    from prometheus_client import CollectorRegistry

    from ..spec import Spec
    from .active import ActiveStream
    from .core.reassembly import ServerSentEvent
    from .policy.relay import Relay

__all__ = ["DEFAULT_MAX_PROVIDERS", "StreamMonitor"]

T = TypeVar("T")

#: Distinct ``provider`` label values per monitor (a service talks to a handful of providers).
DEFAULT_MAX_PROVIDERS = 8


def _global_meter_provider() -> MeterProvider | None:
    """The globally installed meter provider, or None when only the default proxy exists."""
    from opentelemetry import metrics
    from opentelemetry.metrics import _internal

    provider = metrics.get_meter_provider()
    if provider is getattr(_internal, "_PROXY_METER_PROVIDER", None):
        return None
    if type(provider).__name__ == "NoOpMeterProvider":
        return None
    return provider


class StreamMonitor:
    """Measures, traces, checkpoints and times out streams according to ``spec``.

    Thread-safe and cheap to share: create one per service (and registry) at start-up.
    """

    def __init__(
        self,
        spec: Spec,
        registry: CollectorRegistry | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        budget: RetryBudget | None = None,
        ingress: IngressGuard | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        watchdog: bool = True,
        max_providers: int = DEFAULT_MAX_PROVIDERS,
    ) -> None:
        if registry is None:
            from prometheus_client import REGISTRY

            registry = REGISTRY
        if tracer_provider is None:
            from opentelemetry import trace

            tracer_provider = trace.get_tracer_provider()
        if meter_provider is None:
            meter_provider = _global_meter_provider()
        self.spec = spec
        self.registry = registry
        self.clock = clock
        #: Timeouts and checkpoint interval the core enforces.
        self.policy = CorePolicy.from_spec(spec)
        #: Histogram bucket bounds (ms), spec thresholds included.
        self.buckets = spec.histogram_buckets()
        self._models = LabelCap(spec.stream.max_models)
        self._providers = LabelCap(max_providers)
        self._sinks: tuple[TelemetrySink, ...] = ()
        #: The Redis store behind the shared limits (``stream.shared`` or
        #: ``STEADYSTREAM_REDIS_URL``), or ``None`` when every limit is this process's own.
        self.shared: SharedStore | None = None
        shared = shared_settings(spec) if ingress is None or budget is None else None
        if shared is not None:
            self.shared = SharedStore(
                shared.url, timeout=shared.timeout, clock=clock, on_fallback=self._fallback
            )
        #: The concurrency cap and rate limit in front of this monitor's active streams. Its
        #: cap is this process's ``stream_ingress_max_concurrent`` (summed over monitors with
        #: their own guards).
        self.ingress: IngressGuard
        if ingress is not None:
            self.ingress = ingress
        elif shared is not None and self.shared is not None:
            self.ingress = SharedIngressGuard.for_spec(spec, shared, self.shared, clock=clock)
        else:
            self.ingress = IngressGuard.from_spec(spec.stream.ingress, clock=clock)
        sinks: list[TelemetrySink] = [
            PrometheusSink(registry, spec.service, self.buckets, clock, capacity=self.ingress),
        ]
        from .sinks.otel import OTelMetricsSink, TracingSink

        # A provider whose meter, tracer or instrument creation raises costs that sink only
        # (logged once, as at run time): the monitor and its other sinks work without it.
        if meter_provider is not None:
            try:
                sinks.append(
                    OTelMetricsSink(
                        meter_provider, spec.service, self.buckets, clock, capacity=self.ingress
                    )
                )
            except Exception:
                report_telemetry_error("OTelMetricsSink", "__init__")
        try:
            sinks.append(TracingSink(tracer_provider, spec.service))
        except Exception:
            report_telemetry_error("TracingSink", "__init__")
        self._sinks = tuple(sinks)
        #: Enforces deadlines on blocked sync reads (``None`` with ``watchdog=False``).
        self.watchdog = Watchdog(clock) if watchdog else None
        retry = spec.stream.retry
        #: The retry budget every active stream of this monitor draws from.
        self.budget: RetryBudget
        if budget is not None:
            self.budget = budget
        elif shared is not None and self.shared is not None:
            self.budget = SharedRetryBudget.for_spec(spec, shared, self.shared, clock=clock)
        else:
            self.budget = RetryBudget.from_spec(retry, clock=clock)
        if self.shared is not None:
            limits = [c.LIMIT_RETRY_BUDGET] if budget is None else []
            if ingress is None:
                limits.append(c.LIMIT_RATE)
                if shared is not None and shared.max_concurrent is not None:
                    limits.append(c.LIMIT_CONCURRENCY)
            for limit in limits:
                self._fallback(limit, 0)  # the series exist, at zero, from the first scrape
        #: The delay before each retry.
        self.backoff = (
            backoff if backoff is not None else Backoff.from_spec(retry, rng=random.Random().random)
        )
        self.wall_clock = wall_clock

    # ------------------------------------------------------------------ labels

    def model_label(self, model: str | None) -> str:
        """The ``model`` label for ``model``: itself for the first ``stream.max_models``
        distinct names, then ``other`` (so label cardinality stays bounded)."""
        return self._models(model)

    def provider_label(self, provider: str | None) -> str:
        """The ``provider`` label for ``provider``: itself for the first ``max_providers``
        distinct names, then ``other``."""
        return self._providers(provider)

    # ------------------------------------------------------------------ the core

    def open_stream(
        self,
        model: str | None = None,
        provider: str | None = None,
        *,
        expect_json: bool = False,
        attributes: Mapping[str, Any] | None = None,
        queued: float | None = None,
    ) -> StreamCore:
        """A new :class:`~.core.StreamCore` for one logical stream, opened now and wired to
        every sink (Prometheus, OpenTelemetry metrics, spans). For shells and the active mode:
        call ``begin_attempt`` next, then feed it (see :mod:`.core`). ``queued``: seconds the
        stream waited in the admission queue (counted in its time to first token)."""
        label = self.model_label(model)
        prov = self.provider_label(provider)
        observers = []
        for sink in self._sinks:
            try:
                observers.append(
                    sink.bind(
                        label, prov, request_model=model or c.UNKNOWN, attributes=attributes or {}
                    )
                )
            except Exception:
                report_telemetry_error(type(sink).__name__, "bind")
        core = StreamCore(self.policy, Fanout(observers), expect_json=expect_json)
        core.on_open(self.clock(), queued)
        return core

    # ------------------------------------------------------------------ passive mode

    @overload
    def wrap(
        self,
        stream: AsyncIterable[T],
        model: str | None = None,
        provider: str | None = None,
        *,
        expect_json: bool = False,
        sse: bool | None = None,
    ) -> AsyncStreamWrapper[T]: ...

    @overload
    def wrap(
        self,
        stream: Iterable[T],
        model: str | None = None,
        provider: str | None = None,
        *,
        expect_json: bool = False,
        sse: bool | None = None,
    ) -> SyncStreamWrapper[T]: ...

    @overload
    def wrap(
        self,
        stream: Any,
        model: str | None = None,
        provider: str | None = None,
        *,
        expect_json: bool = False,
        sse: bool | None = None,
    ) -> SyncStreamWrapper[ServerSentEvent] | AsyncStreamWrapper[ServerSentEvent]: ...

    def wrap(
        self,
        stream: Any,
        model: str | None = None,
        provider: str | None = None,
        *,
        expect_json: bool = False,
        sse: bool | None = None,
    ) -> Any:
        """Instrument a stream you already have; same kind back (sync or async iterable).

        ``stream``: an openai ``Stream`` / ``AsyncStream`` (Responses events or Chat
        Completions chunks), any iterable of such objects, dicts, ``str`` or ``bytes``, or an
        httpx / httpx2 ``Response`` with an SSE body (yielded as parsed
        :class:`~.core.reassembly.ServerSentEvent` objects). ``model`` / ``provider``: label
        values (the model is capped, see :meth:`model_label`). ``expect_json``: check that the
        content is one complete JSON document. ``sse``: force (or forbid) SSE parsing of byte
        input; by default it is sniffed (and an httpx response with
        ``content-type: text/event-stream`` is SSE).

        The wrapper yields exactly the upstream items, in order; raises
        ``ss.FirstTokenTimeout`` / ``ss.IdleTimeout`` / ``ss.TotalTimeout`` (with
        ``.checkpoint``) when a budget runs out; and ends the stream exactly once on every exit
        path. Use it as a context manager (``with`` / ``async with``) to close early cleanly.
        """
        kind = _iteration_kind(stream)
        with _foreign_span_current(stream):
            core = self.open_stream(
                model,
                provider,
                expect_json=expect_json,
                attributes=server_attributes(_response_url(stream)),
            )
        core.begin_attempt(self.clock())
        waited = pool_wait(stream)
        if waited is not None:
            core.pool_waited(waited)
        if kind is _ASYNC:
            return AsyncStreamWrapper(core, stream, self.clock, sse=sse)
        if kind is _SYNC:
            return SyncStreamWrapper(core, stream, self.clock, watchdog=self.watchdog, sse=sse)
        if kind is _EITHER:
            return EitherStreamWrapper(
                core,
                self.clock,
                lambda: SyncStreamWrapper(
                    core, stream, self.clock, watchdog=self.watchdog, sse=sse
                ),
                lambda: AsyncStreamWrapper(core, stream, self.clock, sse=sse),
            )
        if hasattr(stream, "iter_bytes") or hasattr(stream, "aiter_bytes"):
            if sse is None:
                ctype = str(getattr(stream, "headers", {}).get("content-type", ""))
                sse = True if "text/event-stream" in ctype else None
            if _is_async_response(stream):
                return AsyncStreamWrapper(core, stream, self.clock, events_mode=True, sse=sse)
            return SyncStreamWrapper(
                core, stream, self.clock, watchdog=self.watchdog, events_mode=True, sse=sse
            )
        core.close(self.clock(), error=TypeError("not a stream"))
        raise TypeError(
            f"monitor.wrap() needs an iterable, an async iterable or an httpx response, "
            f"not {type(stream).__name__}"
        )

    # ------------------------------------------------------------------ active mode, relay

    def stream(self, opener: Callable[..., Any], **kw: Any) -> ActiveStream:
        """Active mode: the monitor opens the stream, so it can retry, resume and enforce
        every timeout. ``opener(checkpoint)`` returns an iterable / async iterable (or an
        awaitable of one); ``checkpoint`` is ``None`` for the first attempt, else the last
        :class:`~steadystream.Checkpoint`. Keyword arguments (``model``, ``provider``,
        ``resumable``, ``expect_json``, ``idempotency_key``, ``attributes``) are those of
        :func:`steadystream.instrumentation.active.stream_active`."""
        from .active import stream_active

        return stream_active(self, opener, **kw)

    def relay(self, source: Any, **kw: Any) -> Relay:
        """Relay ``source`` to a possibly slow consumer through the spec's bounded buffer
        (``flow_control``); see :func:`steadystream.instrumentation.relay.relay`."""
        from .policy.relay import relay

        return relay(self, source, **kw)

    # ------------------------------------------------------------------ ingress

    def record_rejected(
        self, reason: str, model: str | None = None, provider: str | None = None
    ) -> None:
        """A stream was refused at ingress (``reason``: conventions.REJECT_REASONS). Counts
        ``stream_rejected_total{reason}``, ``stream_requests_total{outcome="rejected"}`` and
        ``stream_errors_total{error_class="rejected"}`` (a refused stream is a failed one for
        the error-rate SLO)."""
        label = self.model_label(model)
        prov = self.provider_label(provider)
        for sink in self._sinks:
            try:
                sink.rejected(reason, label, prov)
            except Exception:
                report_telemetry_error(type(sink).__name__, "rejected")

    def record_lag(self, source: str, ms: float) -> None:
        """One sample of how late this process runs (``stream_event_loop_lag_ms{source}``);
        the lag meters of :mod:`.core.watchdog` call it."""
        for sink in self._sinks:
            try:
                sink.loop_lag(source, ms)
            except Exception:
                report_telemetry_error(type(sink).__name__, "loop_lag")

    def _fallback(self, limit: str, n: int = 1) -> None:
        """A shared-limit decision was taken locally (the store is down)."""
        for sink in self._sinks:
            try:
                sink.shared_fallback(limit, n)
            except Exception:
                report_telemetry_error(type(sink).__name__, "shared_fallback")

    # ------------------------------------------------------------------ client helpers

    def httpx_timeout(self) -> httpx.Timeout:
        """An ``httpx.Timeout`` from the spec (see :mod:`.policy.timeouts`)."""
        from .policy.timeouts import httpx_timeout

        return httpx_timeout(self.spec)

    def httpx_limits(self) -> httpx.Limits:
        """An ``httpx.Limits`` with the spec's pool sizes (see :mod:`.policy.timeouts`)."""
        from .policy.timeouts import httpx_limits

        return httpx_limits(self.spec)

    def openai_client_options(self, *, asynchronous: bool = False) -> dict[str, Any]:
        """``OpenAI(**monitor.openai_client_options())``, or
        ``AsyncOpenAI(**monitor.openai_client_options(asynchronous=True))``: the spec's
        timeouts, and a client with the spec's connection pool and separate dial and TLS
        deadlines whose streams report their ``pool`` phase (see :mod:`.policy.timeouts`)."""
        from .policy.timeouts import openai_client_options

        return openai_client_options(self.spec, asynchronous=asynchronous)


_SYNC, _ASYNC, _EITHER = "sync", "async", "either"


def _iteration_kind(stream: Any, depth: int = 0) -> str | None:
    """Whether ``stream`` is read with ``for`` (:data:`_SYNC`) or ``async for``
    (:data:`_ASYNC`); :data:`_EITHER` when it cannot be told; None when it is not iterable.

    Another GenAI instrumentation may have wrapped the SDK stream in an object that defines
    both ``__iter__`` and ``__aiter__`` whatever it wraps, so both together decide nothing:
    then the class the object claims to be (a proxy forwards ``__class__``) decides, or the
    stream it wraps, else how the caller iterates."""
    if isinstance(stream, (str, bytes, bytearray)):
        return None
    sync, async_ = hasattr(stream, "__iter__"), hasattr(stream, "__aiter__")
    if sync != async_:
        return _SYNC if sync else _ASYNC
    if not sync:
        return None
    claimed = getattr(stream, "__class__", type(stream))
    if claimed is not type(stream):
        sync, async_ = hasattr(claimed, "__iter__"), hasattr(claimed, "__aiter__")
        if sync != async_:
            return _SYNC if sync else _ASYNC
    if depth < MAX_DEPTH:
        for inner in wrapped(stream):
            kind = _iteration_kind(inner, depth + 1)
            if kind in (_SYNC, _ASYNC):
                return kind
    return _EITHER


def _response_url(stream: Any) -> Any:
    """The URL the stream was requested from (``server.address`` / ``server.port``): the HTTP
    response's under an SDK stream (``stream.response.url``), an httpx response's own, or the
    stream's inside another instrumentation's wrapper; ``None`` when none can be found."""
    return from_response(stream, _url_of)


def _url_of(holder: Any) -> Any:
    url = getattr(holder, "url", None)  # httpx: raises for a response without its request
    return None if callable(url) else url


#: Where other instrumentations' stream wrappers keep their span (openai-v2: ``span``,
#: OpenLLMetry: ``_span``).
_SPAN_ATTRS = ("span", "_span")


def _foreign_span_current(stream: Any) -> contextlib.AbstractContextManager[Any]:
    """While opening the stream, make the span of another instrumentation's stream wrapper
    current (they end their ``with`` before handing the stream back), so the stream span is a
    child of that call's span; see :class:`~.sinks.otel.TracingSink`."""
    for attr in _SPAN_ATTRS:
        try:
            span = getattr(stream, attr, None)
        except Exception:
            continue
        if span is None or not callable(getattr(span, "get_span_context", None)):
            continue
        from opentelemetry import trace

        if isinstance(span, trace.Span) and span.is_recording():
            return trace.use_span(span, end_on_exit=False)
    return contextlib.nullcontext()


def _is_async_response(response: Any) -> bool:
    """An httpx(2) response opened by an async client (its body is an async byte stream)."""
    body = getattr(response, "stream", None)
    if body is None:
        return False
    return hasattr(body, "__aiter__") and not hasattr(body, "__iter__")
