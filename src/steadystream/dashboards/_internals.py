"""The stream internals board: one panel per steadystream metric, grouped by question.

Rows follow the order an on-call engineer asks: is latency OK, is traffic flowing, what is
failing, are retries and resumes coping. Every panel draws the spec's own limits (SLO
thresholds, timeouts, the retry budget, the concurrency cap) so "is this bad?" is answered on
the graph, and links to the runbook of the failure class it diagnoses.
"""

from __future__ import annotations

from .. import conventions as c
from ..catalog.promql import Selector, quantile, ratio, sum_rate
from ..spec import Spec, format_duration, format_percent, format_size
from ._model import Board, Line, Panel, Query, assemble
from ._render import alert_annotation

_QUANTILES = (0.5, 0.95, 0.99)


def _slo_lines(spec: Spec, metric: str) -> tuple[Line, ...]:
    """The latency SLO thresholds set on ``metric`` (in ms), orange."""
    return tuple(
        Line(slo.indicator.latency.threshold_ms, "orange", f"SLO {slo.name}")
        for slo in spec.slos
        if slo.indicator.latency is not None and slo.indicator.latency.metric == metric
    )


def _quantile_queries(sel: Selector, metric: str, by: tuple[str, ...] = ()) -> tuple[Query, ...]:
    suffix = "".join(f" {{{{{label}}}}}" for label in by)
    return tuple(
        Query(quantile(sel, metric, q, by), f"p{round(q * 100):d}{suffix}") for q in _QUANTILES
    )


def _slo_runbooks(spec: Spec, metric: str) -> tuple[str, ...]:
    """Runbooks of the latency SLOs measured on ``metric``."""
    return tuple(
        c.slo_runbook(slo.name)
        for slo in spec.slos
        if slo.indicator.latency is not None and slo.indicator.latency.metric == metric
    )


def stream_internals(spec: Spec) -> Board:
    """The stream internals board for ``spec``."""
    sel = Selector.grafana(spec)
    t = spec.stream.timeouts
    retry = spec.stream.retry
    first_token_ms = t.first_token * 1000
    idle_ms = t.stream_idle * 1000

    latency = (
        Panel(
            key="ttft-heatmap",
            kind="heatmap",
            description=(
                f"{c.DESCRIPTIONS[c.FIRST_TOKEN_LATENCY]} Each column is one rate interval; "
                "a second band forming above the main one is a slow model or a queue, a "
                f"band at {format_duration(t.first_token)} is streams hitting the "
                "first_token timeout."
            ),
            unit="ms",
            queries=(
                Query(
                    f"sum by (le) (increase({sel(c.bucket(c.FIRST_TOKEN_LATENCY))}"
                    "[$__rate_interval]))",
                    "{{le}}",
                    heatmap=True,
                ),
            ),
            runbooks=_slo_runbooks(spec, c.FIRST_TOKEN_LATENCY),
        ),
        Panel(
            key="ttft-quantiles",
            kind="timeseries",
            description=(
                f"{c.DESCRIPTIONS[c.FIRST_TOKEN_LATENCY]} Orange: the latency SLO threshold; "
                f"red: the first_token timeout ({format_duration(t.first_token)}), where the "
                "wrapper gives up on the attempt and retries."
            ),
            unit="ms",
            queries=_quantile_queries(sel, c.FIRST_TOKEN_LATENCY),
            lines=(
                *_slo_lines(spec, c.FIRST_TOKEN_LATENCY),
                Line(first_token_ms, "red", "first_token timeout"),
            ),
            runbooks=_slo_runbooks(spec, c.FIRST_TOKEN_LATENCY),
            min=0,
        ),
        Panel(
            key="chunk-gap",
            kind="timeseries",
            description=(
                f"{c.DESCRIPTIONS[c.CHUNK_GAP]} Red: the stream_idle timeout "
                f"({format_duration(t.stream_idle)}). A p99 creeping toward it precedes "
                "idle timeouts; a p50 rise with a flat p99 is a slower model, not a stall."
            ),
            unit="ms",
            queries=_quantile_queries(sel, c.CHUNK_GAP),
            lines=(*_slo_lines(spec, c.CHUNK_GAP), Line(idle_ms, "red", "stream_idle timeout")),
            min=0,
        ),
        Panel(
            key="recovery-latency",
            kind="timeseries",
            description=(
                f"{c.DESCRIPTIONS[c.RECOVERY_LATENCY]} Orange: the recovery SLO threshold. "
                "Recovery includes backoff, so it rises with retry backoff and Retry-After."
            ),
            unit="ms",
            queries=_quantile_queries(sel, c.RECOVERY_LATENCY),
            lines=_slo_lines(spec, c.RECOVERY_LATENCY),
            runbooks=_slo_runbooks(spec, c.RECOVERY_LATENCY),
            min=0,
        ),
        Panel(
            key="phase-durations",
            kind="timeseries",
            description=(
                f"{c.DESCRIPTIONS[c.PHASE_DURATION]} open = network (dial, TLS, headers); "
                "first_token_wait and upstream_wait = the model; consumer = your app "
                "reading the stream. The phase that grew is the team to call."
            ),
            unit="ms",
            queries=(Query(quantile(sel, c.PHASE_DURATION, 0.95, (c.LABEL_PHASE,)), "{{phase}}"),),
            min=0,
            width=24,
        ),
    )

    traffic = (
        Panel(
            key="outcomes",
            kind="timeseries",
            description=(
                f"{c.DESCRIPTIONS[c.REQUESTS_TOTAL]} A drop to zero with no errors is "
                "the no-traffic class: the service, its scrape or its callers are gone."
            ),
            unit="reqps",
            queries=(Query(sum_rate(sel, c.REQUESTS_TOTAL, (c.LABEL_OUTCOME,)), "{{outcome}}"),),
            min=0,
            stack=True,
        ),
        Panel(
            key="bytes",
            kind="timeseries",
            description=(
                f"{c.DESCRIPTIONS[c.BYTES_TOTAL]} Falls with stalls and slow consumers "
                "even while the stream count holds."
            ),
            unit="binBps",
            queries=(Query(sum_rate(sel, c.BYTES_TOTAL, (c.LABEL_MODEL,)), "{{model}}"),),
            min=0,
            stack=True,
        ),
        Panel(
            key="in-flight",
            kind="timeseries",
            description=(
                f"{c.DESCRIPTIONS[c.IN_FLIGHT]} Drawn as a share of the ingress capacity: "
                f"in-flight streams summed over processes / {c.INGRESS_MAX_CONCURRENT} summed "
                "over the same processes (each exports its own cap, max_concurrent "
                f"{spec.stream.ingress.max_concurrent} per process in the spec), for all "
                "instances and per instance. Red: at capacity, where new streams are rejected. "
                "Rising with flat traffic means streams last longer (a stall or a cascade)."
            ),
            unit="percentunit",
            queries=(
                Query(
                    f"sum({sel(c.IN_FLIGHT, model=False)}) / "
                    f"sum({sel(c.INGRESS_MAX_CONCURRENT, model=False)})",
                    "all instances",
                ),
                Query(
                    f"sum by (instance) ({sel(c.IN_FLIGHT, model=False)}) / "
                    f"sum by (instance) ({sel(c.INGRESS_MAX_CONCURRENT, model=False)})",
                    "{{instance}}",
                ),
            ),
            lines=(Line(1.0, "red", "capacity (max_concurrent)"),),
            min=0,
        ),
        Panel(
            key="rejections",
            kind="timeseries",
            description=(
                f"{c.DESCRIPTIONS[c.REJECTED_TOTAL]} concurrency: the "
                f"{spec.stream.ingress.max_concurrent}-stream cap; rate: the "
                f"{spec.stream.ingress.rate:g}/s token bucket. fallback: "
                f"decisions taken on local limits while the shared store (Redis) was down "
                f"({c.SHARED_FALLBACK_TOTAL}), by limit."
            ),
            unit="reqps",
            queries=(
                Query(
                    f"sum by (reason) (rate({sel(c.REJECTED_TOTAL, model=False)}"
                    "[$__rate_interval]))",
                    "{{reason}}",
                ),
                Query(
                    f"sum by (limit) (rate({sel(c.SHARED_FALLBACK_TOTAL, model=False)}"
                    "[$__rate_interval]))",
                    "fallback: {{limit}}",
                ),
            ),
            min=0,
            stack=True,
        ),
        Panel(
            key="loop-lag",
            kind="timeseries",
            description=(
                f"{c.DESCRIPTIONS[c.LOOP_LAG]} Past the red line "
                f"(stream.ingress.overload.lag) the process itself is late: deadlines get a "
                "grace instead of blaming the upstream, and new streams are shed at ingress "
                "(rejections: overloaded). Add workers or lower max_concurrent."
            ),
            unit="ms",
            queries=(
                Query(
                    f"histogram_quantile(0.99, sum by (le, source) "
                    f"(rate({sel(c.bucket(c.LOOP_LAG), model=False)}[$__rate_interval])))",
                    "{{source}}",
                ),
            ),
            lines=(Line(spec.stream.ingress.overload.lag * 1000, "red", "overload.lag"),),
            min=0,
        ),
    )

    error_slos = [s for s in spec.slos if s.indicator.errors is not None]
    failures = (
        Panel(
            key="error-ratio",
            kind="timeseries",
            description=(
                f"Errored streams / finished streams, from the counters; and "
                f"{c.ERROR_RATE}, each process's own 5-minute view. Orange: the error "
                "budget of the error SLO (the ratio it may average over the period)."
            ),
            unit="percentunit",
            queries=(
                Query(
                    ratio(sum_rate(sel, c.ERRORS_TOTAL), sum_rate(sel, c.REQUESTS_TOTAL)),
                    "error ratio",
                ),
                Query(f"max by (instance) ({sel(c.ERROR_RATE)})", "{{instance}} (local)"),
            ),
            lines=tuple(
                Line(round(s.error_budget, 9), "orange", f"SLO {s.name} budget") for s in error_slos
            ),
            runbooks=tuple(c.slo_runbook(s.name) for s in error_slos),
            min=0,
        ),
        Panel(
            key="errors-by-class",
            kind="timeseries",
            description=(
                f"{c.DESCRIPTIONS[c.ERRORS_TOTAL]} The class names the failure: "
                "rate_limited -> upstream-rate-limit, upstream_5xx -> upstream-errors, "
                "client_too_slow -> slow-consumer, *_timeout -> the timeout runbooks."
            ),
            unit="reqps",
            queries=(
                Query(sum_rate(sel, c.ERRORS_TOTAL, (c.LABEL_ERROR_CLASS,)), "{{error_class}}"),
            ),
            min=0,
            stack=True,
        ),
        Panel(
            key="timeouts-by-phase",
            kind="timeseries",
            description=(
                f"{c.DESCRIPTIONS[c.TIMEOUTS_TOTAL]} Budgets: dial "
                f"{format_duration(t.dial)}, tls {format_duration(t.tls_handshake)}, "
                f"first_token {format_duration(t.first_token)}, idle "
                f"{format_duration(t.stream_idle)}, total {format_duration(t.total)}. "
                "Several phases rising together is a timeout cascade."
            ),
            unit="reqps",
            queries=(Query(sum_rate(sel, c.TIMEOUTS_TOTAL, (c.LABEL_PHASE,)), "{{phase}}"),),
            min=0,
            stack=True,
        ),
        Panel(
            key="idle-timeouts",
            kind="timeseries",
            description=(
                f"{c.DESCRIPTIONS[c.TIMEOUT_IDLE_TOTAL]} Budget: "
                f"{format_duration(t.stream_idle)} without content."
            ),
            unit="reqps",
            queries=(Query(sum_rate(sel, c.TIMEOUT_IDLE_TOTAL, (c.LABEL_MODEL,)), "{{model}}"),),
            min=0,
        ),
        Panel(
            key="slow-aborts",
            kind="timeseries",
            description=(
                f"{c.DESCRIPTIONS[c.ABORT_CLIENT_SLOW_TOTAL]} Buffer cap: "
                f"{format_size(spec.stream.flow_control.max_buffer)} per stream, "
                f"on_overflow={spec.stream.flow_control.on_overflow}."
            ),
            unit="reqps",
            queries=(
                Query(sum_rate(sel, c.ABORT_CLIENT_SLOW_TOTAL, (c.LABEL_MODEL,)), "{{model}}"),
            ),
            min=0,
        ),
        Panel(
            key="reassembly-errors",
            kind="timeseries",
            description=(
                f"{c.DESCRIPTIONS[c.REASSEMBLY_ERRORS_TOTAL]} utf8: a multi-byte "
                "character split badly; sse: malformed event framing; json: an event "
                "payload that does not parse; fence: an unclosed code fence at the end."
            ),
            unit="reqps",
            queries=(Query(sum_rate(sel, c.REASSEMBLY_ERRORS_TOTAL, (c.LABEL_KIND,)), "{{kind}}"),),
            min=0,
            stack=True,
        ),
    )

    recovery = (
        Panel(
            key="retries-by-reason",
            kind="timeseries",
            description=(
                f"{c.DESCRIPTIONS[c.RETRY_TOTAL]} Policy: up to {retry.max_retries} "
                f"retries from {format_duration(retry.base_backoff)} backoff (max "
                f"{format_duration(retry.max_backoff)}, jitter "
                f"{format_percent(retry.jitter)}). A 429 band is upstream-rate-limit."
            ),
            unit="reqps",
            queries=(Query(sum_rate(sel, c.RETRY_TOTAL, (c.LABEL_REASON,)), "{{reason}}"),),
            min=0,
            stack=True,
        ),
        Panel(
            key="rate-limits",
            kind="timeseries",
            description=(
                "Retries after a 429 and streams that failed as rate_limited once retries "
                "ran out. Retry-After is honoured up to "
                f"{format_duration(retry.retry_after_cap)}; a longer one fails the attempt. "
                "A steady 429 rate is a quota; a spike "
                "is a burst or a noisy neighbour on the same key."
            ),
            unit="reqps",
            queries=(
                Query(sum_rate(sel, c.RETRY_TOTAL, reason=c.RETRY_REASON_429), "429 retries"),
                Query(
                    sum_rate(sel, c.ERRORS_TOTAL, error_class=c.ERROR_CLASS_RATE_LIMITED),
                    "rate_limited errors",
                ),
            ),
            min=0,
        ),
        Panel(
            key="retry-ratio",
            kind="timeseries",
            description=(
                "Retries / finished streams. Red: the retry budget "
                f"({format_percent(retry.budget)} of requests, plus "
                f"{retry.min_per_second:g}/s); above it the wrapper refuses retries, "
                "which is what keeps a retry storm from amplifying an outage."
            ),
            unit="percentunit",
            queries=(
                Query(
                    ratio(sum_rate(sel, c.RETRY_TOTAL), sum_rate(sel, c.REQUESTS_TOTAL)),
                    "retries per stream",
                ),
            ),
            lines=(Line(round(retry.budget, 9), "red", "retry budget"),),
            min=0,
        ),
        Panel(
            key="retry-budget-exhausted",
            kind="timeseries",
            description=c.DESCRIPTIONS[c.RETRY_BUDGET_EXHAUSTED_TOTAL]
            + " Non-zero means the budget is doing its job; sustained means the upstream "
            "is failing more than retries can hide.",
            unit="reqps",
            queries=(Query(sum_rate(sel, c.RETRY_BUDGET_EXHAUSTED_TOTAL), "refused"),),
            min=0,
        ),
        Panel(
            key="resumes",
            kind="timeseries",
            description=(
                f"{c.DESCRIPTIONS[c.RESUME_SUCCESS_TOTAL]} "
                f"{c.DESCRIPTIONS[c.RESUME_FAILURE_TOTAL]}"
                f" Checkpoints are taken every {spec.stream.checkpoint.every} chunks."
            ),
            unit="reqps",
            queries=(
                Query(sum_rate(sel, c.RESUME_SUCCESS_TOTAL), "resumed"),
                Query(sum_rate(sel, c.RESUME_FAILURE_TOTAL), "resume failed"),
            ),
            min=0,
        ),
    )
    return Board(
        name=c.BOARD_STREAM_INTERNALS,
        title="stream internals",
        rows=assemble(spec, c.BOARD_STREAM_INTERNALS, (*latency, *traffic, *failures, *recovery)),
        annotations=(alert_annotation(spec),),
    )
