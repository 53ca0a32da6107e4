"""The failure-class registry: one frozen record per class, read by every consumer.

A failure class is a way a streaming service breaks under load (a retry storm, an idle stall,
broken chunks...). Its :class:`FailureClass` record holds everything about it: the id and
title, the signals its alerts fire on (a builder of :class:`~steadystream.catalog.signal.
SignalDef` from the spec), the dashboard panels that diagnose it, the runbook template, the
simulator profiles that reproduce it, and the classes that explain it when both are active.
Spec validation, the rule, dashboard and runbook generators, ``triage``, the demo and the
simulator all iterate :func:`failure_classes`; nothing else lists the classes.

Adding a class: its id in :mod:`steadystream.conventions`, its record here, and its runbook
template ``runbooks/templates/fc-<id>.md.j2``. A missing piece fails at import (ids, panels,
profiles) or in the tests (templates), never as a KeyError in the middle of a render.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .. import conventions as c
from ..spec import format_duration, format_percent, format_size
from .faults import FAULT_PROFILES
from .panels import STREAM_INTERNALS_KEYS
from .promql import clean, dur, num
from .signal import Queries, SignalDef

__all__ = [
    "FailureClass",
    "explained_by",
    "failure_class",
    "failure_classes",
    "likely_classes",
    "registered",
]


@dataclass(frozen=True)
class FailureClass:
    """One failure class.

    ``signals`` builds the class's alert signals from the spec (primary first; an
    ``alerting.failure_classes.<id>.threshold`` override applies to the primary one).
    ``panels`` are stream-internals panel keys, the most telling first: the runbook links
    them, and each of those panels links back to the runbook. ``signs`` is one line on how the
    class shows, for the SLO runbooks' checklist. ``profiles`` are ``simulate --faults``
    profiles that reproduce it, the main one first (none for classes the client or the
    traffic causes). ``explained_by`` lists classes that cause this one: when both are active,
    ``triage`` ranks this one after them. ``template`` is the runbook's jinja2 template,
    looked up in ``template_dir`` (``None``: the templates shipped with steadystream).
    """

    id: str
    title: str
    signs: str
    signals: Callable[[Queries], list[SignalDef]]
    panels: tuple[str, ...]
    profiles: tuple[str, ...] = ()
    explained_by: tuple[str, ...] = ()
    template_dir: Path | None = None
    template: str = field(default="")

    def __post_init__(self) -> None:
        if not self.template:
            object.__setattr__(self, "template", f"fc-{self.id}.md.j2")
        if not self.panels:
            raise ValueError(f"failure class {self.id!r}: at least one panel must show it")
        unknown = [p for p in self.panels if p not in STREAM_INTERNALS_KEYS]
        if unknown:
            raise ValueError(f"failure class {self.id!r}: unknown panels {unknown}")
        unknown = [p for p in self.profiles if p not in FAULT_PROFILES]
        if unknown:
            raise ValueError(f"failure class {self.id!r}: unknown fault profiles {unknown}")

    @property
    def runbook(self) -> str:
        """The runbook's path, relative to the output directory."""
        return c.failure_class_runbook(self.id)


# --------------------------------------------------------------------------- signal builders
#: What a buffer-cap breach does under each overflow policy (``stream.flow_control``): the
#: counter counts breaches under all three, but only ``terminate`` cuts the stream.
_OVERFLOW_EFFECT = {
    "terminate": "streams cut with ClientTooSlow",
    "pause": "buffer-cap breaches per stream (the reader paused the upstream)",
    "drop": "buffer-cap breaches per stream (keep-alives and progress events shed, then the "
    "reader paused the upstream)",
}


def _slow_consumer(q: Queries) -> list[SignalDef]:
    fc = q.spec.stream.flow_control
    effect = _OVERFLOW_EFFECT[fc.on_overflow]
    what = f"the share of {effect}" if fc.on_overflow == "terminate" else effect
    return [
        SignalDef(
            "client-slow-aborts",
            "StreamSlowConsumerAborts",
            q.traffic_guard(q.per_stream(c.ABORT_CLIENT_SLOW_TOTAL)),
            ">",
            0.01,
            "ratio",
            f"{what} because the consumer fell behind the {format_size(fc.max_buffer)} buffer "
            f"cap (on_overflow={fc.on_overflow})",
            "Consumers are too slow to keep up with their streams",
            "warning",
            600,
            scenario=("per_stream", c.ABORT_CLIENT_SLOW_TOTAL, {}),
            panel="slow-aborts",
        )
    ]


def _idle_stall(q: Queries) -> list[SignalDef]:
    idle_ms = q.spec.stream.timeouts.stream_idle * 1000
    return [
        SignalDef(
            "idle-timeouts",
            "StreamIdleTimeouts",
            q.traffic_guard(q.per_stream(c.TIMEOUT_IDLE_TOTAL)),
            ">",
            0.01,
            "ratio",
            "idle timeouts per stream (no content for "
            f"{format_duration(q.spec.stream.timeouts.stream_idle)})",
            "Streams stall mid-response and hit the idle timeout",
            "warning",
            600,
            scenario=("per_stream", c.TIMEOUT_IDLE_TOTAL, {}),
            panel="idle-timeouts",
        ),
        SignalDef(
            "chunk-gap-p99",
            "StreamChunkGapNearIdleTimeout",
            q.p99(c.CHUNK_GAP),
            ">",
            q.quantile_threshold(c.CHUNK_GAP, idle_ms / 2),
            "ms",
            f"the p99 gap between content chunks (idle timeout: {num(idle_ms)} ms)",
            "Gaps between chunks approach the idle timeout",
            "warning",
            900,
            scenario=("p99", c.CHUNK_GAP),
            panel="chunk-gap",
        ),
    ]


def _first_token_timeout(q: Queries) -> list[SignalDef]:
    ft = q.spec.stream.timeouts.first_token
    return [
        SignalDef(
            "first-token-timeouts",
            "StreamFirstTokenTimeouts",
            q.traffic_guard(q.per_stream(c.TIMEOUTS_TOTAL, phase=c.TIMEOUT_FIRST_TOKEN)),
            ">",
            0.02,
            "ratio",
            f"first-token timeouts ({format_duration(ft)}) per stream",
            "Streams time out before their first token",
            "warning",
            600,
            scenario=("per_stream", c.TIMEOUTS_TOTAL, {c.LABEL_PHASE: c.TIMEOUT_FIRST_TOKEN}),
            panel="timeouts-by-phase",
        ),
        SignalDef(
            "first-token-p99",
            "StreamFirstTokenLatencyNearTimeout",
            q.p99(c.FIRST_TOKEN_LATENCY),
            ">",
            q.quantile_threshold(c.FIRST_TOKEN_LATENCY, ft * 1000 * 0.8),
            "ms",
            f"the p99 time to first token (first-token timeout: {num(ft * 1000)} ms)",
            "Time to first token approaches the first-token timeout",
            "warning",
            900,
            scenario=("p99", c.FIRST_TOKEN_LATENCY),
            panel="ttft-quantiles",
        ),
    ]


def _timeout_cascade(q: Queries) -> list[SignalDef]:
    cap = q.spec.stream.ingress.max_concurrent
    # Sums with sums: every process exports its own in-flight count and its own capacity
    # (stream_ingress_max_concurrent), so the fleet's share of capacity in use is right for
    # any number of workers, and no process's cap is ever compared with the fleet's load.
    # Each gauge is read at its peak over half the window, not at one instant: in a cascade
    # callers back off between failed streams, so in-flight dips below the cap and climbs
    # back, and a single scrape taken in a dip would reset the alert's `for` and hide the
    # cascade from triage. Half the window holds at least two scrapes (the window holds four).
    peak_seconds = q.window_seconds / 2
    peak = dur(peak_seconds)
    in_flight = (
        f"sum(max_over_time({q.sel(c.IN_FLIGHT)}[{peak}])) / "
        f"(sum(max_over_time({q.sel(c.INGRESS_MAX_CONCURRENT)}[{peak}])) > 0)"
    )
    phases = (
        f"count(sum by ({c.LABEL_PHASE}) (increase({q.sel(c.TIMEOUTS_TOTAL)}[{q.window}])) > 0)"
        " >= 2"
    )
    return [
        SignalDef(
            "in-flight-with-timeouts",
            "StreamTimeoutCascade",
            f"{in_flight} and on() ({phases})",
            ">",
            0.8,
            "ratio",
            f"in-flight streams at their peak over {peak} as a share of the ingress capacity, "
            f"summed over every process (stream_ingress_max_concurrent; {cap} per process), "
            "with timeouts rising in two or more phases at once",
            "Timeouts in several phases with streams piling up toward the ingress cap",
            "critical",
            300,
            scenario=("cascade", cap, peak_seconds),
            panel="in-flight",
        )
    ]


def _load_shedding(q: Queries) -> list[SignalDef]:
    ingress = q.spec.stream.ingress
    rejected = q.inc(c.REQUESTS_TOTAL, outcome=c.OUTCOME_REJECTED)
    return [
        SignalDef(
            "rejected-share",
            "StreamLoadShedding",
            q.guard(f"{rejected} / ({q.arrivals()} > 0)", q.arrivals()),
            ">",
            0.05,
            "ratio",
            "the share of arriving streams rejected at ingress (cap: "
            f"{ingress.max_concurrent} concurrent per process, {num(ingress.rate)}/s)",
            "Ingress is shedding load: callers are being turned away",
            "warning",
            300,
            scenario=(
                "share",
                c.REQUESTS_TOTAL,
                {c.LABEL_OUTCOME: c.OUTCOME_REJECTED},
            ),
            panel="rejections",
        )
    ]


def _retry_storm(q: Queries) -> list[SignalDef]:
    retry = q.spec.stream.retry
    # The budget allows `budget` retries per request plus `min_per_second` whatever the
    # traffic, so a quiet service can still retry: only retries beyond that floor count
    # against the share, or a healthy service at 2 streams/s pages on its first few retries.
    floor = clean(retry.min_per_second * q.window_seconds)  # over the signal's window
    beyond = f"clamp_min({q.inc(c.RETRY_TOTAL)} - {num(floor)}, 0)"
    return [
        SignalDef(
            "retry-ratio",
            "StreamRetryStorm",
            q.traffic_guard(f"{beyond} / ({q.requests()} > 0)"),
            ">",
            retry.budget,
            "ratio",
            f"retries per admitted stream beyond the budget's floor of "
            f"{num(retry.min_per_second)}/s (retry budget: {format_percent(retry.budget)} of "
            f"requests plus {num(retry.min_per_second)}/s)",
            "Retries exceed the retry budget",
            "critical",
            300,
            scenario=(
                "per_stream",
                c.RETRY_TOTAL,
                {c.LABEL_REASON: c.RETRY_REASON_NETWORK},
                floor,
            ),
            panel="retry-ratio",
        ),
        SignalDef(
            "retry-budget-exhausted",
            "StreamRetryBudgetExhausted",
            q.rate(c.RETRY_BUDGET_EXHAUSTED_TOTAL),
            ">",
            0,
            "per_second",
            "retries refused per second because the shared retry budget is spent",
            "The retry budget is spent; retries are being refused",
            "warning",
            600,
            scenario=("rate", c.RETRY_BUDGET_EXHAUSTED_TOTAL, {}),
            panel="retry-budget-exhausted",
        ),
    ]


def _upstream_rate_limit(q: Queries) -> list[SignalDef]:
    return [
        SignalDef(
            "rate-limit-retries",
            "StreamUpstreamRateLimited",
            q.rate(c.RETRY_TOTAL, reason=c.RETRY_REASON_429),
            ">",
            0.1,
            "per_second",
            "retries after an upstream 429 per second",
            "The upstream is rate-limiting this service",
            "warning",
            600,
            scenario=("rate", c.RETRY_TOTAL, {c.LABEL_REASON: c.RETRY_REASON_429}),
            panel="rate-limits",
        ),
        SignalDef(
            "rate-limited-streams",
            "StreamRateLimitFailures",
            q.traffic_guard(q.per_stream(c.ERRORS_TOTAL, error_class=c.ERROR_CLASS_RATE_LIMITED)),
            ">",
            0.01,
            "ratio",
            "the share of streams that failed because the upstream kept answering 429",
            "Streams fail on upstream rate limits despite retries",
            "warning",
            300,
            scenario=(
                "per_stream",
                c.ERRORS_TOTAL,
                {c.LABEL_ERROR_CLASS: c.ERROR_CLASS_RATE_LIMITED},
            ),
            panel="rate-limits",
        ),
    ]


_UPSTREAM_ERROR_CLASSES = (
    c.ERROR_CLASS_UPSTREAM_5XX,
    c.ERROR_CLASS_UPSTREAM_4XX,
    c.ERROR_CLASS_UPSTREAM_EVENT,
    c.ERROR_CLASS_RESPONSE_FAILED,
)


def _upstream_errors(q: Queries) -> list[SignalDef]:
    classes = "|".join(_UPSTREAM_ERROR_CLASSES)
    return [
        SignalDef(
            "upstream-error-streams",
            "StreamUpstreamErrors",
            q.traffic_guard(q.per_stream(c.ERRORS_TOTAL, error_class=f"=~{classes}")),
            ">",
            0.01,
            "ratio",
            "the share of streams that ended in an upstream error "
            f"({', '.join(_UPSTREAM_ERROR_CLASSES)})",
            "Streams end in upstream errors",
            "warning",
            300,
            scenario=(
                "per_stream",
                c.ERRORS_TOTAL,
                {c.LABEL_ERROR_CLASS: c.ERROR_CLASS_UPSTREAM_5XX},
            ),
            panel="errors-by-class",
        ),
        SignalDef(
            "upstream-5xx-retries",
            "StreamUpstream5xxRetries",
            q.traffic_guard(q.per_stream(c.RETRY_TOTAL, reason=c.RETRY_REASON_5XX)),
            ">",
            0.05,
            "ratio",
            "retries after an upstream 5xx per stream",
            "The upstream answers 5xx to many attempts",
            "warning",
            600,
            scenario=("per_stream", c.RETRY_TOTAL, {c.LABEL_REASON: c.RETRY_REASON_5XX}),
            panel="retries-by-reason",
        ),
    ]


def _broken_chunks(q: Queries) -> list[SignalDef]:
    return [
        SignalDef(
            "reassembly-errors",
            "StreamBrokenChunks",
            q.traffic_guard(q.per_stream(c.REASSEMBLY_ERRORS_TOTAL)),
            ">",
            0.01,
            "ratio",
            "reassembly errors per admitted stream (split UTF-8, malformed SSE or JSON, broken "
            "fences)",
            "Streams arrive with broken chunks",
            "warning",
            300,
            scenario=(
                "per_stream",
                c.REASSEMBLY_ERRORS_TOTAL,
                {c.LABEL_KIND: c.REASSEMBLY_UTF8},
            ),
            panel="reassembly-errors",
        )
    ]


def _resume_failure(q: Queries) -> list[SignalDef]:
    failed = q.inc(c.RESUME_FAILURE_TOTAL)
    # A service that never resumed successfully has no success series; count it as zero so a
    # first failure is still a 100 % failure ratio rather than "no data".
    succeeded = f"({q.inc(c.RESUME_SUCCESS_TOTAL)} or vector(0))"
    recovery_ms = next(
        (
            slo.indicator.latency.threshold_ms
            for slo in q.spec.slos
            if slo.indicator.latency is not None
            and slo.indicator.latency.metric == c.RECOVERY_LATENCY
        ),
        8000.0,
    )
    return [
        SignalDef(
            "resume-failure-ratio",
            "StreamResumeFailures",
            q.guard(f"{failed} / (({failed} + {succeeded}) > 0)", f"({failed} + {succeeded})"),
            ">",
            0.1,
            "ratio",
            "the share of resumes that failed (diverging replay, no resumable source, refused)",
            "Interrupted streams fail to resume",
            "warning",
            600,
            scenario=("resume",),
            panel="resumes",
        ),
        SignalDef(
            "recovery-p99",
            "StreamRecoverySlow",
            q.p99(c.RECOVERY_LATENCY),
            ">",
            q.quantile_threshold(c.RECOVERY_LATENCY, recovery_ms),
            "ms",
            "the p99 recovery time after an interruption",
            "Resumed streams take too long to deliver content again",
            "warning",
            900,
            scenario=("p99", c.RECOVERY_LATENCY),
            panel="recovery-latency",
        ),
    ]


def _no_traffic(q: Queries) -> list[SignalDef]:
    # Steady traffic: at least min_events streams per 5 m over the hour before the silence.
    # Below that, a quiet hour is a quiet night, and silence after it pages nobody.
    steady = max(1, q.spec.alerting.min_events) * 12
    # Every stream ends within the total timeout, so in a window of twice that (at least the
    # signals' window) an open stream that never finishes is a hang, not a long answer.
    hung_seconds = max(q.window_seconds, math.ceil(2 * q.spec.stream.timeouts.total / 60) * 60)
    hung_window = format_duration(hung_seconds)
    return [
        SignalDef(
            "traffic-stopped",
            "StreamTrafficStopped",
            # "or vector(0)": metrics that vanish (a broken scrape) read as no traffic too.
            f"({q.rate(c.REQUESTS_TOTAL)} or on() vector(0)) and on() "
            f"(sum(increase({q.sel(c.REQUESTS_TOTAL)}[1h] offset {q.window})) >= {steady})",
            "<",
            0.001,
            "per_second",
            f"streams finishing per second over {q.window}, after an hour with at least {steady} "
            "(traffic that stopped dead)",
            "Traffic stopped dead: no streams finish where there were many an hour ago",
            "critical",
            300,
            scenario=("silence", steady),
            panel="outcomes",
        ),
        SignalDef(
            "nothing-finishes",
            "StreamNothingFinishes",
            # Streams are open, yet none has finished for longer than the total timeout
            # allows: the service hangs, whatever its traffic was before.
            f"({q.rate(c.REQUESTS_TOTAL, hung_window)} or on() vector(0)) and on() "
            f"(sum({q.sel(c.IN_FLIGHT)}) > 0)",
            "<",
            0.001,
            "per_second",
            f"streams finishing per second over {hung_window} while streams are in flight",
            "Streams are open but none finishes: the service hangs",
            "critical",
            300,
            scenario=("hung", hung_seconds),
            panel="outcomes",
        ),
        SignalDef(
            "metrics-absent",
            "StreamMetricsAbsent",
            f"absent({q.sel(c.REQUESTS_TOTAL)})",
            ">",
            0,
            "bool",
            f"no {c.REQUESTS_TOTAL} series matches {{{q.sel.matchers()}}}",
            "The stream metrics are missing: the instrumentation or the scrape is broken",
            "warning",
            600,
            scenario=("absent",),
            panel="outcomes",
        ),
    ]


# --------------------------------------------------------------------------------- the records
_BUILTIN: tuple[FailureClass, ...] = (
    FailureClass(
        c.FC_SLOW_CONSUMER,
        "Slow consumer",
        "slow-client aborts rising; the consumer phase dominates stream time",
        _slow_consumer,
        ("slow-aborts", "phase-durations", "bytes", "errors-by-class"),
    ),
    FailureClass(
        c.FC_IDLE_STALL,
        "Idle stall",
        "idle timeouts rising; chunk-gap p99 close to the stream_idle budget",
        _idle_stall,
        ("chunk-gap", "idle-timeouts", "retries-by-reason", "resumes"),
        profiles=("stall", "keepalive-only"),
        explained_by=(c.FC_TIMEOUT_CASCADE,),
    ),
    FailureClass(
        c.FC_FIRST_TOKEN_TIMEOUT,
        "First-token timeout",
        "first_token timeouts and first_token_timeout retries rising",
        _first_token_timeout,
        ("ttft-quantiles", "ttft-heatmap", "timeouts-by-phase"),
        profiles=("slow-first-token",),
        explained_by=(c.FC_TIMEOUT_CASCADE,),
    ),
    FailureClass(
        c.FC_TIMEOUT_CASCADE,
        "Timeout cascade",
        "timeouts in several phases at once, in-flight near the cap",
        _timeout_cascade,
        ("timeouts-by-phase", "in-flight", "rejections", "phase-durations"),
        profiles=("slow-first-token",),
    ),
    FailureClass(
        c.FC_LOAD_SHEDDING,
        "Load shedding",
        'rejections at ingress rising (stream_requests_total{outcome="rejected"})',
        _load_shedding,
        ("rejections", "outcomes", "in-flight", "loop-lag"),
        # With more concurrent streams than the cap (see its runbook).
        profiles=("slow-drip",),
        # Slots held by stalled streams, or callers retrying an outage, fill the ingress: the
        # cause's runbook comes first.
        explained_by=(c.FC_TIMEOUT_CASCADE, c.FC_UPSTREAM_ERRORS, c.FC_UPSTREAM_RATE_LIMIT),
    ),
    FailureClass(
        c.FC_RETRY_STORM,
        "Retry storm",
        "retries per stream above the retry budget; budget-exhausted refusals",
        _retry_storm,
        ("retry-ratio", "retries-by-reason", "retry-budget-exhausted"),
        profiles=("outage", "flaky"),
        # Retries are what a rate limit, an upstream outage, a failing resume or a timeout
        # turns into, so a retry storm alongside any of them is their consequence.
        explained_by=(
            c.FC_UPSTREAM_RATE_LIMIT,
            c.FC_UPSTREAM_ERRORS,
            c.FC_RESUME_FAILURE,
            c.FC_IDLE_STALL,
            c.FC_FIRST_TOKEN_TIMEOUT,
            c.FC_TIMEOUT_CASCADE,
        ),
    ),
    FailureClass(
        c.FC_UPSTREAM_RATE_LIMIT,
        "Upstream rate limit",
        "429 retries and rate_limited errors",
        _upstream_rate_limit,
        ("rate-limits", "retries-by-reason", "ttft-quantiles"),
        profiles=("rate-limit",),
    ),
    FailureClass(
        c.FC_UPSTREAM_ERRORS,
        "Upstream errors",
        "upstream_5xx, error events, response.failed in errors by class",
        _upstream_errors,
        ("errors-by-class", "error-ratio", "retries-by-reason"),
        profiles=("outage", "server-errors", "error-event", "failed", "incomplete"),
    ),
    FailureClass(
        c.FC_BROKEN_CHUNKS,
        "Broken chunks",
        "reassembly errors (utf8, sse, json, fence) rising",
        _broken_chunks,
        ("reassembly-errors", "errors-by-class"),
        profiles=("broken-chunks", "utf8-splits"),
    ),
    FailureClass(
        c.FC_RESUME_FAILURE,
        "Resume failure",
        "resume failures rising; recovery p99 above its threshold",
        _resume_failure,
        ("resumes", "recovery-latency", "errors-by-class"),
        profiles=("resume-failure",),
    ),
    FailureClass(
        c.FC_NO_TRAFFIC,
        "No traffic",
        "no finished streams at all, or the metrics are absent",
        _no_traffic,
        ("outcomes", "rejections", "in-flight"),
    ),
)

_REGISTRY: dict[str, FailureClass] = {fc.id: fc for fc in _BUILTIN}


def _check(registry: dict[str, FailureClass]) -> None:
    for fc in registry.values():
        unknown = [x for x in fc.explained_by if x not in registry]
        if unknown:
            raise ValueError(f"failure class {fc.id!r}: explained by unknown classes {unknown}")


_check(_REGISTRY)
if tuple(_REGISTRY) != c.FAILURE_CLASSES:
    raise ImportError(
        "the failure-class registry and steadystream.conventions.FAILURE_CLASSES disagree: "
        f"{tuple(_REGISTRY)} != {c.FAILURE_CLASSES}"
    )


def failure_classes() -> tuple[FailureClass, ...]:
    """Every registered failure class, in registry order (the order of every output)."""
    return tuple(_REGISTRY.values())


def failure_class(class_id: str) -> FailureClass:
    """The record of ``class_id``; ``KeyError`` naming the known ids when there is none."""
    try:
        return _REGISTRY[class_id]
    except KeyError:
        raise KeyError(
            f"unknown failure class {class_id!r}; known: {', '.join(_REGISTRY)}"
        ) from None


def explained_by(class_id: str) -> tuple[str, ...]:
    """The classes that explain ``class_id`` when both are active (see :class:`FailureClass`)."""
    return failure_class(class_id).explained_by


@contextlib.contextmanager
def registered(*classes: FailureClass) -> Iterator[None]:
    """Within this block, ``classes`` are registered too (after the built-in ones): every
    generator, ``triage`` and the runbooks see them. For a team's own failure classes in a
    generation script, and for tests. Not thread-safe: register before rendering."""
    added = {fc.id: fc for fc in classes}
    clash = sorted(set(added) & set(_REGISTRY))
    if clash:
        raise ValueError(f"failure classes already registered: {', '.join(clash)}")
    candidate = {**_REGISTRY, **added}
    _check(candidate)
    _REGISTRY.update(added)
    try:
        yield
    finally:
        for class_id in added:
            _REGISTRY.pop(class_id, None)


#: Failure classes most likely behind a burning SLO, most likely first, by what the SLI
#: measures. The first entries are the classes that move that SLI directly; the tail lists
#: the amplifiers (retries, cascades) that turn a small problem into a budget burn.
_LIKELY: dict[str, tuple[str, ...]] = {
    c.FIRST_TOKEN_LATENCY: (
        c.FC_FIRST_TOKEN_TIMEOUT,
        c.FC_UPSTREAM_RATE_LIMIT,
        c.FC_TIMEOUT_CASCADE,
        c.FC_RETRY_STORM,
        c.FC_UPSTREAM_ERRORS,
    ),
    c.RECOVERY_LATENCY: (
        c.FC_RESUME_FAILURE,
        c.FC_IDLE_STALL,
        c.FC_UPSTREAM_RATE_LIMIT,
        c.FC_RETRY_STORM,
        c.FC_TIMEOUT_CASCADE,
    ),
    c.CHUNK_GAP: (
        c.FC_IDLE_STALL,
        c.FC_SLOW_CONSUMER,
        c.FC_TIMEOUT_CASCADE,
        c.FC_UPSTREAM_ERRORS,
    ),
    c.PHASE_DURATION: (
        c.FC_TIMEOUT_CASCADE,
        c.FC_SLOW_CONSUMER,
        c.FC_FIRST_TOKEN_TIMEOUT,
        c.FC_IDLE_STALL,
    ),
    # A latency SLO on a histogram steadystream does not emit: the general suspects.
    "latency": (
        c.FC_TIMEOUT_CASCADE,
        c.FC_UPSTREAM_RATE_LIMIT,
        c.FC_FIRST_TOKEN_TIMEOUT,
        c.FC_RETRY_STORM,
        c.FC_IDLE_STALL,
        c.FC_UPSTREAM_ERRORS,
    ),
    "errors": (
        c.FC_UPSTREAM_ERRORS,
        c.FC_RETRY_STORM,
        c.FC_UPSTREAM_RATE_LIMIT,
        c.FC_TIMEOUT_CASCADE,
        c.FC_IDLE_STALL,
        c.FC_FIRST_TOKEN_TIMEOUT,
        c.FC_RESUME_FAILURE,
        c.FC_SLOW_CONSUMER,
        c.FC_BROKEN_CHUNKS,
    ),
}
assert all(fc in _REGISTRY for ids in _LIKELY.values() for fc in ids)


def likely_classes(kind: str, metric: str | None) -> tuple[str, ...]:
    """Failure classes most likely behind a burning SLO of ``kind`` (``latency``/``errors``)
    measured on ``metric``, most likely first."""
    if metric is not None and metric in _LIKELY:
        return _LIKELY[metric]
    return _LIKELY[kind]
