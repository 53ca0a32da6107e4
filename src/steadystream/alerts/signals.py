"""The signals behind every alert: one PromQL value, one threshold, one sentence.

A :class:`Signal` is what an alert fires on and what ``steadystream triage`` asks Prometheus
for, so the two can never disagree: the alert's ``expr`` is ``(signal.expr) <op> threshold``,
and triage runs ``signal.expr`` as an instant query and compares the same way.

Failure-class signals are built from the raw stream metrics (:mod:`steadystream.conventions`);
SLO burn signals read the recorded series the SLI rules write (:mod:`steadystream.alerts.names`).
Guards (minimum traffic, "several phases at once") are part of ``expr`` (``... and on() (...)``)
so a guarded-out signal returns no series at all instead of a misleading value.

Thresholds have defaults, some derived from the spec's runtime policy (the retry-storm
threshold is ``stream.retry.budget``; the chunk-gap threshold is half of ``stream_idle``), and
``alerting.failure_classes.<class>.threshold`` overrides the class's *primary* signal (the first
one listed); ``severity``, ``for`` and ``enabled`` apply to every signal of the class.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .. import conventions as c
from ..dashboards.links import dashboard_url
from ..generate import per_render
from ..runbooks.links import runbook_url
from ..spec import SLO, Spec, Tier, format_duration, format_percent, format_size
from . import names as n
from ._promql import Sel, clean, dur, matcher_labels, num

__all__ = [
    "Signal",
    "Unit",
    "failure_class_signals",
    "format_threshold",
    "slo_burn_signals",
    "tier_factor",
]

Unit = Literal["ratio", "per_second", "ms", "burn_rate", "bool"]
Op = Literal[">", "<"]

#: Quantile used by the latency signals (chunk gap, first token, recovery).
P99 = 0.99


@dataclass(frozen=True)
class Signal:
    """One alerting signal: ``expr`` (an instant PromQL query returning the current value)
    compared with ``threshold`` by ``op``.

    ::

        storm = failure_class_signals(spec)["retry-storm"][0]
        storm.expr       # 'sum(increase(stream_retry_total{service="chat-gateway"}[5m])) / (...)'
        storm.condition  # '(<expr>) > 0.2': the alert rule's expr
        value = prometheus_instant_query(storm.expr)
        storm.breached(value)

    ``expr`` returns no series when there is nothing to judge (no traffic, a guard not met);
    that is "no data", never a breach. ``unit`` says how to read the value (``ratio``,
    ``per_second``, ``ms``, ``burn_rate``, ``bool``); ``runbook`` is the runbook's path
    (relative to the generated output) or URL (under ``links.runbooks``); ``dashboard`` links
    the panel that shows the signal. ``severity`` and ``for_`` (seconds, ``None`` for none) are
    the alert's; ``labels`` are the alert's identifying labels besides ``severity`` and
    ``failure_class`` (the spec's matchers, plus ``slo``/``long``/``short`` for burn signals).
    """

    failure_class: str
    name: str
    alert: str
    expr: str
    op: Op
    threshold: float
    unit: Unit
    description: str
    summary: str
    severity: str
    for_: float | None
    runbook: str
    dashboard: str
    slo: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def condition(self) -> str:
        """The alert expression: ``(expr) op threshold``."""
        return f"({self.expr}) {self.op} {num(self.threshold)}"

    def breached(self, value: float) -> bool:
        """Whether ``value`` (a sample of :attr:`expr`) is past the threshold."""
        return value > self.threshold if self.op == ">" else value < self.threshold


def format_threshold(value: float, unit: Unit) -> str:
    """A threshold as a person reads it: ``20%``, ``0.1/s``, ``4000 ms``, ``13.44x``."""
    if unit == "ratio":
        return format_percent(value)
    if unit == "per_second":
        return f"{num(value)}/s"
    if unit == "ms":
        return f"{num(value)} ms"
    if unit == "burn_rate":
        return f"{num(value)}x"
    return num(value)


def tier_factor(tier: Tier, period: float) -> float:
    """The burn-rate factor of ``tier`` as printed in the rules (rounded to 4 decimals).

    budget share x period / long window: 2 % of a 30 d budget in 1 h is 14.4; of 28 d, 13.44.
    """
    return clean(tier.factor(period), 4)


# ------------------------------------------------------------------------------ building blocks
class _Q:
    """PromQL fragments over the spec's matchers."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.sel = Sel(matcher_labels(spec))

    def inc(self, metric: str, window: str = "5m", **extra: str) -> str:
        return f"sum(increase({self.sel(metric, **extra)}[{window}]))"

    def rate(self, metric: str, window: str = "5m", **extra: str) -> str:
        return f"sum(rate({self.sel(metric, **extra)}[{window}]))"

    def requests(self) -> str:
        return self.inc(c.REQUESTS_TOTAL)

    def per_stream(self, metric: str, **extra: str) -> str:
        """``metric`` events per finished stream over 5 m; no series without traffic."""
        return f"{self.inc(metric, **extra)} / ({self.requests()} > 0)"

    def traffic_guard(self, expr: str) -> str:
        """``expr`` only while there were ``min_events`` streams in 5 m: one failed stream
        out of two is 50 %, and must not alert."""
        floor = self.spec.alerting.min_events
        if floor <= 0:
            return expr
        return f"{expr} and on() ({self.requests()} >= {floor})"

    def quantile_threshold(self, histogram: str, wanted_ms: float) -> float:
        """``wanted_ms``, or less when the histogram cannot show it.

        ``histogram_quantile`` never returns more than the highest finite bucket bound (a
        quantile in the ``+Inf`` bucket reads as that bound), so a p99 alert at or above it
        could never fire. Past it, the alert moves to the largest bound below the top one:
        it fires earlier than asked, which beats never.
        """
        bounds = self.spec.histogram_buckets()[histogram]
        if wanted_ms < bounds[-1]:
            return wanted_ms
        return bounds[-2]

    def p99(self, histogram: str) -> str:
        return (
            f"histogram_quantile({num(P99)}, sum by (le) "
            f"(rate({self.sel(c.bucket(histogram))}[5m])))"
        )


@dataclass(frozen=True)
class _Def:
    """A failure-class signal before the spec's overrides are applied."""

    name: str
    alert: str
    expr: str
    op: Op
    threshold: float
    unit: Unit
    what: str  # "share of streams cut ...", completes "<what> is <value>"
    summary: str
    severity: str
    for_: float
    # How the generated promtool tests drive this signal: a kind and its arguments
    # (see steadystream.alerts._promtool).
    scenario: tuple[Any, ...] = ()
    # The stream-internals panel (a key of steadystream.dashboards.panel_index) that shows it.
    panel: str = ""


#: What a buffer-cap breach does under each overflow policy (see instrumentation.relay): the
#: counter counts breaches under all three, but only ``terminate`` cuts the stream.
_OVERFLOW_EFFECT = {
    "terminate": "streams cut with ClientTooSlow",
    "pause": "buffer-cap breaches per stream (the reader paused the upstream)",
    "drop": "buffer-cap breaches per stream (keep-alives and progress events shed, then the "
    "reader paused the upstream)",
}


def _slow_consumer(q: _Q) -> list[_Def]:
    fc = q.spec.stream.flow_control
    effect = _OVERFLOW_EFFECT[fc.on_overflow]
    what = f"the share of {effect}" if fc.on_overflow == "terminate" else effect
    return [
        _Def(
            "client-slow-aborts",
            "StreamSlowConsumerAborts",
            q.traffic_guard(q.per_stream(c.ABORT_CLIENT_SLOW_TOTAL)),
            ">",
            0.01,
            "ratio",
            f"{what} because the consumer fell behind the {format_size(fc.max_buffer)} buffer "
            f"cap (on_overflow={fc.on_overflow})",
            "Consumers are too slow to keep up with their streams",
            "warning",
            600,
            scenario=("per_stream", c.ABORT_CLIENT_SLOW_TOTAL, {}),
            panel="slow-aborts",
        )
    ]


def _idle_stall(q: _Q) -> list[_Def]:
    idle_ms = q.spec.stream.timeouts.stream_idle * 1000
    return [
        _Def(
            "idle-timeouts",
            "StreamIdleTimeouts",
            q.traffic_guard(q.per_stream(c.TIMEOUT_IDLE_TOTAL)),
            ">",
            0.01,
            "ratio",
            "idle timeouts per stream (no content for "
            f"{format_duration(q.spec.stream.timeouts.stream_idle)})",
            "Streams stall mid-response and hit the idle timeout",
            "warning",
            600,
            scenario=("per_stream", c.TIMEOUT_IDLE_TOTAL, {}),
            panel="idle-timeouts",
        ),
        _Def(
            "chunk-gap-p99",
            "StreamChunkGapNearIdleTimeout",
            q.p99(c.CHUNK_GAP),
            ">",
            q.quantile_threshold(c.CHUNK_GAP, idle_ms / 2),
            "ms",
            f"the p99 gap between content chunks (idle timeout: {num(idle_ms)} ms)",
            "Gaps between chunks approach the idle timeout",
            "warning",
            900,
            scenario=("p99", c.CHUNK_GAP),
            panel="chunk-gap",
        ),
    ]


def _first_token_timeout(q: _Q) -> list[_Def]:
    ft = q.spec.stream.timeouts.first_token
    return [
        _Def(
            "first-token-timeouts",
            "StreamFirstTokenTimeouts",
            q.traffic_guard(q.per_stream(c.TIMEOUTS_TOTAL, phase=c.TIMEOUT_FIRST_TOKEN)),
            ">",
            0.02,
            "ratio",
            f"first-token timeouts ({format_duration(ft)}) per stream",
            "Streams time out before their first token",
            "warning",
            600,
            scenario=("per_stream", c.TIMEOUTS_TOTAL, {c.LABEL_PHASE: c.TIMEOUT_FIRST_TOKEN}),
            panel="timeouts-by-phase",
        ),
        _Def(
            "first-token-p99",
            "StreamFirstTokenLatencyNearTimeout",
            q.p99(c.FIRST_TOKEN_LATENCY),
            ">",
            q.quantile_threshold(c.FIRST_TOKEN_LATENCY, ft * 1000 * 0.8),
            "ms",
            f"the p99 time to first token (first-token timeout: {num(ft * 1000)} ms)",
            "Time to first token approaches the first-token timeout",
            "warning",
            900,
            scenario=("p99", c.FIRST_TOKEN_LATENCY),
            panel="ttft-quantiles",
        ),
    ]


def _timeout_cascade(q: _Q) -> list[_Def]:
    cap = q.spec.stream.ingress.max_concurrent
    # In-flight is per process (the ingress cap is per process): sum a process's models and
    # providers, then take the fullest process.
    in_flight = (
        f"max(sum without ({c.LABEL_MODEL}, {c.LABEL_PROVIDER}) ({q.sel(c.IN_FLIGHT)})) / {cap}"
    )
    phases = f"count(sum by ({c.LABEL_PHASE}) (increase({q.sel(c.TIMEOUTS_TOTAL)}[5m])) > 0) >= 2"
    return [
        _Def(
            "in-flight-with-timeouts",
            "StreamTimeoutCascade",
            f"{in_flight} and on() ({phases})",
            ">",
            0.8,
            "ratio",
            f"in-flight streams on the fullest instance as a share of the ingress cap ({cap} "
            "per process, with timeouts rising in two or more phases at once)",
            "Timeouts in several phases with streams piling up toward the ingress cap",
            "critical",
            300,
            scenario=("cascade", cap),
            panel="in-flight",
        )
    ]


def _retry_storm(q: _Q) -> list[_Def]:
    retry = q.spec.stream.retry
    return [
        _Def(
            "retry-ratio",
            "StreamRetryStorm",
            q.traffic_guard(q.per_stream(c.RETRY_TOTAL)),
            ">",
            retry.budget,
            "ratio",
            f"retries per stream (retry budget: {format_percent(retry.budget)} of requests)",
            "Retries exceed the retry budget share of requests",
            "critical",
            300,
            scenario=("per_stream", c.RETRY_TOTAL, {c.LABEL_REASON: c.RETRY_REASON_NETWORK}),
            panel="retry-ratio",
        ),
        _Def(
            "retry-budget-exhausted",
            "StreamRetryBudgetExhausted",
            q.rate(c.RETRY_BUDGET_EXHAUSTED_TOTAL),
            ">",
            0,
            "per_second",
            "retries refused per second because the shared retry budget is spent",
            "The retry budget is spent; retries are being refused",
            "warning",
            600,
            scenario=("rate", c.RETRY_BUDGET_EXHAUSTED_TOTAL, {}),
            panel="retry-budget-exhausted",
        ),
    ]


def _upstream_rate_limit(q: _Q) -> list[_Def]:
    return [
        _Def(
            "rate-limit-retries",
            "StreamUpstreamRateLimited",
            q.rate(c.RETRY_TOTAL, reason=c.RETRY_REASON_429),
            ">",
            0.1,
            "per_second",
            "retries after an upstream 429 per second",
            "The upstream is rate-limiting this service",
            "warning",
            600,
            scenario=("rate", c.RETRY_TOTAL, {c.LABEL_REASON: c.RETRY_REASON_429}),
            panel="rate-limits",
        ),
        _Def(
            "rate-limited-streams",
            "StreamRateLimitFailures",
            q.traffic_guard(q.per_stream(c.ERRORS_TOTAL, error_class=c.ERROR_CLASS_RATE_LIMITED)),
            ">",
            0.01,
            "ratio",
            "the share of streams that failed because the upstream kept answering 429",
            "Streams fail on upstream rate limits despite retries",
            "warning",
            300,
            scenario=(
                "per_stream",
                c.ERRORS_TOTAL,
                {c.LABEL_ERROR_CLASS: c.ERROR_CLASS_RATE_LIMITED},
            ),
            panel="rate-limits",
        ),
    ]


_UPSTREAM_ERROR_CLASSES = (
    c.ERROR_CLASS_UPSTREAM_5XX,
    c.ERROR_CLASS_UPSTREAM_4XX,
    c.ERROR_CLASS_UPSTREAM_EVENT,
    c.ERROR_CLASS_RESPONSE_FAILED,
)


def _upstream_errors(q: _Q) -> list[_Def]:
    classes = "|".join(_UPSTREAM_ERROR_CLASSES)
    return [
        _Def(
            "upstream-error-streams",
            "StreamUpstreamErrors",
            q.traffic_guard(q.per_stream(c.ERRORS_TOTAL, error_class=f"=~{classes}")),
            ">",
            0.01,
            "ratio",
            "the share of streams that ended in an upstream error "
            f"({', '.join(_UPSTREAM_ERROR_CLASSES)})",
            "Streams end in upstream errors",
            "warning",
            300,
            scenario=(
                "per_stream",
                c.ERRORS_TOTAL,
                {c.LABEL_ERROR_CLASS: c.ERROR_CLASS_UPSTREAM_5XX},
            ),
            panel="errors-by-class",
        ),
        _Def(
            "upstream-5xx-retries",
            "StreamUpstream5xxRetries",
            q.traffic_guard(q.per_stream(c.RETRY_TOTAL, reason=c.RETRY_REASON_5XX)),
            ">",
            0.05,
            "ratio",
            "retries after an upstream 5xx per stream",
            "The upstream answers 5xx to many attempts",
            "warning",
            600,
            scenario=("per_stream", c.RETRY_TOTAL, {c.LABEL_REASON: c.RETRY_REASON_5XX}),
            panel="retries-by-reason",
        ),
    ]


def _broken_chunks(q: _Q) -> list[_Def]:
    return [
        _Def(
            "reassembly-errors",
            "StreamBrokenChunks",
            q.rate(c.REASSEMBLY_ERRORS_TOTAL),
            ">",
            0,
            "per_second",
            "reassembly errors per second (split UTF-8, malformed SSE or JSON, broken fences)",
            "Streams arrive with broken chunks",
            "warning",
            300,
            scenario=("rate", c.REASSEMBLY_ERRORS_TOTAL, {c.LABEL_KIND: c.REASSEMBLY_UTF8}),
            panel="reassembly-errors",
        )
    ]


def _resume_failure(q: _Q) -> list[_Def]:
    failed = q.inc(c.RESUME_FAILURE_TOTAL)
    # A service that never resumed successfully has no success series; count it as zero so a
    # first failure is still a 100 % failure ratio rather than "no data".
    succeeded = f"({q.inc(c.RESUME_SUCCESS_TOTAL)} or vector(0))"
    recovery_ms = next(
        (
            slo.indicator.latency.threshold_ms
            for slo in q.spec.slos
            if slo.indicator.latency is not None
            and slo.indicator.latency.metric == c.RECOVERY_LATENCY
        ),
        8000.0,
    )
    return [
        _Def(
            "resume-failure-ratio",
            "StreamResumeFailures",
            f"{failed} / (({failed} + {succeeded}) > 0)",
            ">",
            0.1,
            "ratio",
            "the share of resumes that failed (diverging replay, no resumable source, refused)",
            "Interrupted streams fail to resume",
            "warning",
            600,
            scenario=("resume",),
            panel="resumes",
        ),
        _Def(
            "recovery-p99",
            "StreamRecoverySlow",
            q.p99(c.RECOVERY_LATENCY),
            ">",
            q.quantile_threshold(c.RECOVERY_LATENCY, recovery_ms),
            "ms",
            "the p99 recovery time after an interruption",
            "Resumed streams take too long to deliver content again",
            "warning",
            900,
            scenario=("p99", c.RECOVERY_LATENCY),
            panel="recovery-latency",
        ),
    ]


def _no_traffic(q: _Q) -> list[_Def]:
    return [
        _Def(
            "traffic-stopped",
            "StreamNoTraffic",
            q.rate(c.REQUESTS_TOTAL, "15m"),
            "<",
            0.001,
            "per_second",
            "finished streams per second over 15m",
            "Traffic stopped: no streams are finishing",
            "warning",
            600,
            scenario=("stopped",),
            panel="outcomes",
        ),
        _Def(
            "metrics-absent",
            "StreamMetricsAbsent",
            f"absent({q.sel(c.REQUESTS_TOTAL)})",
            ">",
            0,
            "bool",
            f"no {c.REQUESTS_TOTAL} series matches {{{q.sel.matchers()}}}",
            "The stream metrics are missing: the instrumentation or the scrape is broken",
            "warning",
            600,
            scenario=("absent",),
            panel="outcomes",
        ),
    ]


_BUILDERS: dict[str, Callable[[_Q], list[_Def]]] = {
    c.FC_SLOW_CONSUMER: _slow_consumer,
    c.FC_IDLE_STALL: _idle_stall,
    c.FC_FIRST_TOKEN_TIMEOUT: _first_token_timeout,
    c.FC_TIMEOUT_CASCADE: _timeout_cascade,
    c.FC_RETRY_STORM: _retry_storm,
    c.FC_UPSTREAM_RATE_LIMIT: _upstream_rate_limit,
    c.FC_UPSTREAM_ERRORS: _upstream_errors,
    c.FC_BROKEN_CHUNKS: _broken_chunks,
    c.FC_RESUME_FAILURE: _resume_failure,
    c.FC_NO_TRAFFIC: _no_traffic,
}
assert set(_BUILDERS) == set(c.FAILURE_CLASSES), "every failure class needs its signals"


def failure_class_signals(spec: Spec) -> dict[str, list[Signal]]:
    """The signals of every *enabled* failure class, keyed by class id (in
    :data:`steadystream.conventions.FAILURE_CLASSES` order), each class's primary signal first.

    A class disabled with ``alerting.failure_classes.<class>.enabled: false`` is left out: it
    has no alert, and triage does not report it.
    """
    out: dict[str, list[Signal]] = {}
    for signal, _ in fc_signals_with_scenarios(spec):
        out.setdefault(signal.failure_class, []).append(signal)
    return out


@per_render(copy=list)
def fc_signals_with_scenarios(spec: Spec) -> list[tuple[Signal, tuple[Any, ...]]]:
    """Every enabled failure-class signal with its test scenario (for the promtool tests)."""
    q = _Q(spec)
    labels = tuple(sorted(matcher_labels(spec).items()))
    panels = _panels(spec)
    out: list[tuple[Signal, tuple[Any, ...]]] = []
    for fc in c.FAILURE_CLASSES:
        override = spec.alerting.failure_classes.get(fc)  # type: ignore[call-overload]
        if override is not None and not override.enabled:
            continue
        for i, d in enumerate(_BUILDERS[fc](q)):
            threshold = d.threshold
            if i == 0 and override is not None and override.threshold is not None:
                threshold = override.threshold
            severity = d.severity
            for_ = d.for_
            if override is not None:
                severity = override.severity or severity
                for_ = override.for_ if override.for_ is not None else for_
            signal = Signal(
                failure_class=fc,
                name=d.name,
                alert=d.alert,
                expr=d.expr,
                op=d.op,
                threshold=clean(threshold),
                unit=d.unit,
                description=d.what,
                summary=d.summary,
                severity=severity,
                for_=for_,
                runbook=runbook_url(spec, c.failure_class_runbook(fc)),
                dashboard=_panel_url(spec, panels, d.panel, c.BOARD_STREAM_INTERNALS),
                labels=labels,
            )
            out.append((signal, d.scenario))
    return out


@per_render(copy=lambda signals: {name: list(s) for name, s in signals.items()})
def slo_burn_signals(spec: Spec) -> dict[str, list[Signal]]:
    """One signal per SLO and enabled burn-rate tier, keyed by SLO name (spec order), tiers in
    spec order.

    ``expr`` is the long-window burn rate, guarded by the short window (which must burn as
    fast) and the low-traffic floor (``alerting.min_events`` events in the long window); it
    reads the recorded series of the generated SLI rules, so those must be loaded.
    """
    out: dict[str, list[Signal]] = {}
    base = matcher_labels(spec)
    panels = _panels(spec)
    for slo in spec.slos:
        sel = Sel({**base, n.LABEL_SLO: slo.name})
        signals = []
        for tier in spec.alerting.tiers:
            if not tier.enabled:
                continue
            factor = tier_factor(tier, spec.period)
            long_, short = dur(tier.long), dur(tier.short)
            expr = (
                f"{sel(n.slo_burn_rate(tier.long))}"
                f" and ({sel(n.slo_burn_rate(tier.short))} > {num(factor)})"
            )
            if spec.alerting.min_events > 0:
                expr += f" and ({sel(n.slo_events(tier.long))} >= {spec.alerting.min_events})"
            signals.append(
                Signal(
                    failure_class=n.BURN_FAILURE_CLASS,
                    name=f"{slo.name}-{long_}-{short}",
                    alert=n.ALERT_SLO_BURN,
                    expr=expr,
                    op=">",
                    threshold=factor,
                    unit="burn_rate",
                    description=_burn_description(spec, slo, tier, factor),
                    summary=f"{slo.name}: error budget burning over {num(factor)}x as fast "
                    f"as sustainable over {long_} and {short}",
                    severity=tier.severity,
                    for_=tier.for_,
                    runbook=runbook_url(spec, c.slo_runbook(slo.name)),
                    dashboard=_panel_url(
                        spec, panels, f"slo-{slo.name}-burn", c.BOARD_SLO_OVERVIEW
                    ),
                    slo=slo.name,
                    labels=tuple(
                        sorted(
                            {
                                **base,
                                n.LABEL_SLO: slo.name,
                                n.LABEL_LONG: long_,
                                n.LABEL_SHORT: short,
                            }.items()
                        )
                    ),
                )
            )
        out[slo.name] = signals
    return out


def _panels(spec: Spec) -> dict[str, Any]:
    # Imported here: the dashboards read this package's recorded-series names.
    from ..dashboards import panel_index

    return panel_index(spec)


def _panel_url(spec: Spec, panels: dict[str, Any], key: str, board: str) -> str:
    """A link to the dashboard panel ``key`` (``viewPanel=``), or to ``board`` when the
    dashboards have no such panel."""
    ref = panels.get(key)
    if ref is None:
        return dashboard_url(spec, board)
    return dashboard_url(spec, ref.board, ref.panel_id)


def _burn_description(spec: Spec, slo: SLO, tier: Tier, factor: float) -> str:
    return (
        f"the {slo.name} error budget burn rate over {dur(tier.long)} (1 = the whole "
        f"{dur(spec.period)} budget spent in exactly {dur(spec.period)}; {num(factor)} spends "
        f"{format_percent(tier.budget)} of it in {dur(tier.long)})"
    )


def slo_what(slo: SLO) -> str:
    """``95% of streams with stream_first_token_latency_ms <= 2500 ms``."""
    lat = slo.indicator.latency
    if lat is not None:
        return (
            f"{format_percent(slo.objective)} of {lat.metric} observations within "
            f"{num(lat.threshold_ms)} ms"
        )
    errs = slo.indicator.errors
    assert errs is not None
    return f"{format_percent(slo.objective)} of {errs.total} without {errs.errors}"


def ceil_minutes(seconds: float | None) -> int:
    """Whole evaluation minutes an alert's ``for`` lasts (the 1 m SLI interval)."""
    return 0 if not seconds else math.ceil(seconds / 60)
