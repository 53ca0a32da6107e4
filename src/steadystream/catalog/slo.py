"""What an SLO measures, as queries and as words: its bad and total events over a window, its
error ratio, its alerting windows and its one-line summaries."""

from __future__ import annotations

from .. import conventions as c
from ..spec import SLO, Spec, format_duration, format_percent
from .promql import Selector, num, ratio

__all__ = ["error_ratio", "slo_events", "slo_summary", "slo_what", "slo_windows"]


def slo_events(sel: Selector, slo: SLO, window: str) -> tuple[str, str]:
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
    bad, total = slo_events(sel, slo, window)
    return ratio(bad, total)


def slo_summary(slo: SLO) -> str:
    """``95% of stream_first_token_latency_ms within 2.5s``: an SLO in a few words."""
    lat = slo.indicator.latency
    if lat is not None:
        within = format_duration(lat.threshold)
        return f"{format_percent(slo.objective)} of {lat.metric} within {within}"
    errs = slo.indicator.errors
    assert errs is not None
    return f"at most {format_percent(slo.error_budget)} of {errs.total} in {errs.errors}"


def slo_windows(spec: Spec) -> tuple[float, ...]:
    """The long windows of the enabled tiers, shortest first, each once (seconds)."""
    return tuple(sorted({t.long for t in spec.alerting.tiers if t.enabled}))


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
