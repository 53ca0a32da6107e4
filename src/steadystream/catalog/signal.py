"""The signals behind every alert: one PromQL value, one threshold, one sentence.

A :class:`Signal` is what an alert fires on and what ``steadystream triage`` asks Prometheus
for, so the two can never disagree: the alert's ``expr`` is ``(signal.expr) <op> threshold``,
and triage runs ``signal.expr`` as an instant query and compares the same way.

Failure-class signals are built from the raw stream metrics (:mod:`steadystream.conventions`);
SLO burn signals read the recorded series the SLI rules write (:mod:`steadystream.catalog.names`).
Guards (minimum traffic, "several phases at once") are part of ``expr`` (``... and on() (...)``)
so a guarded-out signal returns no series at all instead of a misleading value.

Thresholds have defaults, some derived from the spec's runtime policy (the retry-storm
threshold is ``stream.retry.budget``; the chunk-gap threshold is half of ``stream_idle``), and
``alerting.failure_classes.<class>.threshold`` overrides the class's *primary* signal (the first
one listed); ``severity``, ``for`` and ``enabled`` apply to every signal of the class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from .. import conventions as c
from ..spec import Spec, Tier, format_percent
from .promql import Sel, clean, dur, matcher_labels, num

__all__ = [
    "Queries",
    "Signal",
    "SignalDef",
    "Unit",
    "event_floor",
    "format_threshold",
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
    ``failure_class`` (the spec's matchers, plus ``slo``/``long``/``short`` for burn signals,
    and an SLO's own ``alerts`` labels); ``annotations`` are an SLO's own extra annotations.
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
    annotations: tuple[tuple[str, str], ...] = ()

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


def event_floor(spec: Spec, bad_share: float) -> int:
    """The fewest events a window must hold before an alert on its bad share (above
    ``bad_share``) may fire: ``alerting.min_events``, raised until one bad event alone stays at
    or under ``bad_share``. A tier at 14.4x of a 99.9 % SLO fires above 1.44 % bad, so it needs
    70 events, not 20: with 20, a single failure would be 5 % and page. 0 when
    ``min_events`` is 0 (every guard off)."""
    floor = spec.alerting.min_events
    if floor <= 0:
        return 0
    return max(floor, math.floor(1 / bad_share) + 1)


# ------------------------------------------------------------------------------ building blocks
class Queries:
    """PromQL fragments over the spec's matchers, for the failure classes' signal builders."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.sel = Sel(matcher_labels(spec))
        #: The signals' rate window (``alerting.window``), in seconds and as PromQL (``5m``).
        self.window_seconds = spec.alerting.window
        self.window = dur(spec.alerting.window)

    def inc(self, metric: str, window: str | None = None, **extra: str) -> str:
        return f"sum(increase({self.sel(metric, **extra)}[{window or self.window}]))"

    def rate(self, metric: str, window: str | None = None, **extra: str) -> str:
        return f"sum(rate({self.sel(metric, **extra)}[{window or self.window}]))"

    def requests(self) -> str:
        """Admitted streams finished over the window (5 m by default). A stream rejected at
        ingress never reached the upstream: counting it would dilute every failure ratio
        exactly when load shedding starts, which is when an outage is being reported."""
        return self.inc(c.REQUESTS_TOTAL, outcome=f"!={c.OUTCOME_REJECTED}")

    def per_stream(self, metric: str, **extra: str) -> str:
        """``metric`` events per admitted stream over 5 m; no series without traffic."""
        return f"{self.inc(metric, **extra)} / ({self.requests()} > 0)"

    def guard(self, expr: str, events: str) -> str:
        """``expr`` only while ``events`` (a count over the same window) reaches
        ``alerting.min_events``: one failure out of two events is 50 %, and must not alert."""
        floor = self.spec.alerting.min_events
        if floor <= 0:
            return expr
        return f"{expr} and on() ({events} >= {floor})"

    def traffic_guard(self, expr: str) -> str:
        """``expr`` only while ``min_events`` streams were admitted in 5 m."""
        return self.guard(expr, self.requests())

    def arrivals(self) -> str:
        """Streams that arrived over 5 m, admitted or rejected at ingress."""
        return self.inc(c.REQUESTS_TOTAL)

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
        """The p99 of ``histogram`` over 5 m, only while it holds ``min_events`` observations:
        the p99 of five observations is the slowest of them."""
        quantile = (
            f"histogram_quantile({num(P99)}, sum by (le) "
            f"(rate({self.sel(c.bucket(histogram))}[{self.window}])))"
        )
        return self.guard(quantile, self.inc(c.count(histogram)))


@dataclass(frozen=True)
class SignalDef:
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
    # (see steadystream.alerts).
    scenario: tuple[Any, ...] = ()
    # The stream-internals panel (a key of steadystream.catalog.panels) that shows it.
    panel: str = ""
