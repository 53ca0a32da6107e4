"""What an SLO measures, as queries and as words: its bad and total events over a window, its
error ratio, its alerting windows and its one-line summaries."""

from __future__ import annotations

import re

from .. import conventions as c
from ..spec import SLO, Spec, format_duration, format_percent
from ..spec.model import WINDOW_PLACEHOLDER, Indicator
from ..spec.units import parse_duration
from .promql import Selector, num, ratio

__all__ = [
    "error_ratio",
    "generic_events",
    "slo_events",
    "slo_summary",
    "slo_what",
    "slo_windows",
    "with_window",
]


def with_window(query: str, window: str) -> str:
    """A generic SLI query with its ``{{.window}}`` placeholder replaced by ``window``, and its
    line breaks folded (rule files and annotations stay one line per query)."""
    filled = WINDOW_PLACEHOLDER.sub(window, query)
    return re.sub(r"\s*\n\s*", " ", filled.strip())


def generic_events(ind: Indicator, window: str, *, per_second: bool) -> tuple[str, str]:
    """(bad, total) of a generic PromQL indicator over ``window``: events per second with
    ``per_second``, else events in the window.

    The queries' values are read as ``values`` says (``rate``: per second, so a count is the
    value times the window's seconds; ``count``: per window). Each is summed into one series,
    and a bad-events query without series counts as 0 while there is traffic, as for the
    stream counters.
    """
    assert ind.total_query is not None
    seconds = num(parse_duration(window))
    if ind.per_second == per_second:
        scale = ""
    elif per_second:
        scale = f" / {seconds}"
    else:
        scale = f" * {seconds}"
    total = f"sum({with_window(ind.total_query, window)}){scale}"
    if ind.good_query is not None:
        good = f"sum({with_window(ind.good_query, window)}){scale}"
        # No good event yet (every request failed since the series began) is 0 good events.
        return f"clamp_min({total} - ({good} or 0 * {total}), 0)", total
    assert ind.errors_query is not None
    bad = f"sum({with_window(ind.errors_query, window)}){scale}"
    return f"({bad} or 0 * {total})", total


def slo_events(sel: Selector, slo: SLO, window: str) -> tuple[str, str]:
    """(bad events/s, all events/s) of ``slo`` over ``window``, summed over the service (a
    generic PromQL indicator is taken as written: the spec's selector is not added to it)."""
    if slo.indicator.generic:
        return generic_events(slo.indicator, window, per_second=True)
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
    if slo.indicator.generic:
        return f"{format_percent(slo.objective)} of events good (PromQL indicator)"
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
    if slo.indicator.generic:
        which = "errors_query" if slo.indicator.errors_query is not None else "good_query"
        return f"{format_percent(slo.objective)} of total_query events good by its {which}"
    lat = slo.indicator.latency
    if lat is not None:
        return (
            f"{format_percent(slo.objective)} of {lat.metric} observations within "
            f"{num(lat.threshold_ms)} ms"
        )
    errs = slo.indicator.errors
    assert errs is not None
    return f"{format_percent(slo.objective)} of {errs.total} without {errs.errors}"
