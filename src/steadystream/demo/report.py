"""The demo's SLO report, and the registry math it needs.

:class:`MetricsView` reads a prometheus_client registry the way a scrape does;
:func:`slo_results` computes each SLO's verdict from it exactly as the generated recording rules
do (good events are the histogram bucket at the threshold); :func:`failure_class_counts` names
the counters that reveal each failure class; :func:`build_report` puts these beside the driver's
own :class:`ClientTally` in a :class:`DemoReport`.
"""

from __future__ import annotations

import math
from collections import Counter as _Tally
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import conventions as c
from ..catalog.classes import failure_classes
from ..spec import SLO, Spec, format_percent

__all__ = [
    "ClientTally",
    "DemoReport",
    "MetricsView",
    "SLOResult",
    "build_report",
    "failure_class_counts",
    "histogram_quantile",
    "slo_results",
]


# ----------------------------------------------------------------------------- registry math
def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a cumulative histogram, interpolated as Prometheus does.

    ``buckets`` are ``(upper bound, cumulative count)`` pairs including ``+Inf``. Returns None
    with no observations. A quantile in the ``+Inf`` bucket returns the highest finite bound,
    as ``histogram_quantile`` does, so a report never shows infinity.
    """
    pairs = sorted(buckets)
    if not pairs or pairs[-1][1] <= 0:
        return None
    total = pairs[-1][1]
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, cum in pairs:
        if cum >= rank:
            if math.isinf(bound):
                return prev_bound
            if cum == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (cum - prev_count)
        prev_bound, prev_count = bound, cum
    return prev_bound


class MetricsView:
    """A snapshot of one service's steadystream samples in a prometheus_client registry.

    It reads the registry the way a scrape does (``registry.collect()``), keeps the samples whose
    ``service`` label is ``service``, and answers the sums the SLO report needs. Label subsets are
    matched exactly, so ``total("stream_requests_total", outcome="error")`` is
    ``sum(stream_requests_total{outcome="error"})``.
    """

    def __init__(self, registry: Any, service: str) -> None:
        self.samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in registry.collect():
            for sample in family.samples:
                if sample.labels.get(c.LABEL_SERVICE) != service:
                    continue
                self.samples.setdefault(sample.name, []).append(
                    (dict(sample.labels), float(sample.value))
                )

    def total(self, name: str, **match: str) -> float:
        """Sum of every sample called ``name`` whose labels include ``match``."""
        return sum(
            v
            for labels, v in self.samples.get(name, ())
            if all(labels.get(k) == want for k, want in match.items())
        )

    def by_label(self, name: str, label: str) -> dict[str, float]:
        """``sum by (label) (name)``, omitting zero sums."""
        out: dict[str, float] = {}
        for labels, v in self.samples.get(name, ()):
            key = labels.get(label, "")
            out[key] = out.get(key, 0.0) + v
        return {k: v for k, v in sorted(out.items()) if v}

    def buckets(self, metric: str, **match: str) -> list[tuple[float, float]]:
        """Cumulative ``(le, count)`` pairs of a histogram, summed over every other label."""
        sums: dict[float, float] = {}
        for labels, v in self.samples.get(c.bucket(metric), ()):
            if all(labels.get(k) == want for k, want in match.items()):
                le = float(labels["le"])
                sums[le] = sums.get(le, 0.0) + v
        return sorted(sums.items())

    def quantile(self, metric: str, q: float, **match: str) -> float | None:
        """``histogram_quantile(q, sum by (le) (metric_bucket))`` for this snapshot."""
        return histogram_quantile(q, self.buckets(metric, **match))

    def count_le(self, metric: str, threshold_ms: float) -> float:
        """Observations at or below ``threshold_ms`` (the bucket the SLO rules select)."""
        want = c.le_label(threshold_ms)
        return sum(
            v for labels, v in self.samples.get(c.bucket(metric), ()) if labels.get("le") == want
        )


@dataclass(frozen=True)
class SLOResult:
    """One SLO's verdict over the demo run.

    ``events`` and ``bad`` are the SLI counts (for a latency SLO, observations and those above the
    threshold). ``good_ratio`` is ``1 - bad / events`` and ``passed`` is ``good_ratio >=
    objective``; both are None when there were no events (no data is not a pass). ``quantile_ms``
    is the latency at the objective's quantile (p95 for a 95 % objective), for reading at a glance.
    """

    name: str
    kind: str
    objective: float
    events: float
    bad: float
    good_ratio: float | None
    passed: bool | None
    threshold_ms: float | None = None
    quantile_ms: float | None = None

    @property
    def target_text(self) -> str:
        """The objective in the words of the spec: ``95% within 2.5s`` or ``at most 1% failed``."""
        if self.kind == "latency" and self.threshold_ms is not None:
            return f"{format_percent(self.objective)} within {_secs(self.threshold_ms)}"
        return f"at most {format_percent(1 - self.objective)} failed"

    @property
    def target_share_text(self) -> str:
        """The target as a share to set beside :attr:`share_text`: ``95%`` or ``at most 1%``."""
        if self.kind == "latency" and self.threshold_ms is not None:
            return format_percent(self.objective)
        return f"at most {format_percent(1 - self.objective)}"

    @property
    def measured_text(self) -> str:
        """The measured value in the target's own terms, so the two compare at a glance:
        ``97.07% within 2.5s (p95 0.95s)`` or ``5.13% failed``; ``no events`` without data."""
        quantile = self.quantile_text
        return self.share_text + (f" ({quantile})" if quantile else "")

    @property
    def share_text(self) -> str:
        """The share the verdict is computed from: ``97.07% within 2.5s`` or ``5.13% failed``."""
        if self.good_ratio is None:
            return "no events"
        if self.kind == "latency" and self.threshold_ms is not None:
            return f"{self.good_ratio:.2%} within {_secs(self.threshold_ms)}"
        return f"{1 - self.good_ratio:.2%} failed"

    @property
    def quantile_text(self) -> str:
        """The latency at the objective's quantile, ``p95 0.95s`` ('' for an error SLO or
        without data): interpolated like ``histogram_quantile``, for reading only."""
        if self.kind != "latency" or self.quantile_ms is None:
            return ""
        return f"p{_pct_label(self.objective)} {self.quantile_ms / 1000:.2f}s"

    @property
    def counts_text(self) -> str:
        """The SLI counts behind the share: ``273 measured, 8 over 2.5s`` or ``273 streams,
        14 failed``."""
        if self.kind == "latency" and self.threshold_ms is not None:
            return f"{int(self.events)} measured, {int(self.bad)} over {_secs(self.threshold_ms)}"
        return f"{int(self.events)} streams, {int(self.bad)} failed"

    @property
    def verdict(self) -> str:
        """``PASS``, ``FAIL`` or ``NO DATA``."""
        return "NO DATA" if self.passed is None else ("PASS" if self.passed else "FAIL")


def _secs(ms: float) -> str:
    return f"{ms / 1000:g}s" if ms >= 1000 else f"{ms:g}ms"


def _pct_label(objective: float) -> str:
    text = f"{objective * 100:.2f}".rstrip("0").rstrip(".")
    return text


def slo_results(spec: Spec, view: MetricsView) -> tuple[SLOResult, ...]:
    """Every SLO of ``spec`` measured from ``view``, with the recording rules' arithmetic."""
    return tuple(_slo_result(slo, view) for slo in spec.slos)


def _slo_result(slo: SLO, view: MetricsView) -> SLOResult:
    lat = slo.indicator.latency
    if lat is not None:
        events = view.total(c.count(lat.metric))
        good = view.count_le(lat.metric, lat.threshold_ms)
        bad = max(events - good, 0.0)
        quantile = view.quantile(lat.metric, slo.objective)
    else:
        errs = slo.indicator.errors
        assert errs is not None
        events = view.total(errs.total)
        bad = view.total(errs.errors)
        quantile = None
    ratio = None if events <= 0 else 1.0 - bad / events
    return SLOResult(
        name=slo.name,
        kind=slo.kind,
        objective=slo.objective,
        events=events,
        bad=bad,
        good_ratio=ratio,
        passed=None if ratio is None else ratio >= slo.objective,
        threshold_ms=None if lat is None else lat.threshold_ms,
        quantile_ms=quantile,
    )


def _retries(view: MetricsView, reason: str) -> float:
    return view.by_label(c.RETRY_TOTAL, c.LABEL_REASON).get(reason, 0.0)


def _errors(view: MetricsView, *classes: str) -> float:
    errors = view.by_label(c.ERRORS_TOTAL, c.LABEL_ERROR_CLASS)
    return sum(errors.get(k, 0.0) for k in classes)


def _timeouts(view: MetricsView, *phases: str) -> float:
    timeouts = view.by_label(c.TIMEOUTS_TOTAL, c.LABEL_PHASE)
    return sum(timeouts.get(p, 0.0) for p in phases)


#: The counters that reveal each failure class in one process's registry, mirroring its
#: alert: 429 retries and rate-limited errors are upstream-rate-limit, 5xx retries and
#: upstream error events are upstream-errors, a refused retry (budget spent) is retry-storm,
#: a stream rejected at ingress is load-shedding, and so on. no-traffic has no counter: it
#: is the absence of all of them. Every key is a registered class (checked at import).
_EVIDENCE: dict[str, Callable[[MetricsView], float]] = {
    c.FC_SLOW_CONSUMER: lambda v: v.total(c.ABORT_CLIENT_SLOW_TOTAL),
    c.FC_IDLE_STALL: lambda v: v.total(c.TIMEOUT_IDLE_TOTAL),
    c.FC_FIRST_TOKEN_TIMEOUT: lambda v: _timeouts(v, c.TIMEOUT_FIRST_TOKEN),
    c.FC_TIMEOUT_CASCADE: lambda v: _timeouts(v, c.TIMEOUT_TOTAL, c.TIMEOUT_DIAL, c.TIMEOUT_TLS),
    c.FC_LOAD_SHEDDING: lambda v: v.total(c.REQUESTS_TOTAL, outcome=c.OUTCOME_REJECTED),
    c.FC_RETRY_STORM: lambda v: v.total(c.RETRY_BUDGET_EXHAUSTED_TOTAL),
    c.FC_UPSTREAM_RATE_LIMIT: lambda v: (
        _retries(v, c.RETRY_REASON_429) + _errors(v, c.ERROR_CLASS_RATE_LIMITED)
    ),
    c.FC_UPSTREAM_ERRORS: lambda v: (
        _retries(v, c.RETRY_REASON_5XX)
        + _errors(
            v,
            c.ERROR_CLASS_UPSTREAM_5XX,
            c.ERROR_CLASS_UPSTREAM_EVENT,
            c.ERROR_CLASS_RESPONSE_FAILED,
        )
    ),
    c.FC_BROKEN_CHUNKS: lambda v: v.total(c.REASSEMBLY_ERRORS_TOTAL),
    c.FC_RESUME_FAILURE: lambda v: v.total(c.RESUME_FAILURE_TOTAL),
}
_unknown = sorted(set(_EVIDENCE) - {fc.id for fc in failure_classes()})
if _unknown:
    raise ImportError(f"demo evidence for unregistered failure classes: {_unknown}")


def failure_class_counts(view: MetricsView) -> dict[str, float]:
    """How often each failure class showed in the metrics, by the counters that reveal it,
    for every class of the registry (in its order) that has such a counter."""
    return {fc.id: _EVIDENCE[fc.id](view) for fc in failure_classes() if fc.id in _EVIDENCE}


# ----------------------------------------------------------------------------- the report
@dataclass
class ClientTally:
    """What the demo's consumers saw, counted by the driver (independent of the metrics)."""

    started: int = 0
    ok: int = 0
    failed: int = 0
    abandoned: int = 0
    content_bytes: int = 0
    errors: _Tally[str] = field(default_factory=_Tally)

    @property
    def finished(self) -> int:
        return self.ok + self.failed + self.abandoned

    @property
    def in_flight(self) -> int:
        return self.started - self.finished


@dataclass(frozen=True)
class DemoReport:
    """The result of one demo run (see :func:`run_demo`).

    ``streams_*`` and ``errors`` are the demo's own count; ``slos``, ``failure_classes``,
    ``retries`` and ``resumes_*`` come from the exported metrics; ``injected`` is what the
    upstream reports it injected, by fault (empty when it does not say).
    """

    service: str
    faults: str
    seed: int
    streams: int
    duration_s: float
    interrupted: bool
    streams_started: int
    streams_ok: int
    streams_failed: int
    streams_abandoned: int
    content_bytes: int
    errors: dict[str, int]
    slos: tuple[SLOResult, ...]
    failure_classes: dict[str, float]
    retries: dict[str, float]
    resumes_ok: float
    resumes_failed: float
    metrics_url: str | None = None
    injected: dict[str, int] = field(default_factory=dict)

    @property
    def streams_finished(self) -> int:
        return self.streams_ok + self.streams_failed + self.streams_abandoned

    @property
    def error_rate(self) -> float | None:
        """Failed / finished streams, as the demo counted them (None before any finished)."""
        n = self.streams_finished
        return None if n == 0 else self.streams_failed / n

    def slo(self, name: str) -> SLOResult:
        """The result of the SLO called ``name``."""
        for result in self.slos:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON, with each SLO's verdict spelled out."""
        data = asdict(self)
        data["slos"] = [
            {
                **asdict(s),
                "verdict": s.verdict,
                "target": s.target_text,
                "measured": s.measured_text,
            }
            for s in self.slos
        ]
        data["streams_finished"] = self.streams_finished
        data["error_rate"] = self.error_rate
        return data

    def render_text(self) -> str:
        """The closing SLO report as plain text (the CLI prints it with rich on a TTY)."""
        lines = [
            f"steadystream demo report: service {self.service}, faults {self.faults!r}, "
            f"seed {self.seed}, {self.streams} concurrent streams, {self.duration_s:.1f}s"
            + (" (interrupted)" if self.interrupted else ""),
            f"streams: {self.streams_finished} finished: {self.streams_ok} ok, "
            f"{self.streams_failed} failed, {self.streams_abandoned} abandoned; "
            f"{self.content_bytes} content bytes",
            "",
            "SLOs:",
        ]
        width = max((len(s.name) for s in self.slos), default=0)
        for s in self.slos:
            lines.append(
                f"  {s.verdict:<7}  {s.name:<{width}}  {s.measured_text}; "
                f"target {s.target_text} ({s.counts_text})"
            )
        lines += ["", "failure classes seen (events in the metrics that reveal each):"]
        seen = {k: v for k, v in self.failure_classes.items() if v}
        if not seen:
            lines.append("  none")
        for name, value in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {name:<22} {int(value)}")
        unseen = sorted(k for k, v in self.failure_classes.items() if not v)
        if unseen:
            lines.append(f"  not seen in this run: {', '.join(unseen)}")
        retries = ", ".join(f"{k}={int(v)}" for k, v in self.retries.items()) or "none"
        lines.append(
            f"retries: {retries}; resumes: {int(self.resumes_ok)} ok, "
            f"{int(self.resumes_failed)} failed"
        )
        if self.errors:
            errs = ", ".join(f"{k}={v}" for k, v in sorted(self.errors.items()))
            lines.append(f"errors seen by the consumers: {errs}")
        if self.injected:
            inj = ", ".join(f"{k}={v}" for k, v in sorted(self.injected.items()))
            lines.append(f"faults injected by the upstream: {inj}")
        return "\n".join(lines) + "\n"


def build_report(
    *,
    spec: Spec,
    registry: Any,
    tally: ClientTally,
    faults: str,
    seed: int,
    streams: int,
    duration_s: float,
    interrupted: bool,
    metrics_url: str | None,
    injected: Mapping[str, int] | None = None,
) -> DemoReport:
    """Assemble a :class:`DemoReport` from the driver's tally and the registry's metrics."""
    view = MetricsView(registry, spec.service)
    return DemoReport(
        service=spec.service,
        faults=faults,
        seed=seed,
        streams=streams,
        duration_s=duration_s,
        interrupted=interrupted,
        streams_started=tally.started,
        streams_ok=tally.ok,
        streams_failed=tally.failed,
        streams_abandoned=tally.abandoned,
        content_bytes=tally.content_bytes,
        errors=dict(sorted(tally.errors.items())),
        slos=slo_results(spec, view),
        failure_classes=failure_class_counts(view),
        retries=view.by_label(c.RETRY_TOTAL, c.LABEL_REASON),
        resumes_ok=view.total(c.RESUME_SUCCESS_TOTAL),
        resumes_failed=view.total(c.RESUME_FAILURE_TOTAL),
        metrics_url=metrics_url,
        injected=dict(injected or {}),
    )
