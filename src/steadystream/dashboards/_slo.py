"""The SLO overview board: per SLO, where it stands, how much budget is left, how fast it burns.

Each SLO gets a row: the SLI over the SLO period against the objective, the error budget left,
the burn rate over each alerting window with every tier's threshold drawn (a line crossed is
an alert about to fire), and the SLI over time. Firing alerts show as annotations.

The panels read the series the generated recording rules write
(:mod:`steadystream.alerts.names`), not the raw histograms: the board then shows exactly what
the alerts evaluate, and a 28-day window costs one series lookup instead of a month of raw
samples on every refresh.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import conventions as c
from ..alerts import names as rec
from ..spec import SLO, Spec, format_duration, format_percent
from ._model import Board, Line, Panel, Query, Row
from ._promql import Selector, ratio
from ._render import alert_annotation

_PAGE_SEVERITIES = ("critical", "page")
#: Window of the "SLI over time" panel: the shortest the rules record.
_TREND_WINDOW = 300.0


def _events(sel: Selector, slo: SLO, window: str) -> tuple[str, str]:
    """(bad events/s, all events/s) of ``slo`` over ``window``, summed over the service."""
    lat = slo.indicator.latency
    if lat is not None:
        total = f"sum(rate({sel(c.count(lat.metric), model=False)}[{window}]))"
        good = (
            f"sum(rate({sel(c.bucket(lat.metric), model=False, le=c.le_label(lat.threshold_ms))}"
            f"[{window}]))"
        )
        return f"({total} - {good})", total
    errs = slo.indicator.errors
    assert errs is not None
    return (
        f"sum(rate({sel(errs.errors, model=False)}[{window}]))",
        f"sum(rate({sel(errs.total, model=False)}[{window}]))",
    )


def error_ratio(sel: Selector, slo: SLO, window: str) -> str:
    """Bad events / all events of ``slo`` over ``window``; no sample when there was no traffic."""
    bad, total = _events(sel, slo, window)
    return ratio(bad, total)


def _what(slo: SLO) -> str:
    lat = slo.indicator.latency
    if lat is not None:
        within = format_duration(lat.threshold)
        return f"{format_percent(slo.objective)} of {lat.metric} within {within}"
    errs = slo.indicator.errors
    assert errs is not None
    return f"at most {format_percent(slo.error_budget)} of {errs.total} in {errs.errors}"


def _recorded(spec: Spec, slo: SLO) -> Callable[[str], str]:
    """``name{<selector>,service="$service",slo="<slo>"}`` for a recorded SLO series: the
    rules label every recorded series with the spec's matchers and the SLO's name."""
    sel = Selector.grafana(spec)

    def series(name: str) -> str:
        return sel(name, model=False, **{rec.LABEL_SLO: slo.name})

    return series


def slo_windows(spec: Spec) -> tuple[float, ...]:
    """The long windows of the enabled tiers, shortest first, each once (seconds)."""
    return tuple(sorted({t.long for t in spec.alerting.tiers if t.enabled}))


def _slo_row(spec: Spec, slo: SLO) -> Row:
    period = format_duration(spec.period)
    budget = slo.error_budget
    runbook = (c.slo_runbook(slo.name),)
    tiers = [t for t in spec.alerting.tiers if t.enabled]
    burn_lines = tuple(
        Line(
            # Rounded as the rules print it (alerts.tier_factor), so line and alert agree.
            round(t.factor(spec.period), 4),
            "red" if t.severity in _PAGE_SEVERITIES else "orange",
            f"{t.severity} {format_duration(t.long)}/{format_duration(t.short)}",
        )
        for t in tiers
    )
    recorded = _recorded(spec, slo)
    burn_queries = tuple(
        Query(recorded(rec.slo_burn_rate(w)), f"{format_duration(w)} window")
        for w in slo_windows(spec)
    )
    key = slo.name
    return Row(
        f"SLO {slo.name}: {_what(slo)}",
        (
            Panel(
                key=f"slo-{key}-sli",
                title=f"{slo.name}: SLI over {period} (objective {format_percent(slo.objective)})",
                kind="stat",
                description=(
                    f"{slo.description or _what(slo)} Share of good events over the whole SLO "
                    f"period; red below the objective of {format_percent(slo.objective)}."
                ),
                unit="percentunit",
                queries=(Query(f"1 - {recorded(rec.slo_error_ratio(spec.period))}", "SLI"),),
                lines=(Line(round(slo.objective, 9), "green", "objective"),),
                base_color="red",
                runbooks=runbook,
                width=6,
            ),
            Panel(
                key=f"slo-{key}-budget",
                title=f"{slo.name}: error budget remaining ({period})",
                kind="stat",
                description=(
                    f"1 - (bad share over {period}) / {format_percent(budget)} budget. Below 0 the "
                    "SLO is broken for the period; orange under a quarter left."
                ),
                unit="percentunit",
                queries=(Query(recorded(rec.SLO_BUDGET_REMAINING), "remaining"),),
                lines=(Line(0.0, "orange", "exhausted"), Line(0.25, "green", "a quarter left")),
                base_color="red",
                runbooks=runbook,
                width=6,
            ),
            Panel(
                key=f"slo-{key}-burn",
                title=f"{slo.name}: burn rate by window",
                kind="timeseries",
                description=(
                    "How fast the error budget is spent: 1 = exactly on pace to use it all by "
                    f"the end of the {period} period. Each line is an alert tier's threshold "
                    "(budget share x period / long window); a tier fires when both its long "
                    "and its short window burn above its line."
                ),
                unit="suffix:×",
                queries=burn_queries,
                lines=burn_lines,
                runbooks=runbook,
                min=0,
                width=12,
            ),
            Panel(
                key=f"slo-{key}-sli-trend",
                title=f"{slo.name}: SLI over time",
                kind="timeseries",
                description=(
                    f"Share of good events per {format_duration(_TREND_WINDOW)}; dips below the "
                    "objective line spend budget."
                ),
                unit="percentunit",
                queries=(Query(f"1 - {recorded(rec.slo_error_ratio(_TREND_WINDOW))}", "SLI"),),
                lines=(Line(round(slo.objective, 9), "green", "objective"),),
                base_color="red",
                runbooks=runbook,
                width=24,
                height=6,
            ),
        ),
    )


def slo_overview(spec: Spec) -> Board:
    """The SLO overview board for ``spec``."""
    return Board(
        name=c.BOARD_SLO_OVERVIEW,
        title="SLO overview",
        rows=tuple(_slo_row(spec, slo) for slo in spec.slos),
        annotations=(alert_annotation(spec),),
    )
