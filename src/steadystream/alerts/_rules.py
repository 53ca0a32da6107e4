"""Spec -> Prometheus rule groups (plain data, serialised by :mod:`._render`).

Three kinds of group:

* one SLI group per SLO that records **counts, not ratios**: the bad and total events of each
  5 m, then, for every window, the ratio of ``sum_over_time`` of those increases. A window's
  ratio is therefore weighted by events (a busy hour counts more than a quiet one), windows of
  days stay cheap (one series per SLO, not one per label set), and a window without traffic
  has no sample at all instead of a NaN that would poison the period's budget;
* the multi-window, multi-burn-rate alerts (SRE Workbook ch. 5), one per SLO and enabled tier;
* the failure-class alerts, one per :class:`~steadystream.alerts.signals.Signal`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import conventions as c
from ..catalog import names as n
from ..catalog.alerting import (
    FIVE_MINUTES,
    SLI_INTERVAL_SECONDS,
    burn_rate,
    failure_class_signals,
    slo_burn_signals,
    slo_outage_signals,
    slo_tiers,
)
from ..catalog.classes import failure_classes
from ..catalog.promql import Sel, dur, matcher_labels, num, quote
from ..catalog.signal import Signal, format_threshold
from ..catalog.slo import generic_events, slo_what
from ..spec import SLO, Spec, format_percent


def raw_template_string(promql: str) -> str:
    """``promql`` as a Go template raw string (backquoted) for ``query`` in annotations."""
    if "`" in promql:
        raise ValueError(f"cannot embed a backquote in an annotation query: {promql!r}")
    return f"`{promql}`"


#: Windows every SLO records, on top of each enabled tier's windows and the period.
DEFAULT_WINDOWS: tuple[float, ...] = (300, 1800, 3600, 7200, 21600, 86400, 259200)


def windows(spec: Spec) -> tuple[float, ...]:
    """Every window the SLI groups record, shortest first: the defaults, each enabled tier's
    long and short window, and the period (windows longer than the period are dropped)."""
    out = set(DEFAULT_WINDOWS) | {spec.period}
    for tier in spec.alerting.tiers:
        if tier.enabled:
            out |= {tier.long, tier.short}
    return tuple(sorted(w for w in out if w <= spec.period))


# ------------------------------------------------------------------------- SLI recording rules
#: Windows up to this long are read from the raw counters (``increase`` over the window), as
#: Sloth does: exact and without lag, so a page fires the minute the burn crosses its factor.
#: Longer windows sum the recorded 5 m increases (cheap over days, one series per SLO), which
#: lags by half of 5 m, minutes that do not matter to a ticket or to the period's budget.
RAW_WINDOW_MAX = 21600.0


def raw_window(spec: Spec, window: float) -> bool:
    """Whether the SLI rules read ``window`` from the raw counters (else from the 5 m sums)."""
    return window <= RAW_WINDOW_MAX and window < spec.period


def _events(spec: Spec, slo: SLO, window: float) -> tuple[str, str]:
    """(bad, total) events of ``slo`` over ``window``, summed over the service.

    A generic PromQL indicator gives its queries with ``{{.window}}`` replaced by the window,
    read as counts (``values: rate`` multiplies them by the window's seconds), so the
    low-traffic guard and the event-weighted long windows count events as for stream metrics.
    """
    sel = Sel(matcher_labels(spec))
    w = dur(window)
    if slo.indicator.generic:
        return generic_events(slo.indicator, w, per_second=False)
    lat = slo.indicator.latency
    if lat is not None:
        total = f"sum(increase({sel(c.count(lat.metric))}[{w}]))"
        good = f"sum(increase({sel(c.bucket(lat.metric), le=c.le_label(lat.threshold_ms))}[{w}]))"
        # Count and bucket come from the same scrapes, but never let extrapolation make a
        # negative number of bad events.
        return f"clamp_min({total} - {good}, 0)", total
    errs = slo.indicator.errors
    assert errs is not None
    total = f"sum(increase({sel(errs.total)}[{w}]))"
    # No error has ever happened: the errors counter has no series, yet the SLI is 0, not
    # "no data" (which would hide the traffic from every window's denominator).
    bad = f"sum(increase({sel(errs.errors)}[{w}])) or 0 * {total}"
    return bad, total


def sli_group(spec: Spec, slo: SLO) -> dict[str, Any]:
    """The recording rules of one SLO: its 5 m bad and total events, its objective, the error
    ratio of every window and the share of the period's budget left.

    Nothing else is recorded: the burn rate of a window is its ratio over the error budget
    (:func:`~steadystream.catalog.alerting.burn_rate`) and a low-traffic guard's event count is
    a sum of the 5 m totals (:func:`~steadystream.catalog.alerting.window_events`), both
    computed by the alerts and dashboards that read them.
    """
    labels = {**matcher_labels(spec), n.LABEL_SLO: slo.name}
    sel = Sel(labels)
    bad, total = _events(spec, slo, FIVE_MINUTES)
    rules: list[dict[str, Any]] = [
        {"record": n.SLO_BAD_5M, "expr": bad, "labels": labels},
        {"record": n.SLO_TOTAL_5M, "expr": total, "labels": labels},
        {"record": n.SLO_OBJECTIVE, "expr": f"vector({num(slo.objective)})", "labels": labels},
    ]
    for w in windows(spec):
        if w == FIVE_MINUTES:
            ratio = f"{sel(n.SLO_BAD_5M)} / ({sel(n.SLO_TOTAL_5M)} > 0)"
        elif raw_window(spec, w):
            w_bad, w_total = _events(spec, slo, w)
            ratio = f"({w_bad}) / ({w_total} > 0)"
        else:
            ratio = (
                f"sum_over_time({sel(n.SLO_BAD_5M)}[{dur(w)}])"
                f" / (sum_over_time({sel(n.SLO_TOTAL_5M)}[{dur(w)}]) > 0)"
            )
        # The labels are already on the series; repeating them keeps each SLO's rules
        # distinct to `promtool check rules` (same name + labels across groups is an error).
        rules.append({"record": n.slo_error_ratio(w), "expr": ratio, "labels": labels})
    rules.append(
        {
            "record": n.SLO_BUDGET_REMAINING,
            "expr": f"1 - {burn_rate(sel(n.slo_error_ratio(spec.period)), slo)}",
            "labels": labels,
        }
    )
    return {
        "name": n.slo_group(spec.service, slo.name),
        # Fixed, because the event counts of the low-traffic guards divide by the samples per
        # 5 m (catalog.alerting.window_events).
        "interval": dur(SLI_INTERVAL_SECONDS),
        "rules": rules,
    }


# ------------------------------------------------------------------------ annotation templates
@dataclass(frozen=True)
class Piece:
    """Part of an annotation: the Go template text Prometheus expands, and the same text as
    Python renders it for given values (for the generated promtool tests)."""

    template: str
    render: Callable[[dict[str, Any]], str]


def lit(text: str) -> Piece:
    """Literal text (braces escaped would be needed; steadystream text never has ``{{``)."""
    return Piece(text, lambda ctx: text)


def expand(pieces: list[Piece]) -> str:
    """The annotation template."""
    return "".join(p.template for p in pieces)


def expected(pieces: list[Piece], ctx: dict[str, Any]) -> str:
    """The annotation as Prometheus expands it for the values in ``ctx``."""
    return "".join(p.render(ctx) for p in pieces)


def go_percent(v: float) -> str:
    """Prometheus' ``humanizePercentage``."""
    return f"{v * 100:.4g}%"


def go_duration(v: float) -> str:
    """Prometheus' ``humanizeDuration`` for values of at least one second."""
    sign = "-" if v < 0 else ""
    v = abs(v)
    if v < 1:
        return f"{sign}{v:.4g}s"
    whole = int(v)
    seconds, minutes = whole % 60, (whole // 60) % 60
    hours, days = (whole // 3600) % 24, whole // 86400
    if days:
        return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
    if hours:
        return f"{sign}{hours}h {minutes}m {seconds}s"
    if minutes:
        return f"{sign}{minutes}m {seconds}s"
    return f"{sign}{v:.4g}s"


_VALUE: dict[str, Piece] = {
    "ratio": Piece("{{ $value | humanizePercentage }}", lambda ctx: go_percent(ctx["value"])),
    "per_second": Piece('{{ $value | printf "%.3g" }}/s', lambda ctx: f"{ctx['value']:.3g}/s"),
    "ms": Piece('{{ $value | printf "%.0f" }} ms', lambda ctx: f"{ctx['value']:.0f} ms"),
    "burn_rate": Piece('{{ $value | printf "%.2f" }}x', lambda ctx: f"{ctx['value']:.2f}x"),
}


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def fc_description(signal: Signal) -> list[Piece]:
    """``The share of ... is 4.2% (alert above 1%).``"""
    word = "above" if signal.op == ">" else "below"
    limit = f"alert {word} {format_threshold(signal.threshold, signal.unit)}"
    if signal.unit == "bool":
        # A yes/no signal has no value worth printing: say what is true, and what it means.
        return [lit(f"{_sentence(signal.summary)} ({signal.description}).")]
    return [
        lit(f"{_sentence(signal.description)} is "),
        _VALUE[signal.unit],
        lit(f" ({limit})."),
    ]


def burn_description(
    spec: Spec, slo: SLO, signal: Signal, long_: float, short: float
) -> list[Piece]:
    """Burn rate now, budget left, time to exhaustion at this rate."""
    sel = Sel({**matcher_labels(spec), n.LABEL_SLO: slo.name})
    remaining = sel(n.SLO_BUDGET_REMAINING)
    # Budget left x period / burn rate: a burn rate of 1 spends the whole budget in one period.
    burn = burn_rate(sel(n.slo_error_ratio(long_)), slo)
    exhaustion = f"{remaining} * {num(spec.period)} / ({burn})"
    left = Piece(
        f"{{{{ with query {raw_template_string(remaining)} }}}}"
        "{{ . | first | value | humanizePercentage }}{{ else }}unknown{{ end }}",
        lambda ctx: "unknown" if ctx["remaining"] is None else go_percent(ctx["remaining"]),
    )

    def _tte(ctx: dict[str, Any]) -> str:
        t = ctx["exhaustion"]
        if t is None:
            return "time to exhaustion unknown"
        return f"exhausted in {go_duration(t)} at this rate" if t > 0 else "already exhausted"

    tte = Piece(
        f"{{{{ with query {raw_template_string(exhaustion)} }}}}"
        "{{ $t := . | first | value }}{{ if gt $t 0.0 }}exhausted in "
        "{{ humanizeDuration $t }} at this rate{{ else }}already exhausted{{ end }}"
        "{{ else }}time to exhaustion unknown{{ end }}",
        _tte,
    )
    share = format_percent(_tier_budget(spec, long_, short))
    return [
        lit(f"SLO {slo.name} ({slo_what(slo)}) is burning its {dur(spec.period)} error budget "),
        _VALUE["burn_rate"],
        lit(
            f" as fast as sustainable over {dur(long_)}, and above {num(signal.threshold)}x "
            f"over {dur(short)} too (alert above {num(signal.threshold)}x, which spends {share} "
            f"of the budget in {dur(long_)}). Budget left: "
        ),
        left,
        lit("; "),
        tte,
        lit("."),
    ]


def _tier_budget(spec: Spec, long_: float, short: float) -> float:
    for tier in spec.alerting.tiers:
        if tier.enabled and tier.long == long_ and tier.short == short:
            return tier.budget
    raise KeyError((long_, short))


# ------------------------------------------------------------------------------- alert rules
def _alert(signal: Signal, description: list[Piece]) -> dict[str, Any]:
    labels = {n.LABEL_SEVERITY: signal.severity, **dict(signal.labels)}
    labels[n.LABEL_FAILURE_CLASS] = signal.failure_class
    rule: dict[str, Any] = {
        "alert": signal.alert,
        "expr": signal.condition,
        "labels": labels,
        "annotations": {
            "summary": signal.summary,
            "description": expand(description),
            "runbook_url": signal.runbook,
            "dashboard_url": signal.dashboard,
            **dict(signal.annotations),
        },
    }
    if signal.for_:
        rule["for"] = dur(signal.for_)
    return rule


@dataclass(frozen=True)
class BurnAlert:
    """A burn-rate alert with what the promtool tests need to know about it."""

    slo: SLO
    signal: Signal
    long: float
    short: float
    description: list[Piece]


def burn_alerts(spec: Spec) -> list[BurnAlert]:
    """Every burn-rate alert, SLOs in spec order, tiers in spec order."""
    # Once for all SLOs: each call builds every SLO's signals (and the dashboards' panel
    # index), so calling it per SLO made generation quadratic in the number of SLOs.
    signals = slo_burn_signals(spec)
    out = []
    for slo in spec.slos:
        for tier, signal in zip(slo_tiers(spec, slo), signals[slo.name], strict=True):
            out.append(
                BurnAlert(
                    slo,
                    signal,
                    tier.long,
                    tier.short,
                    burn_description(spec, slo, signal, tier.long, tier.short),
                )
            )
    return out


def burn_group(spec: Spec) -> dict[str, Any]:
    """Every SLO's outage fast path, then its burn-rate tiers."""
    outages = [_alert(s, fc_description(s)) for s in slo_outage_signals(spec).values()]
    return {
        "name": n.burn_group(spec.service),
        "rules": outages + [_alert(b.signal, b.description) for b in burn_alerts(spec)],
    }


def failure_class_group(spec: Spec) -> dict[str, Any]:
    rules = [
        _alert(signal, fc_description(signal))
        for signals in failure_class_signals(spec).values()
        for signal in signals
    ]
    return {"name": n.failure_class_group(spec.service), "rules": rules}


def rule_groups(spec: Spec) -> list[dict[str, Any]]:
    """Every rule group, in evaluation order: SLIs first, so alerts read fresh samples."""
    groups = [sli_group(spec, slo) for slo in spec.slos]
    if any(t.enabled for t in spec.alerting.tiers):
        groups.append(burn_group(spec))
    fc = failure_class_group(spec)
    if fc["rules"]:
        groups.append(fc)
    return groups


# ----------------------------------------------------------------------- Alertmanager inhibits
_RANK = {"critical": 3, "page": 3, "warning": 2, "ticket": 2, "info": 1}


def _burn_inhibits(spec: Spec) -> list[dict[str, Any]]:
    """One SLO, one page: a burn alert silences the burn alerts of the same SLO that say the
    same thing later or less urgently.

    * a higher severity silences a lower one (a page silences the ticket);
    * within one severity, the tier with the shorter long window silences the longer ones (the
      1h page and the 6h page both fire in a hard outage; the 1h one is the one to act on);
    * the outage fast path silences every burn alert of its SLO: it pages first, and the burn
      pages that follow minutes later are the same incident.
    """
    service = matcher_labels(spec)[c.LABEL_SERVICE]
    common = [f"alertname={quote(n.ALERT_SLO_BURN)}", f"service={quote(service)}"]
    equal = sorted({*matcher_labels(spec), n.LABEL_SLO})
    tiers = [t for t in spec.alerting.tiers if t.enabled]
    rules: list[dict[str, Any]] = []
    severities = sorted({t.severity for t in tiers}, key=lambda s: (-_RANK[s], s))
    for src in severities:
        for dst in severities:
            if _RANK[src] > _RANK[dst]:
                rules.append(
                    {
                        "source_matchers": [*common, f"severity={quote(src)}"],
                        "target_matchers": [*common, f"severity={quote(dst)}"],
                        "equal": equal,
                    }
                )
    if spec.alerting.outage.enabled:
        rules.append(
            {
                "source_matchers": [
                    f"alertname={quote(n.ALERT_SLO_OUTAGE)}",
                    f"service={quote(service)}",
                ],
                "target_matchers": common,
                "equal": equal,
            }
        )
    for sev in severities:
        longs = sorted({t.long for t in tiers if t.severity == sev})
        for i, shorter in enumerate(longs):
            for longer in longs[i + 1 :]:
                rules.append(
                    {
                        "source_matchers": [
                            *common,
                            f"severity={quote(sev)}",
                            f"{n.LABEL_LONG}={quote(dur(shorter))}",
                        ],
                        "target_matchers": [
                            *common,
                            f"severity={quote(sev)}",
                            f"{n.LABEL_LONG}={quote(dur(longer))}",
                        ],
                        "equal": equal,
                    }
                )
    return rules


def _cause_inhibits(spec: Spec) -> list[dict[str, Any]]:
    """A symptom under its cause: while any alert of a class that explains another
    (:attr:`~steadystream.catalog.classes.FailureClass.explained_by`) fires for this service,
    the explained class's alerts are silenced. A retry storm during an upstream outage is the
    outage's consequence; the upstream-errors alert and its runbook are the ones to read."""
    service = matcher_labels(spec)[c.LABEL_SERVICE]
    enabled = failure_class_signals(spec)
    equal = sorted(matcher_labels(spec))
    rules: list[dict[str, Any]] = []
    for record in failure_classes():
        if record.id not in enabled:
            continue
        for cause in record.explained_by:
            if cause not in enabled:
                continue
            rules.append(
                {
                    "source_matchers": [
                        f"{n.LABEL_FAILURE_CLASS}={quote(cause)}",
                        f"service={quote(service)}",
                    ],
                    "target_matchers": [
                        f"{n.LABEL_FAILURE_CLASS}={quote(record.id)}",
                        f"service={quote(service)}",
                    ],
                    "equal": equal,
                }
            )
    return rules


def inhibit_rules(spec: Spec) -> list[dict[str, Any]]:
    """Alertmanager ``inhibit_rules``, so one incident pages once:

    * burn alerts of one SLO: a page silences the tickets, and the shortest-window page the
      longer-window pages of the same severity;
    * failure classes: a cause silences its symptoms (the registry's ``explained_by``).

    Every rule matches this service only and requires the spec's selector labels to be equal,
    so services sharing an Alertmanager never silence one another.
    """
    return _burn_inhibits(spec) + _cause_inhibits(spec)


def alertmanager_config(spec: Spec) -> dict[str, Any]:
    """A complete ``alertmanager.yml`` for this service's alerts: a route to one receiver
    (named after the service, with no integrations: add a pager or ticket integration, or
    copy the route, receiver and ``inhibit_rules`` into an existing configuration) and the
    :func:`inhibit_rules`. ``amtool check-config`` accepts it as it is."""
    service = matcher_labels(spec)[c.LABEL_SERVICE]
    group_by = sorted({"alertname", *matcher_labels(spec), n.LABEL_SLO, n.LABEL_FAILURE_CLASS})
    return {
        "route": {
            "receiver": service,
            "group_by": group_by,
            "routes": [
                {
                    "receiver": service,
                    "matchers": [f"service={quote(service)}"],
                    "group_by": group_by,
                }
            ],
        },
        "receivers": [{"name": service}],
        "inhibit_rules": inhibit_rules(spec),
    }
