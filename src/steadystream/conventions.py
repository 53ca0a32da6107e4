"""Every name steadystream emits or generates, defined once.

The instrumentation, the rule and dashboard generators, the runbooks and ``triage`` all import
these constants, so a metric can never be emitted under one name and queried under another. A
test checks that every metric referenced in generated PromQL is one the instrumentation emits.
"""

from __future__ import annotations

from typing import Final

# --------------------------------------------------------------------------------------------
# Metric names (Prometheus names exactly; OpenTelemetry instruments carry the same names).
# Counter names are given as Prometheus exposes them (with ``_total``); prometheus_client is
# handed the name without the suffix.
# --------------------------------------------------------------------------------------------

# The eight baseline metrics.
FIRST_TOKEN_LATENCY: Final = "stream_first_token_latency_ms"
CHUNK_GAP: Final = "stream_chunk_gap_ms"
BYTES_TOTAL: Final = "stream_bytes_total"
ABORT_CLIENT_SLOW_TOTAL: Final = "stream_abort_client_slow_total"
RETRY_TOTAL: Final = "stream_retry_total"
RESUME_SUCCESS_TOTAL: Final = "stream_resume_success_total"
TIMEOUT_IDLE_TOTAL: Final = "stream_timeout_idle_total"
ERROR_RATE: Final = "stream_error_rate"

# Supporting metrics, needed by the SLOs and failure classes.
REQUESTS_TOTAL: Final = "stream_requests_total"
ERRORS_TOTAL: Final = "stream_errors_total"
RECOVERY_LATENCY: Final = "stream_recovery_latency_ms"
RESUME_FAILURE_TOTAL: Final = "stream_resume_failure_total"
TIMEOUTS_TOTAL: Final = "stream_timeouts_total"
RETRY_BUDGET_EXHAUSTED_TOTAL: Final = "stream_retry_budget_exhausted_total"
IN_FLIGHT: Final = "stream_in_flight"
REJECTED_TOTAL: Final = "stream_rejected_total"
REASSEMBLY_ERRORS_TOTAL: Final = "stream_reassembly_errors_total"
PHASE_DURATION: Final = "stream_phase_duration_ms"
# Per process: the ingress concurrency cap (``stream.ingress.max_concurrent``). Every process
# exports its own, so ``sum()`` across processes is the fleet's capacity, and alerts compare
# ``sum(stream_in_flight)`` with ``sum(stream_ingress_max_concurrent)``: sums with sums.
INGRESS_MAX_CONCURRENT: Final = "stream_ingress_max_concurrent"
# Per process: limit decisions taken on local limits because the shared store (Redis, see
# ``stream.shared``) was unreachable or slow, by limit.
SHARED_FALLBACK_TOTAL: Final = "stream_shared_fallback_total"
# Per process: how late this process runs its own work (the event loop's ticks, the sync
# watchdog's wake-ups), by source. A process that lags misses deadlines by itself; see
# ``stream.ingress.overload``.
LOOP_LAG: Final = "stream_event_loop_lag_ms"

HISTOGRAMS: Final = (FIRST_TOKEN_LATENCY, CHUNK_GAP, RECOVERY_LATENCY, PHASE_DURATION, LOOP_LAG)
COUNTERS: Final = (
    BYTES_TOTAL,
    ABORT_CLIENT_SLOW_TOTAL,
    RETRY_TOTAL,
    RESUME_SUCCESS_TOTAL,
    TIMEOUT_IDLE_TOTAL,
    REQUESTS_TOTAL,
    ERRORS_TOTAL,
    RESUME_FAILURE_TOTAL,
    TIMEOUTS_TOTAL,
    RETRY_BUDGET_EXHAUSTED_TOTAL,
    REJECTED_TOTAL,
    REASSEMBLY_ERRORS_TOTAL,
    SHARED_FALLBACK_TOTAL,
)
GAUGES: Final = (ERROR_RATE, IN_FLIGHT, INGRESS_MAX_CONCURRENT)
#: The stream metrics: what the SLOs, rules, dashboards and triage read.
ALL_METRICS: Final = HISTOGRAMS + COUNTERS + GAUGES

# Usage accounting: tokens the upstream reported (cost, not reliability), emitted beside the
# stream metrics but read by no rule or dashboard. ``type`` is ``input`` or ``output``.
TOKENS_TOTAL: Final = "stream_tokens_total"
USAGE_COUNTERS: Final = (TOKENS_TOTAL,)
#: Every metric the instrumentation emits under a ``stream_*`` name.
EMITTED_METRICS: Final = ALL_METRICS + USAGE_COUNTERS


# Series a histogram exposes to Prometheus.
def bucket(metric: str) -> str:
    """``<metric>_bucket``: the cumulative bucket series of a histogram."""
    return f"{metric}_bucket"


def count(metric: str) -> str:
    """``<metric>_count``: the observation count of a histogram."""
    return f"{metric}_count"


def sum_(metric: str) -> str:
    """``<metric>_sum``: the observation sum of a histogram."""
    return f"{metric}_sum"


UNITS: Final = {
    FIRST_TOKEN_LATENCY: "ms",
    CHUNK_GAP: "ms",
    RECOVERY_LATENCY: "ms",
    PHASE_DURATION: "ms",
    BYTES_TOTAL: "By",
    ERROR_RATE: "1",
    IN_FLIGHT: "{stream}",
    INGRESS_MAX_CONCURRENT: "{stream}",
    SHARED_FALLBACK_TOTAL: "{decision}",
    TOKENS_TOTAL: "{token}",
    LOOP_LAG: "ms",
}

DESCRIPTIONS: Final = {
    FIRST_TOKEN_LATENCY: "Stream opened to first content delta (lifecycle events do not count); "
    "a stream cut by the first-token timeout is observed at the time it waited.",
    CHUNK_GAP: "Gap between consecutive content chunks.",
    BYTES_TOTAL: "Content bytes delivered to the consumer.",
    ABORT_CLIENT_SLOW_TOTAL: "Streams cut, or increments dropped, because the consumer fell "
    "behind the buffer cap.",
    RETRY_TOTAL: "Retries, by reason.",
    RESUME_SUCCESS_TOTAL: "Streams resumed from a checkpoint with nothing lost or duplicated.",
    TIMEOUT_IDLE_TOTAL: "Idle timeouts: no content for the stream_idle budget.",
    ERROR_RATE: "Errors / streams over the last 5 minutes in this process (a local view).",
    REQUESTS_TOTAL: "Logical streams finished, by outcome.",
    ERRORS_TOTAL: "Logical streams that ended in an error, by error class.",
    RECOVERY_LATENCY: "Interruption to the first content after a resume.",
    RESUME_FAILURE_TOTAL: "Resumes that failed (diverging replay, no resumable source, refused).",
    TIMEOUTS_TOTAL: "Timeouts, by phase.",
    RETRY_BUDGET_EXHAUSTED_TOTAL: "Retries refused because the shared retry budget was spent.",
    IN_FLIGHT: "Streams currently open.",
    INGRESS_MAX_CONCURRENT: "Streams this process admits at once (the ingress cap, "
    "stream.ingress.max_concurrent, summed over its monitors); sum() across processes is the "
    "fleet's capacity.",
    REJECTED_TOTAL: "Streams rejected at ingress, by reason.",
    SHARED_FALLBACK_TOTAL: "Limit decisions (admissions, retry-budget deposits and withdrawals) "
    "taken on this process's local limits because the shared store (stream.shared, Redis) was "
    "unreachable or slower than its timeout, by limit.",
    REASSEMBLY_ERRORS_TOTAL: "Reassembly problems found in the content, by kind.",
    PHASE_DURATION: "Where a stream's wall time went, by phase (network, model or app).",
    LOOP_LAG: "How late this process ran its own work, by source: an asyncio event loop's "
    "ticks (loop) or the sync watchdog's wake-ups against their deadlines (watchdog).",
    TOKENS_TOTAL: "Tokens the upstream reported as used, by type (input or output); summed "
    "over every request of a logical stream (retries, resumes, continuations).",
}

# --------------------------------------------------------------------------------------------
# Label keys and their closed value sets.
# --------------------------------------------------------------------------------------------

LABEL_SERVICE: Final = "service"
LABEL_MODEL: Final = "model"
LABEL_PROVIDER: Final = "provider"
LABEL_REASON: Final = "reason"
LABEL_PHASE: Final = "phase"
LABEL_OUTCOME: Final = "outcome"
LABEL_ERROR_CLASS: Final = "error_class"
LABEL_KIND: Final = "kind"
LABEL_LIMIT: Final = "limit"
LABEL_TOKEN_TYPE: Final = "type"
LABEL_SOURCE: Final = "source"
BASE_LABELS: Final = (LABEL_SERVICE, LABEL_MODEL, LABEL_PROVIDER)

OTHER_MODEL: Final = "other"
UNKNOWN: Final = "unknown"
DEFAULT_MAX_MODELS: Final = 32

# stream_retry_total{reason}
RETRY_REASON_429: Final = "429"
RETRY_REASON_5XX: Final = "5xx"
RETRY_REASON_408: Final = "408"
RETRY_REASON_NETWORK: Final = "network"
RETRY_REASON_FIRST_TOKEN_TIMEOUT: Final = "first_token_timeout"
RETRY_REASON_IDLE_TIMEOUT: Final = "idle_timeout"
RETRY_REASONS: Final = (
    RETRY_REASON_429,
    RETRY_REASON_5XX,
    RETRY_REASON_408,
    RETRY_REASON_NETWORK,
    RETRY_REASON_FIRST_TOKEN_TIMEOUT,
    RETRY_REASON_IDLE_TIMEOUT,
)

# stream_timeouts_total{phase}
TIMEOUT_DIAL: Final = "dial"
TIMEOUT_TLS: Final = "tls"
TIMEOUT_FIRST_TOKEN: Final = "first_token"
TIMEOUT_IDLE: Final = "idle"
TIMEOUT_TOTAL: Final = "total"
TIMEOUT_PHASES: Final = (
    TIMEOUT_DIAL,
    TIMEOUT_TLS,
    TIMEOUT_FIRST_TOKEN,
    TIMEOUT_IDLE,
    TIMEOUT_TOTAL,
)

# stream_requests_total{outcome}
OUTCOME_OK: Final = "ok"
OUTCOME_ERROR: Final = "error"
OUTCOME_ABANDONED: Final = "abandoned"
OUTCOME_REJECTED: Final = "rejected"
OUTCOMES: Final = (OUTCOME_OK, OUTCOME_ERROR, OUTCOME_ABANDONED, OUTCOME_REJECTED)

# stream_errors_total{error_class}
ERROR_CLASS_CLIENT_TOO_SLOW: Final = "client_too_slow"
ERROR_CLASS_FIRST_TOKEN_TIMEOUT: Final = "first_token_timeout"
ERROR_CLASS_IDLE_TIMEOUT: Final = "idle_timeout"
ERROR_CLASS_TOTAL_TIMEOUT: Final = "total_timeout"
ERROR_CLASS_CONNECT_TIMEOUT: Final = "connect_timeout"
ERROR_CLASS_RETRY_BUDGET: Final = "retry_budget_exhausted"
ERROR_CLASS_RESUME_FAILED: Final = "resume_failed"
ERROR_CLASS_RATE_LIMITED: Final = "rate_limited"
ERROR_CLASS_UPSTREAM_5XX: Final = "upstream_5xx"
ERROR_CLASS_UPSTREAM_4XX: Final = "upstream_4xx"
ERROR_CLASS_UPSTREAM_EVENT: Final = "upstream_error_event"
ERROR_CLASS_RESPONSE_FAILED: Final = "response_failed"
ERROR_CLASS_RESPONSE_INCOMPLETE: Final = "response_incomplete"
ERROR_CLASS_NETWORK: Final = "network"
# An SSE line or event past stream.max_event_bytes.
ERROR_CLASS_EVENT_TOO_LARGE: Final = "event_too_large"
ERROR_CLASS_REJECTED: Final = "rejected"
# A first-token or idle deadline ran out while this process itself was lagging (its event loop
# or watchdog ran late past the grace it was given): not the upstream's failure, not retried.
ERROR_CLASS_PROCESS_LAG: Final = "process_lag"
ERROR_CLASS_OTHER: Final = "other"
ERROR_CLASSES: Final = (
    ERROR_CLASS_CLIENT_TOO_SLOW,
    ERROR_CLASS_FIRST_TOKEN_TIMEOUT,
    ERROR_CLASS_IDLE_TIMEOUT,
    ERROR_CLASS_TOTAL_TIMEOUT,
    ERROR_CLASS_CONNECT_TIMEOUT,
    ERROR_CLASS_RETRY_BUDGET,
    ERROR_CLASS_RESUME_FAILED,
    ERROR_CLASS_RATE_LIMITED,
    ERROR_CLASS_UPSTREAM_5XX,
    ERROR_CLASS_UPSTREAM_4XX,
    ERROR_CLASS_UPSTREAM_EVENT,
    ERROR_CLASS_RESPONSE_FAILED,
    ERROR_CLASS_RESPONSE_INCOMPLETE,
    ERROR_CLASS_NETWORK,
    ERROR_CLASS_EVENT_TOO_LARGE,
    ERROR_CLASS_REJECTED,
    ERROR_CLASS_PROCESS_LAG,
    ERROR_CLASS_OTHER,
)

# stream_rejected_total{reason}
REJECT_CONCURRENCY: Final = "concurrency"
REJECT_RATE: Final = "rate"
# With an admission queue (stream.ingress.queue): the queue was full, or the wait ran out.
REJECT_QUEUE_FULL: Final = "queue_full"
REJECT_QUEUE_TIMEOUT: Final = "queue_timeout"
# The process itself lags (stream.ingress.overload): new streams are shed before admitted
# ones start to miss their deadlines.
REJECT_OVERLOADED: Final = "overloaded"
REJECT_REASONS: Final = (
    REJECT_CONCURRENCY,
    REJECT_RATE,
    REJECT_QUEUE_FULL,
    REJECT_QUEUE_TIMEOUT,
    REJECT_OVERLOADED,
)

# stream_event_loop_lag_ms{source}: an asyncio loop's ticks, or the sync watchdog's wake-ups.
LAG_SOURCE_LOOP: Final = "loop"
LAG_SOURCE_WATCHDOG: Final = "watchdog"
LAG_SOURCES: Final = (LAG_SOURCE_LOOP, LAG_SOURCE_WATCHDOG)

# stream_shared_fallback_total{limit}: the limits a shared store holds cluster-wide.
LIMIT_RATE: Final = "rate"
LIMIT_CONCURRENCY: Final = "concurrency"
LIMIT_RETRY_BUDGET: Final = "retry_budget"
SHARED_LIMITS: Final = (LIMIT_RATE, LIMIT_CONCURRENCY, LIMIT_RETRY_BUDGET)

# stream_reassembly_errors_total{kind}
REASSEMBLY_UTF8: Final = "utf8"
REASSEMBLY_SSE: Final = "sse"
REASSEMBLY_JSON: Final = "json"
REASSEMBLY_FENCE: Final = "fence"
REASSEMBLY_KINDS: Final = (REASSEMBLY_UTF8, REASSEMBLY_SSE, REASSEMBLY_JSON, REASSEMBLY_FENCE)

# stream_tokens_total{type} (the values of gen_ai.token.type)
TOKEN_INPUT: Final = "input"
TOKEN_OUTPUT: Final = "output"
TOKEN_TYPES: Final = (TOKEN_INPUT, TOKEN_OUTPUT)

# stream_phase_duration_ms{phase}
PHASE_OPEN: Final = "open"
PHASE_FIRST_TOKEN_WAIT: Final = "first_token_wait"
PHASE_UPSTREAM_WAIT: Final = "upstream_wait"
PHASE_CONSUMER: Final = "consumer"
# Waiting in the admission queue (stream.ingress.queue) before the stream opened.
PHASE_QUEUE: Final = "queue"
# Waiting for a free connection in the HTTP client's pool (stream.pool), inside "open".
PHASE_POOL: Final = "pool"
PHASES: Final = (
    PHASE_QUEUE,
    PHASE_POOL,
    PHASE_OPEN,
    PHASE_FIRST_TOKEN_WAIT,
    PHASE_UPSTREAM_WAIT,
    PHASE_CONSUMER,
)

# Default histogram buckets in milliseconds. Spec thresholds are always added on top.
LATENCY_BUCKETS_MS: Final = (
    50.0,
    100.0,
    250.0,
    500.0,
    750.0,
    1000.0,
    1500.0,
    2000.0,
    2500.0,
    3000.0,
    4000.0,
    5000.0,
    8000.0,
    10000.0,
    15000.0,
    30000.0,
    60000.0,
)
GAP_BUCKETS_MS: Final = (
    1.0,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2000.0,
    4000.0,
    8000.0,
    15000.0,
)


def le_label(ms: float) -> str:
    """The ``le`` label value prometheus_client writes for a bucket bound in milliseconds.

    prometheus_client formats bounds Go-style (``2500.0``); a rule that matches ``le="2500"``
    would silently select nothing, so generators must use this function.
    """
    from prometheus_client.utils import floatToGoString

    return floatToGoString(float(ms))


# --------------------------------------------------------------------------------------------
# Failure classes: each has alert(s), a runbook and a fault the simulator can inject.
# --------------------------------------------------------------------------------------------

FC_SLOW_CONSUMER: Final = "slow-consumer"
FC_IDLE_STALL: Final = "idle-stall"
FC_FIRST_TOKEN_TIMEOUT: Final = "first-token-timeout"
FC_TIMEOUT_CASCADE: Final = "timeout-cascade"
FC_LOAD_SHEDDING: Final = "load-shedding"
FC_RETRY_STORM: Final = "retry-storm"
FC_UPSTREAM_RATE_LIMIT: Final = "upstream-rate-limit"
FC_UPSTREAM_ERRORS: Final = "upstream-errors"
FC_BROKEN_CHUNKS: Final = "broken-chunks"
FC_RESUME_FAILURE: Final = "resume-failure"
FC_NO_TRAFFIC: Final = "no-traffic"
FAILURE_CLASSES: Final = (
    FC_SLOW_CONSUMER,
    FC_IDLE_STALL,
    FC_FIRST_TOKEN_TIMEOUT,
    FC_TIMEOUT_CASCADE,
    FC_LOAD_SHEDDING,
    FC_RETRY_STORM,
    FC_UPSTREAM_RATE_LIMIT,
    FC_UPSTREAM_ERRORS,
    FC_BROKEN_CHUNKS,
    FC_RESUME_FAILURE,
    FC_NO_TRAFFIC,
)

# --------------------------------------------------------------------------------------------
# Tracing (OpenTelemetry GenAI semantic conventions, plus steadystream's own namespace).
# --------------------------------------------------------------------------------------------

TRACER_NAME: Final = "steadystream"
METER_NAME: Final = "steadystream"
#: The GenAI semantic conventions release the names below follow. (Later, the GenAI
#: conventions moved to their own repository, still unreleased and in flux.)
SEMCONV_VERSION: Final = "1.41.1"
#: The instrumentation scope's schema URL: 1.41.1 changed nothing in the GenAI conventions
#: and published no schema file of its own, so it is 1.41.0's.
SEMCONV_SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.41.0"
# The logical stream's span is named ``{gen_ai.operation.name} {gen_ai.request.model}`` (just
# the operation without a model): see :func:`span_name`. Its attempts are INTERNAL children
# named SPAN_ATTEMPT, with no gen_ai.* attributes (a retry is not a second GenAI operation).
SPAN_ATTEMPT: Final = "steadystream.attempt"
#: Which of steadystream's spans this is: SPAN_ROLE_STREAM (the logical stream, the GenAI
#: span) or SPAN_ROLE_ATTEMPT. Find the stream span by it, not by its name.
ATTR_SPAN_ROLE: Final = "steadystream.span"
SPAN_ROLE_STREAM: Final = "stream"
SPAN_ROLE_ATTEMPT: Final = "attempt"
OPERATION_CHAT: Final = "chat"
ATTR_PROVIDER: Final = "gen_ai.provider.name"
ATTR_REQUEST_MODEL: Final = "gen_ai.request.model"
ATTR_REQUEST_STREAM: Final = "gen_ai.request.stream"
ATTR_RESPONSE_ID: Final = "gen_ai.response.id"
ATTR_RESPONSE_MODEL: Final = "gen_ai.response.model"
ATTR_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
ATTR_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
ATTR_OPERATION: Final = "gen_ai.operation.name"
ATTR_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
ATTR_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
ATTR_TOKEN_TYPE: Final = "gen_ai.token.type"
ATTR_ERROR_TYPE: Final = "error.type"
#: error.type's fallback value (the conventions' own) for ERROR_CLASS_OTHER.
ERROR_TYPE_OTHER: Final = "_OTHER"
ATTR_SERVER_ADDRESS: Final = "server.address"
ATTR_SERVER_PORT: Final = "server.port"
# GenAI client metrics (OpenTelemetry only; Prometheus has stream_tokens_total).
GENAI_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
GENAI_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
GENAI_UNITS: Final = {GENAI_TOKEN_USAGE: "{token}", GENAI_OPERATION_DURATION: "s"}
GENAI_DESCRIPTIONS: Final = {
    GENAI_TOKEN_USAGE: "Number of input and output tokens used.",
    GENAI_OPERATION_DURATION: "GenAI operation duration.",
}
#: The conventions' explicit bucket advice for each GenAI client histogram.
GENAI_BUCKETS: Final = {
    GENAI_TOKEN_USAGE: (
        1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
        67108864,
    ),
    GENAI_OPERATION_DURATION: (
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ),
}  # fmt: skip
ATTR_SERVICE: Final = "steadystream.service"
ATTR_OUTCOME: Final = "steadystream.outcome"
ATTR_ERROR_CLASS: Final = "steadystream.error_class"
ATTR_BYTES: Final = "steadystream.bytes"
ATTR_CHUNKS: Final = "steadystream.chunks"
ATTR_ATTEMPT: Final = "steadystream.attempt"
ATTR_PHASE_PREFIX: Final = "steadystream.phase."
EVENT_FIRST_TOKEN: Final = "first_token"
EVENT_RETRY: Final = "retry"
EVENT_RESUME: Final = "resume"
EVENT_BACKPRESSURE: Final = "backpressure"
EVENT_TIMEOUT: Final = "timeout"
EVENT_CHECKPOINT: Final = "checkpoint"


def span_name(operation: str, request_model: str | None) -> str:
    """The GenAI span name: ``{gen_ai.operation.name} {gen_ai.request.model}``, or the operation
    alone when the model is not known."""
    return f"{operation} {request_model}" if request_model else operation


def error_type(error_class: str) -> str:
    """``error.type`` for a stream that ended with ``error_class`` (one of ERROR_CLASSES: a
    documented, low-cardinality list, as the conventions ask); ``other`` becomes ``_OTHER``."""
    return ERROR_TYPE_OTHER if error_class == ERROR_CLASS_OTHER else error_class


# --------------------------------------------------------------------------------------------
# HTTP headers.
# --------------------------------------------------------------------------------------------

HEADER_IDEMPOTENCY_KEY: Final = "Idempotency-Key"
HEADER_FAULT: Final = "x-steadystream-fault"
HEADER_SEED: Final = "x-steadystream-seed"

# --------------------------------------------------------------------------------------------
# Generated artifacts: file layout, dashboard identities, runbook paths, the header.
# --------------------------------------------------------------------------------------------

#: Only Prometheus rule files, so ``rule_files: [<out>/alerts/*.yaml]`` loads the directory.
ALERTS_DIR: Final = "alerts"
#: ``promtool test rules`` files; each names its rules as ``../alerts/<file>``.
RULE_TESTS_DIR: Final = "rule-tests"
#: Alertmanager configuration (route, receiver, inhibit rules), one file per service.
ALERTMANAGER_DIR: Final = "alertmanager"
DASHBOARDS_DIR: Final = "dashboards"
RUNBOOKS_DIR: Final = "runbooks"
BOARD_SLO_OVERVIEW: Final = "slo-overview"
BOARD_STREAM_INTERNALS: Final = "stream-internals"
BOARDS: Final = (BOARD_SLO_OVERVIEW, BOARD_STREAM_INTERNALS)


def dashboard_uid(service: str, board: str) -> str:
    """Stable Grafana UID for ``board`` of ``service``: hashed from the names, never random."""
    import hashlib

    return "ss-" + hashlib.sha256(f"{service}/{board}".encode()).hexdigest()[:12]


def failure_class_runbook(failure_class: str) -> str:
    """Path of a failure class's runbook, relative to the output directory."""
    return f"{RUNBOOKS_DIR}/{failure_class}.md"


def slo_runbook(slo_name: str) -> str:
    """Path of an SLO's error-budget-burn runbook, relative to the output directory."""
    return f"{RUNBOOKS_DIR}/slo-{slo_name}.md"


def generated_header(source: str, sha256: str) -> str:
    """First line (as a comment where the format allows) of every generated file."""
    return f"generated by steadystream from {source} (sha256 {sha256}) — do not edit"
