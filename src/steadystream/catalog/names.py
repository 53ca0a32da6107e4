"""Names of the recorded series, rule groups and alerts the rule generator writes.

Public so dashboards, runbooks and ``triage`` can query the recorded SLI series instead of
recomputing them. Every recorded SLO series carries the label ``slo`` plus the spec's matchers
(``selector`` and ``service``), for example::

    steadystream:slo_error_ratio:1h{job="chat-gateway",service="chat-gateway",slo="stream-errors"}

A window's burn rate is its error ratio over the error budget and a window's event count the
sum of the 5 m totals over five; neither is recorded
(:func:`steadystream.catalog.alerting.burn_rate`,
:func:`~steadystream.catalog.alerting.window_events`).
"""

from __future__ import annotations

from typing import Final

from ..spec import format_duration

# 5 m increases of the SLI's bad and total events; everything else is built from these.
SLO_BAD_5M: Final = "steadystream:slo_events_bad:increase5m"
SLO_TOTAL_5M: Final = "steadystream:slo_events_total:increase5m"
# The objective (0.95), as a series for dashboards and queries; the error budget is 1 minus it.
SLO_OBJECTIVE: Final = "steadystream:slo_objective"
# Share of the period's error budget not yet spent (1 = untouched, below 0 = overspent).
SLO_BUDGET_REMAINING: Final = "steadystream:slo_error_budget_remaining"

LABEL_SLO: Final = "slo"
LABEL_SEVERITY: Final = "severity"
LABEL_FAILURE_CLASS: Final = "failure_class"
LABEL_LONG: Final = "long"
LABEL_SHORT: Final = "short"

#: The ``failure_class`` label of SLO burn-rate alerts: they are symptoms, routed to the SLO's
#: own runbook, which lists the failure classes most likely behind the burn.
BURN_FAILURE_CLASS: Final = "error-budget-burn"

#: Alert name of every multi-window burn-rate alert; ``slo``, ``long`` and ``short`` tell them
#: apart.
ALERT_SLO_BURN: Final = "StreamSLOErrorBudgetBurn"

#: Alert name of the hard-outage fast path: most of an SLO's events bad over 5 m.
ALERT_SLO_OUTAGE: Final = "StreamSLOOutage"


def slo_error_ratio(window: float) -> str:
    """Bad / total SLI events over ``window`` seconds (a ratio of sums, event-weighted)."""
    return f"steadystream:slo_error_ratio:{format_duration(window)}"


def slo_group(service: str, slo: str) -> str:
    """Rule group recording one SLO's SLI."""
    return f"steadystream.{service}.slo.{slo}"


def burn_group(service: str) -> str:
    """Rule group of the burn-rate alerts."""
    return f"steadystream.{service}.slo-burn-alerts"


def failure_class_group(service: str) -> str:
    """Rule group of the failure-class alerts."""
    return f"steadystream.{service}.failure-class-alerts"
