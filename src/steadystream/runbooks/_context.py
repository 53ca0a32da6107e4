"""Everything a runbook template may print, computed from the spec.

Templates only format: every number is formatted here with the spec's own units
(``format_duration``/``format_percent``/``format_size``), every query is built with the
service's selector, and every link comes from the dashboard model, so a template cannot print a
value the spec does not hold.
"""

from __future__ import annotations

from typing import Any

from .. import conventions as c
from ..catalog import names as rec
from ..catalog.alerting import (
    burn_event_floor,
    failure_class_signals,
    slo_burn_signals,
    slo_outage_signals,
)
from ..catalog.classes import failure_classes, likely_classes
from ..catalog.faults import FAULT_PROFILES
from ..catalog.links import dashboard_title, runbook_url
from ..catalog.panels import PanelRef, panel_index, slo_panel_keys
from ..catalog.promql import Selector, quantile, ratio, sum_rate
from ..catalog.signal import Signal, format_threshold, tier_factor
from ..catalog.slo import error_ratio
from ..spec import SLO, Spec, format_duration, format_percent, format_size

#: Window of every ready-to-paste query: long enough to smooth one scrape, short enough to
#: show the incident you are in.
WINDOW = "5m"


def _rel(path: str) -> str:
    """A runbook's path relative to another runbook (they share one directory)."""
    return path.removeprefix(c.RUNBOOKS_DIR + "/")


def _panels(refs: dict[str, PanelRef], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {
            "title": refs[k].title,
            "url": refs[k].url,
            "uid": refs[k].uid,
            "panel_id": refs[k].panel_id,
        }
        for k in keys
    ]


def _policy(spec: Spec) -> dict[str, Any]:
    t = spec.stream.timeouts
    r = spec.stream.retry
    f = spec.stream.flow_control
    i = spec.stream.ingress
    burst = i.burst if i.burst is not None else max(1, round(i.rate))
    worst_buffer = f.max_buffer * i.max_concurrent
    return {
        "dial": format_duration(t.dial),
        "tls": format_duration(t.tls_handshake),
        "first_token": format_duration(t.first_token),
        "first_token_ms": f"{t.first_token * 1000:g}",
        "idle": format_duration(t.stream_idle),
        "idle_ms": f"{t.stream_idle * 1000:g}",
        "total": format_duration(t.total),
        "max_retries": r.max_retries,
        "attempts": r.max_retries + 1,
        "base_backoff": format_duration(r.base_backoff),
        "max_backoff": format_duration(r.max_backoff),
        "jitter": format_percent(r.jitter),
        "retry_budget": format_percent(r.budget),
        "retry_budget_ratio": f"{r.budget:g}",
        "retry_floor": f"{r.min_per_second:g}/s",
        "retry_after_cap": format_duration(r.retry_after_cap),
        "max_buffer": format_size(f.max_buffer),
        "on_overflow": f.on_overflow,
        "checkpoint_every": spec.stream.checkpoint.every,
        "max_concurrent": i.max_concurrent,
        "ingress_rate": f"{i.rate:g}/s",
        "ingress_burst": burst,
        "worst_buffer": format_size(worst_buffer),
        "min_events": spec.alerting.min_events,
        "period": format_duration(spec.period),
    }


def _queries(spec: Spec) -> dict[str, str]:
    """Ready-to-paste PromQL for the runbooks, with the service's concrete selector."""
    sel = Selector.concrete(spec)
    w = WINDOW

    def by(metric: str, *labels: str, **extra: str) -> str:
        return sum_rate(sel, metric, labels, w, **extra)

    def q(metric: str, quant: float, *labels: str) -> str:
        return quantile(sel, metric, quant, labels, w)

    requests = by(c.REQUESTS_TOTAL)
    open_or_wait = f"=~{c.PHASE_OPEN}|{c.PHASE_FIRST_TOKEN_WAIT}"
    return {
        "requests": requests,
        "requests_by_outcome": by(c.REQUESTS_TOTAL, c.LABEL_OUTCOME),
        "requests_absent": f"absent({sel(c.REQUESTS_TOTAL, model=False)})",
        "requests_by_instance": by(c.REQUESTS_TOTAL, "instance"),
        "errors_by_class": by(c.ERRORS_TOTAL, c.LABEL_ERROR_CLASS),
        "error_ratio": ratio(by(c.ERRORS_TOTAL), requests),
        "errors_by_model": by(c.ERRORS_TOTAL, c.LABEL_MODEL, c.LABEL_ERROR_CLASS),
        "errors_upstream": by(
            c.ERRORS_TOTAL,
            c.LABEL_ERROR_CLASS,
            c.LABEL_MODEL,
            error_class="=~"
            + "|".join(
                (
                    c.ERROR_CLASS_UPSTREAM_5XX,
                    c.ERROR_CLASS_UPSTREAM_4XX,
                    c.ERROR_CLASS_UPSTREAM_EVENT,
                    c.ERROR_CLASS_RESPONSE_FAILED,
                    c.ERROR_CLASS_RESPONSE_INCOMPLETE,
                )
            ),
        ),
        "aborts_by_model": by(c.ABORT_CLIENT_SLOW_TOTAL, c.LABEL_MODEL),
        "abort_ratio": ratio(by(c.ABORT_CLIENT_SLOW_TOTAL), requests),
        "aborts_by_instance": by(c.ABORT_CLIENT_SLOW_TOTAL, "instance"),
        "phase_p95": q(c.PHASE_DURATION, 0.95, c.LABEL_PHASE),
        "consumer_p95": (
            f"histogram_quantile(0.95, sum by (le) (rate("
            f"{sel(c.bucket(c.PHASE_DURATION), phase=c.PHASE_CONSUMER)}[{w}])))"
        ),
        "bytes_by_model": by(c.BYTES_TOTAL, c.LABEL_MODEL),
        "idle_by_model": by(c.TIMEOUT_IDLE_TOTAL, c.LABEL_MODEL),
        "gap_p99_by_model": q(c.CHUNK_GAP, 0.99, c.LABEL_MODEL),
        "ttft_p95_by_model": q(c.FIRST_TOKEN_LATENCY, 0.95, c.LABEL_MODEL),
        "ttft_p99": q(c.FIRST_TOKEN_LATENCY, 0.99),
        "timeouts_by_phase": by(c.TIMEOUTS_TOTAL, c.LABEL_PHASE),
        "first_token_timeouts": by(c.TIMEOUTS_TOTAL, c.LABEL_MODEL, phase=c.TIMEOUT_FIRST_TOKEN),
        "open_vs_wait_p95": (
            f"histogram_quantile(0.95, sum by (le, phase) (rate("
            f"{sel(c.bucket(c.PHASE_DURATION), phase=open_or_wait)}[{w}])))"
        ),
        # Sums with sums: in-flight over the capacity the same processes export (each
        # process's cap is its stream_ingress_max_concurrent). The fleet's share is what the
        # cascade alert reads; per instance shows whether one process is the hot spot.
        "in_flight": f"sum by (instance) ({sel(c.IN_FLIGHT, model=False)})",
        "in_flight_share": (
            f"sum({sel(c.IN_FLIGHT, model=False)}) / "
            f"sum({sel(c.INGRESS_MAX_CONCURRENT, model=False)})"
        ),
        "in_flight_share_by_instance": (
            f"sum by (instance) ({sel(c.IN_FLIGHT, model=False)}) / "
            f"sum by (instance) ({sel(c.INGRESS_MAX_CONCURRENT, model=False)})"
        ),
        "rejections": (f"sum by (reason) (rate({sel(c.REJECTED_TOTAL, model=False)}[{w}]))"),
        "retries_by_reason": by(c.RETRY_TOTAL, c.LABEL_REASON),
        "retry_ratio": ratio(by(c.RETRY_TOTAL), requests),
        "budget_exhausted": by(c.RETRY_BUDGET_EXHAUSTED_TOTAL),
        "retries_429": by(c.RETRY_TOTAL, c.LABEL_MODEL, reason=c.RETRY_REASON_429),
        "rate_limited": by(c.ERRORS_TOTAL, c.LABEL_MODEL, error_class=c.ERROR_CLASS_RATE_LIMITED),
        "retries_5xx": by(c.RETRY_TOTAL, c.LABEL_MODEL, reason=c.RETRY_REASON_5XX),
        "reassembly_by_kind": by(c.REASSEMBLY_ERRORS_TOTAL, c.LABEL_KIND, c.LABEL_MODEL),
        "reassembly_by_provider": by(c.REASSEMBLY_ERRORS_TOTAL, c.LABEL_PROVIDER),
        "resume_failure_ratio": ratio(
            by(c.RESUME_FAILURE_TOTAL),
            f"{by(c.RESUME_SUCCESS_TOTAL)} + {by(c.RESUME_FAILURE_TOTAL)}",
        ),
        "resume_success": by(c.RESUME_SUCCESS_TOTAL),
        "resume_failures_by_model": by(c.RESUME_FAILURE_TOTAL, c.LABEL_MODEL),
        "recovery_p99": q(c.RECOVERY_LATENCY, 0.99),
        "resume_failed_errors": by(
            c.ERRORS_TOTAL, c.LABEL_MODEL, error_class=c.ERROR_CLASS_RESUME_FAILED
        ),
    }


def _slo_facts(spec: Spec, slo: SLO) -> dict[str, Any]:
    lat = slo.indicator.latency
    errs = slo.indicator.errors
    sel = Selector.concrete(spec)
    if slo.indicator.generic:
        ind = slo.indicator
        indicator = (
            "an event of the SLO's total_query that its errors_query does not count"
            if ind.errors_query is not None
            else "an event its good_query counts, out of its total_query"
        )
    elif lat is not None:
        indicator = (
            f"an observation of {lat.metric} at or below {format_duration(lat.threshold)} "
            f'(bucket le="{c.le_label(lat.threshold_ms)}")'
        )
    else:
        assert errs is not None
        indicator = f"an event counted in {errs.total} but not in {errs.errors}"
    return {
        "name": slo.name,
        "description": slo.description,
        "kind": slo.kind,
        "objective": format_percent(slo.objective),
        "budget": format_percent(slo.error_budget),
        "indicator": indicator,
        "threshold": format_duration(lat.threshold) if lat is not None else None,
        "metric": lat.metric if lat is not None else errs.errors if errs is not None else "",
        "runbook": _rel(c.slo_runbook(slo.name)),
        "error_ratio_5m": error_ratio(sel, slo, WINDOW),
        "error_ratio_1h": error_ratio(sel, slo, "1h"),
        # A generic PromQL SLO measures the service's own metrics: no failure class of the
        # stream wrapper is implied.
        "classes": ()
        if slo.indicator.generic
        else likely_classes(slo.kind, lat.metric if lat is not None else None),
    }


def _tiers(spec: Spec, slo: SLO) -> list[dict[str, Any]]:
    out = []
    for tier in spec.alerting.tiers:
        factor = tier.factor(spec.period)
        # At exactly the threshold burn rate, the whole budget lasts period / factor.
        exhaust = spec.period / factor
        page = tier.severity in ("critical", "page")
        out.append(
            {
                "severity": tier.severity,
                "long": format_duration(tier.long),
                "short": format_duration(tier.short),
                "budget_share": format_percent(tier.budget),
                "factor": f"{tier_factor(tier, spec.period):g}",
                # The error ratio at the factor the rules print (0.9333x), so the two columns
                # agree digit for digit (0.9333%, not 0.933333%).
                "error_ratio": format_percent(
                    round(tier_factor(tier, spec.period) * slo.error_budget, 8)
                ),
                "for": format_duration(tier.for_) if tier.for_ is not None else "none",
                "floor": burn_event_floor(spec, slo, tier_factor(tier, spec.period)),
                "exhaust": _human(exhaust),
                "enabled": tier.enabled and slo.alerts.override(tier.severity).enabled,
                "urgency": (
                    "none: this tier is disabled in the spec, so it never fires"
                    if not tier.enabled
                    else "page: act now, the budget is going fast"
                    if page
                    else "ticket: fix within working hours, before the budget runs out"
                ),
            }
        )
    return out


def _human(seconds: float) -> str:
    """A rough, readable duration: ``2d 4h``, ``5h``, ``50m``."""
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {mins}m" if mins else f"{hours}h"
    return f"{mins}m"


def _signal(sig: Signal) -> dict[str, Any]:
    """One alert signal as the templates print it."""
    return {
        "alert": sig.alert,
        "name": sig.name,
        "summary": sig.summary,
        "description": sig.description,
        "op": sig.op,
        "threshold": format_threshold(sig.threshold, sig.unit),
        # The comparison as a reader sees it; a yes/no signal (absent metrics) has none.
        "when": ""
        if sig.unit == "bool"
        else f"{sig.op} {format_threshold(sig.threshold, sig.unit)}",
        "severity": sig.severity,
        "for": format_duration(sig.for_) if sig.for_ else "none",
        "expr": sig.expr,
    }


def base_context(spec: Spec, header: str, spec_path: str) -> dict[str, Any]:
    """Values every template sees. ``spec_path`` is the spec as the user named it, for the
    reproduction commands (``steadystream demo --spec <spec_path>``)."""
    refs = panel_index(spec)
    classes = failure_classes()
    profiles = {
        fc.id: [{"name": p, "description": FAULT_PROFILES[p]} for p in fc.profiles]
        for fc in classes
    }
    sel = Selector.concrete(spec)
    return {
        "header": header,
        "spec_path": spec_path,
        "service": spec.service,
        "selector": sel.matchers(model=False),
        "policy": _policy(spec),
        "q": _queries(spec),
        "window": WINDOW,
        "profiles": profiles,
        "dashboards": {
            board: {
                "title": dashboard_title(spec.service, board),
                "uid": c.dashboard_uid(spec.service, board),
            }
            for board in c.BOARDS
        },
        "grafana_base": spec.links.grafana,
        "owners": spec.owners.model_dump(),
        "classes": [
            {
                "id": fc.id,
                "title": fc.title,
                "runbook": _rel(fc.runbook),
                "url": runbook_url(spec, fc.runbook),
                "signs": fc.signs,
                "panels": _panels(refs, fc.panels),
            }
            for fc in classes
        ],
        "slos": [_slo_facts(spec, slo) for slo in spec.slos],
        "latency_slos": [
            _slo_facts(spec, slo) for slo in spec.slos if slo.indicator.latency is not None
        ],
        "alerts": {
            fc: [_signal(sig) for sig in sigs] for fc, sigs in failure_class_signals(spec).items()
        },
        "burn_alert": rec.ALERT_SLO_BURN,
        "burn_signals": {
            name: [_signal(sig) for sig in sigs] for name, sigs in slo_burn_signals(spec).items()
        },
        "outage_alert": rec.ALERT_SLO_OUTAGE,
        "outage_signals": {name: _signal(sig) for name, sig in slo_outage_signals(spec).items()},
        "budget_remaining": {
            slo.name: sel(rec.SLO_BUDGET_REMAINING, model=False, **{rec.LABEL_SLO: slo.name})
            for slo in spec.slos
        },
        "_refs": refs,
        "_tiers": {slo.name: _tiers(spec, slo) for slo in spec.slos},
    }


def class_context(base: dict[str, Any], failure_class: str) -> dict[str, Any]:
    """The context of one failure class's runbook."""
    this = next(cl for cl in base["classes"] if cl["id"] == failure_class)
    related = [s for s in base["slos"] if failure_class in s["classes"]]
    return {
        **base,
        "fc": this,
        "related_slos": related,
        "fc_alerts": base["alerts"].get(failure_class, []),
    }


def slo_context(base: dict[str, Any], spec: Spec, slo: SLO) -> dict[str, Any]:
    """The context of one SLO's error-budget-burn runbook."""
    facts = next(s for s in base["slos"] if s["name"] == slo.name)
    refs: dict[str, PanelRef] = base["_refs"]
    sli, budget, burn, _ = slo_panel_keys(slo.name)
    keys = (burn, budget, sli)
    by_id = {cl["id"]: cl for cl in base["classes"]}
    return {
        **base,
        "slo": facts,
        "burn_alert": slo.alerts.name or base["burn_alert"],
        "tiers": base["_tiers"][slo.name],
        "slo_alerts": base["burn_signals"][slo.name],
        "slo_outage": base["outage_signals"].get(slo.name),
        "slo_budget_remaining": base["budget_remaining"][slo.name],
        "slo_panels": _panels(refs, keys),
        "check": [by_id[fc] for fc in facts["classes"]],
    }
