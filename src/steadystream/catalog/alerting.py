"""Every alert signal of a spec: the failure classes' and the SLOs' burn-rate signals.

The rule generator turns each :class:`~steadystream.catalog.signal.Signal` into an alert,
``triage`` evaluates the same signals as instant queries, and the runbooks print them, so the
three can never disagree.
"""

from __future__ import annotations

from typing import Any

from .. import conventions as c
from ..spec import SLO, Spec, Tier, format_percent
from ..spec.model import AlertOverride as SLOAlertOverride
from . import names as n
from .classes import failure_classes
from .links import dashboard_url, runbook_url
from .memo import per_render
from .panels import PanelRef, panel_index
from .promql import Sel, clean, dur, matcher_labels, num
from .signal import Queries, Signal, event_floor, tier_factor

#: The shortest window the SLI rules record, and the outage fast path's.
FIVE_MINUTES = 300.0
#: The SLI rule groups' evaluation interval, fixed because of :data:`SAMPLES_PER_5M`.
SLI_INTERVAL_SECONDS = 60
#: Samples per 5 m of a series recorded every minute: ``sum_over_time`` of 5 m increases
#: divided by this is an event count (each event sits in five consecutive 5 m increases).
SAMPLES_PER_5M = int(FIVE_MINUTES // SLI_INTERVAL_SECONDS)

__all__ = [
    "burn_event_floor",
    "burn_rate",
    "error_budget",
    "failure_class_signals",
    "fc_signals_with_scenarios",
    "slo_burn_signals",
    "slo_outage_signals",
    "slo_tiers",
    "window_events",
]


def failure_class_signals(spec: Spec) -> dict[str, list[Signal]]:
    """The signals of every *enabled* failure class, keyed by class id (in
    :func:`~steadystream.catalog.classes.failure_classes` order), each class's primary signal first.

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
    q = Queries(spec)
    labels = tuple(sorted(matcher_labels(spec).items()))
    panels = panel_index(spec)
    out: list[tuple[Signal, tuple[Any, ...]]] = []
    for record in failure_classes():
        fc = record.id
        override = spec.alerting.failure_classes.get(fc)  # type: ignore[call-overload]
        if override is not None and not override.enabled:
            continue
        for i, d in enumerate(record.signals(q)):
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
                runbook=runbook_url(spec, record.runbook),
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
    fast) and the tier's low-traffic floor (:func:`burn_event_floor` events in the long
    window, :func:`window_events`); it reads the recorded series of the generated SLI rules,
    so those must be loaded.
    """
    out: dict[str, list[Signal]] = {}
    base = matcher_labels(spec)
    panels = panel_index(spec)
    for slo in spec.slos:
        sel = Sel({**base, n.LABEL_SLO: slo.name})
        signals = []
        for tier in slo_tiers(spec, slo):
            factor = tier_factor(tier, spec.period)
            long_, short = dur(tier.long), dur(tier.short)
            expr = (
                f"{burn_rate(sel(n.slo_error_ratio(tier.long)), slo)}"
                f" and ({burn_rate(sel(n.slo_error_ratio(tier.short)), slo)} > {num(factor)})"
            )
            floor = burn_event_floor(spec, slo, factor)
            if floor > 0:
                expr += f" and ({window_events(sel, tier.long)} >= {floor})"
            own = slo.alerts.override(tier.severity)
            summary = (
                f"{slo.name}: error budget burning over {num(factor)}x as fast "
                f"as sustainable over {long_} and {short}"
            )
            signals.append(
                Signal(
                    failure_class=n.BURN_FAILURE_CLASS,
                    name=f"{slo.name}-{long_}-{short}",
                    alert=slo.alerts.name or n.ALERT_SLO_BURN,
                    expr=expr,
                    op=">",
                    threshold=factor,
                    unit="burn_rate",
                    description=_burn_description(spec, slo, tier, factor),
                    summary=_own_summary(slo, own) or summary,
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
                                **_own_labels(slo, own),
                                **base,
                                n.LABEL_SLO: slo.name,
                                n.LABEL_LONG: long_,
                                n.LABEL_SHORT: short,
                            }.items()
                        )
                    ),
                    annotations=_own_annotations(slo, own),
                )
            )
        out[slo.name] = signals
    return out


def slo_tiers(spec: Spec, slo: SLO) -> list[Tier]:
    """The tiers that alert for ``slo``: the enabled tiers, less those of a severity the SLO
    turns off (``alerts.page.enabled``/``alerts.ticket.enabled``), in spec order."""
    return [t for t in spec.alerting.tiers if t.enabled and slo.alerts.override(t.severity).enabled]


def _own_labels(slo: SLO, own: SLOAlertOverride) -> dict[str, str]:
    # The SLO's own labels, then its page or ticket labels; a 'severity' among them replaces
    # the tier's (Sloth's page/ticket severities are routing labels of their own).
    return {**slo.alerts.labels, **own.labels}


def _own_annotations(slo: SLO, own: SLOAlertOverride) -> tuple[tuple[str, str], ...]:
    merged = {**slo.alerts.annotations, **own.annotations}
    return tuple(sorted((k, v) for k, v in merged.items() if k != "summary"))


def _own_summary(slo: SLO, own: SLOAlertOverride) -> str | None:
    return {**slo.alerts.annotations, **own.annotations}.get("summary")


def error_budget(slo: SLO) -> float:
    """The error budget as printed in the rules (``1 - 0.95`` is ``0.05``, not
    ``0.050000000000000044``); every value a rule divides by is exactly this float."""
    return clean(slo.error_budget)


def burn_rate(ratio: str, slo: SLO) -> str:
    """The burn rate of ``slo`` from the PromQL of an error ratio: the ratio over the error
    budget as the rules print it (``1 - 0.95`` is ``0.05``), so 1 spends the budget in exactly
    one period. No rule records it: alerts, annotations and dashboards divide the recorded
    ratio, which costs nothing next to the ratio's range read."""
    return f"{ratio} / {num(error_budget(slo))}"


def window_events(sel: Sel, window: float) -> str:
    """The SLI events of the SLO selected by ``sel`` over ``window`` (the low-traffic guards'
    count), from the recorded 5 m increases: the 5 m series itself, or for a longer window
    the sum of its samples over the window divided by :data:`SAMPLES_PER_5M`. One series per
    SLO whatever the window, so a guard costs no read of the raw counters. The count trails
    the exact one by about half of 5 m, which at most delays a page at the floor by a couple
    of minutes (the generated promtool tests simulate this expression, minute by minute)."""
    if window == FIVE_MINUTES:
        return sel(n.SLO_TOTAL_5M)
    return f"sum_over_time({sel(n.SLO_TOTAL_5M)}[{dur(window)}]) / {SAMPLES_PER_5M}"


def burn_event_floor(spec: Spec, slo: SLO, factor: float) -> int:
    """Events the long window of a tier burning above ``factor`` must hold (0: no guard), so
    that no single bad event can fire it (:func:`~steadystream.catalog.signal.event_floor`)."""
    return event_floor(spec, clean(factor * clean(slo.error_budget)))


@per_render(copy=dict)
def slo_outage_signals(spec: Spec) -> dict[str, Signal]:
    """The hard-outage fast path of every SLO (none when ``alerting.outage`` is disabled),
    keyed by SLO name in spec order.

    ``expr`` is the SLO's bad share over the last 5 m, guarded by the events in those 5 m
    (:func:`~steadystream.catalog.signal.event_floor` of the threshold): a handful of failures
    at low traffic never pages. It fires at the first evaluation where most of the last 5
    minutes went bad, which in a hard outage is minute 3, while the fastest burn tier must
    first fill its long window with enough bad events.
    """
    outage = spec.alerting.outage
    if not outage.enabled:
        return {}
    base = matcher_labels(spec)
    panels = panel_index(spec)
    threshold = clean(outage.ratio)
    floor = event_floor(spec, threshold)
    out: dict[str, Signal] = {}
    for slo in spec.slos:
        own = slo.alerts.override(outage.severity)
        if not own.enabled:
            continue
        sel = Sel({**base, n.LABEL_SLO: slo.name})
        expr = sel(n.slo_error_ratio(FIVE_MINUTES))
        if floor > 0:
            expr += f" and ({window_events(sel, FIVE_MINUTES)} >= {floor})"
        out[slo.name] = Signal(
            failure_class=n.BURN_FAILURE_CLASS,
            name=f"{slo.name}-outage",
            alert=n.ALERT_SLO_OUTAGE,
            expr=expr,
            op=">",
            threshold=threshold,
            unit="ratio",
            description=f"the share of {slo.name} events that went bad over the last 5m",
            summary=f"{slo.name}: over {format_percent(threshold)} of events bad in the last 5m",
            severity=outage.severity,
            for_=outage.for_,
            runbook=runbook_url(spec, c.slo_runbook(slo.name)),
            dashboard=_panel_url(spec, panels, f"slo-{slo.name}-burn", c.BOARD_SLO_OVERVIEW),
            slo=slo.name,
            labels=tuple(sorted({**_own_labels(slo, own), **base, n.LABEL_SLO: slo.name}.items())),
            annotations=_own_annotations(slo, own),
        )
    return out


def _panel_url(spec: Spec, panels: dict[str, PanelRef], key: str, board: str) -> str:
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
