"""The SLO overview board: per SLO, where it stands, how much budget is left, how fast it burns.

Each SLO gets a row: the SLI over the SLO period against the objective, the error budget left,
the burn rate over each alerting window with every tier's threshold drawn (a line crossed is
an alert about to fire), and the SLI over time. Firing alerts show as annotations.

The panels read the series the generated recording rules write
(:mod:`steadystream.catalog.names`), not the raw histograms: the board then shows exactly what
the alerts evaluate, and a 28-day window costs one series lookup instead of a month of raw
samples on every refresh.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import conventions as c
from ..catalog import names as rec
from ..catalog.alerting import burn_rate
from ..catalog.panels import slo_panel_keys
from ..catalog.promql import Selector
from ..catalog.slo import slo_summary, slo_windows
from ..spec import SLO, Spec, format_duration, format_percent
from ._model import Board, Line, Panel, Query, assemble
from ._render import alert_annotation

_PAGE_SEVERITIES = ("critical", "page")
#: Window of the "SLI over time" panel: the shortest the rules record.
_TREND_WINDOW = 300.0


def _recorded(spec: Spec, slo: SLO) -> Callable[[str], str]:
    """``name{<selector>,service="$service",slo="<slo>"}`` for a recorded SLO series: the
    rules label every recorded series with the spec's matchers and the SLO's name."""
    sel = Selector.grafana(spec)

    def series(name: str) -> str:
        return sel(name, model=False, **{rec.LABEL_SLO: slo.name})

    return series


def _slo_panels(spec: Spec, slo: SLO) -> tuple[Panel, ...]:
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
        Query(burn_rate(recorded(rec.slo_error_ratio(w)), slo), f"{format_duration(w)} window")
        for w in slo_windows(spec)
    )
    sli, budget_key, burn, trend = slo_panel_keys(slo.name)
    return (
        Panel(
            key=sli,
            kind="stat",
            description=(
                f"{slo.description or slo_summary(slo)} Share of good events over the whole SLO "
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
            key=budget_key,
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
            key=burn,
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
            key=trend,
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
    )


def slo_overview(spec: Spec) -> Board:
    """The SLO overview board for ``spec``."""
    return Board(
        name=c.BOARD_SLO_OVERVIEW,
        title="SLO overview",
        rows=assemble(
            spec,
            c.BOARD_SLO_OVERVIEW,
            (panel for slo in spec.slos for panel in _slo_panels(spec, slo)),
        ),
        annotations=(alert_annotation(spec),),
    )
