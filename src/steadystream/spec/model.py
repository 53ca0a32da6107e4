"""The SLO spec model: frozen, strict (unknown keys are errors), with units parsed at the edge.

Values are held in base units: durations in seconds (``float``), sizes in bytes (``int``),
percentages as fractions (``0.95``), rates in events per second. Cross-field rules live in
:func:`semantic_problems`, which reports every problem with the path of the field at fault.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from .. import conventions as c
from .units import (
    DURATION_PATTERN,
    PERCENT_PATTERN,
    RATE_PATTERN,
    SIZE_PATTERN,
    format_duration,
    format_percent,
    parse_duration,
    parse_percent,
    parse_rate,
    parse_size,
)

__all__ = [
    "SLO",
    "AdmissionQueue",
    "AlertOverride",
    "Alerting",
    "Checkpointing",
    "ErrorsIndicator",
    "FailureClassAlert",
    "FlowControl",
    "Indicator",
    "Ingress",
    "Kubernetes",
    "LatencyIndicator",
    "Links",
    "Pool",
    "Retry",
    "SLOAlerts",
    "Shared",
    "Spec",
    "StreamPolicy",
    "Tier",
    "Timeouts",
    "semantic_problems",
]


def _whole_ms(value: float) -> float:
    # Prometheus durations, and every rule and panel generated from the spec, resolve to whole
    # milliseconds; "0.5ms" or "1.0005s" would be silently rounded there.
    if abs(value * 1000 - round(value * 1000)) > 1e-6 or value < 0.001:
        raise ValueError(
            f"duration {value:g}s is not a whole number of milliseconds (at least 1ms), "
            "the resolution Prometheus works in"
        )
    return value


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    AfterValidator(_whole_ms),
    WithJsonSchema(
        {"type": "string", "pattern": DURATION_PATTERN, "examples": ["300ms", "2.5s", "28d"]}
    ),
]
# Latency thresholds and bucket bounds: their whole-millisecond rule is the bucket check in
# _bucket_problems, which says why.
LatencyBound = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {"type": "string", "pattern": DURATION_PATTERN, "examples": ["300ms", "2.5s", "28d"]}
    ),
]
Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": SIZE_PATTERN},
                {"type": "integer", "exclusiveMinimum": 0},
            ],
            "examples": ["512KiB", "1MiB"],
        }
    ),
]
Percent = Annotated[
    float,
    BeforeValidator(parse_percent),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": PERCENT_PATTERN},
                {"type": "number", "minimum": 0, "maximum": 1},
            ],
            "examples": ["95%", 0.95],
        }
    ),
]
Rate = Annotated[
    float,
    BeforeValidator(parse_rate),
    WithJsonSchema({"type": "string", "pattern": RATE_PATTERN, "examples": ["50/s", "600/m"]}),
]

_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_SERVICE_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_METRIC_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _check_name(value: str) -> str:
    if not _NAME_RE.match(value) or len(value) > 63:
        raise ValueError(
            f"invalid name {value!r}: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (at most 63 characters)"
        )
    return value


def _check_metric(value: str) -> str:
    if not _METRIC_RE.match(value):
        raise ValueError(f"invalid Prometheus metric name {value!r}")
    return value


Name = Annotated[
    str,
    AfterValidator(_check_name),
    WithJsonSchema({"type": "string", "pattern": _NAME_RE.pattern, "maxLength": 63}),
]
MetricName = Annotated[
    str,
    AfterValidator(_check_metric),
    WithJsonSchema({"type": "string", "pattern": _METRIC_RE.pattern}),
]


def _field_problems(problems: list[tuple[str, str]]) -> None:
    """Raise cross-field problems of one model so the loader can place each on its field.

    Pydantic reports a model validator's error at the model; the ``@field:`` prefix lets the
    loader point at the field instead, and one error may carry several problems.
    """
    if problems:
        raise ValueError("\n".join(f"@{field}: {msg}" for field, msg in problems))


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        validate_default=True,
    )


class LatencyIndicator(_Model):
    """Good events: observations of a latency histogram at or below ``threshold``."""

    metric: MetricName = Field(description="The histogram metric (in milliseconds).")
    threshold: LatencyBound = Field(description="The latency an event must meet to count as good.")
    buckets: tuple[LatencyBound, ...] | None = Field(
        default=None,
        description="Bucket bounds of a histogram steadystream does not emit itself; the "
        "threshold must be one of them. Not needed for steadystream's own histograms, whose "
        "buckets always include every spec threshold.",
    )

    @property
    def threshold_ms(self) -> float:
        """The threshold as the histogram's ``le`` bound, in milliseconds."""
        return round(self.threshold * 1000, 6)


class ErrorsIndicator(_Model):
    """Bad events counted by ``errors``, out of ``total``."""

    errors: MetricName = Field(default=c.ERRORS_TOTAL, description="Counter of bad events.")
    total: MetricName = Field(default=c.REQUESTS_TOTAL, description="Counter of all events.")


#: Sloth's window placeholder: ``{{.window}}`` (spaces inside the braces allowed), replaced by
#: each window the rules read (``5m``, ``1h``, ...).
WINDOW_PLACEHOLDER = re.compile(r"\{\{\s*\.window\s*\}\}")
MAX_QUERY_CHARS = 4000
_PAIRS = {")": "(", "]": "[", "}": "{"}


def query_problem(query: str) -> str | None:
    """Why ``query`` cannot be a generic SLI query, or ``None``. Cheap checks only (Prometheus
    parses it for real when it loads the rules): the window placeholder, balanced brackets
    outside string literals, no backquote (annotations embed queries in Go raw strings) and no
    Go template besides the placeholder."""
    if not query.strip():
        return "the query is empty"
    if len(query) > MAX_QUERY_CHARS:
        return f"the query is over {MAX_QUERY_CHARS} characters"
    if not WINDOW_PLACEHOLDER.search(query):
        return (
            "the query has no {{.window}} placeholder; write its range as [{{.window}}], "
            "e.g. sum(rate(http_requests_total[{{.window}}]))"
        )
    # Same length, so the character positions below are the query's own.
    rest = WINDOW_PLACEHOLDER.sub(lambda m: "w" * len(m.group()), query)
    if "{{" in rest or "}}" in rest:
        return "the only Go template a query may hold is the {{.window}} placeholder"
    if "`" in rest:
        return (
            "the query contains a backquote, which alert annotations cannot embed; "
            "quote strings with double or single quotes"
        )
    stack: list[tuple[str, int]] = []
    quote_char: str | None = None
    escaped = False
    for i, ch in enumerate(rest):
        if quote_char is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote_char:
                quote_char = None
            continue
        if ch in "\"'":
            quote_char = ch
        elif ch == "#":
            # The rules fold a query onto one line, where a comment would swallow the rest.
            return f"a '#' comment at character {i + 1} of the query; remove it"
        elif ch in "([{":
            stack.append((ch, i))
        elif ch in _PAIRS:
            if not stack or stack[-1][0] != _PAIRS[ch]:
                return f"unbalanced {ch!r} at character {i + 1} of the query"
            stack.pop()
    if quote_char is not None:
        return f"unclosed {quote_char} string in the query"
    if stack:
        ch, i = stack[-1]
        return f"{ch!r} at character {i + 1} of the query is never closed"
    return None


def _check_query(value: str | None) -> str | None:
    if value is not None:
        problem = query_problem(value)
        if problem:
            raise ValueError(problem)
    return value


Query = Annotated[
    str,
    AfterValidator(_check_query),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": WINDOW_PLACEHOLDER.pattern,
            "maxLength": MAX_QUERY_CHARS,
            "examples": ['sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))'],
        }
    ),
]


class Indicator(_Model):
    """Exactly one of: ``latency`` or ``errors`` (steadystream's stream metrics, or any
    counter/histogram), or a generic PromQL pair: ``total_query`` with ``errors_query`` (bad
    events) or ``good_query`` (good events), each holding Sloth's ``{{.window}}`` placeholder.

    Generic query values are read as ``values`` says: ``rate`` (the default, as Sloth's
    ``rate(...[{{.window}}])`` queries return: events per second, multiplied by the window's
    seconds to count events) or ``count`` (events over the window, e.g. ``increase`` or
    ``sum_over_time``)."""

    latency: LatencyIndicator | None = None
    errors: ErrorsIndicator | None = None
    errors_query: Query | None = Field(
        default=None, description="PromQL of bad events over {{.window}} (generic SLI)."
    )
    good_query: Query | None = Field(
        default=None, description="PromQL of good events over {{.window}} (generic SLI)."
    )
    total_query: Query | None = Field(
        default=None, description="PromQL of all events over {{.window}} (generic SLI)."
    )
    values: Literal["rate", "count"] | None = Field(
        default=None,
        description="How the generic queries' values read: 'rate' (events per second, the "
        "default) or 'count' (events over the window).",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Indicator:
        generic = any(q is not None for q in (self.errors_query, self.good_query, self.total_query))
        if (self.latency is not None) + (self.errors is not None) + generic != 1:
            raise ValueError(
                "give exactly one of 'latency', 'errors', or a generic PromQL pair "
                "('total_query' with 'errors_query' or 'good_query')"
            )
        problems = []
        if generic:
            if self.total_query is None:
                problems.append(
                    ("total_query", "a generic indicator needs total_query (all events)")
                )
            if (self.errors_query is None) == (self.good_query is None):
                problems.append(
                    (
                        "errors_query",
                        "give exactly one of errors_query (bad events) or good_query "
                        "(good events) beside total_query",
                    )
                )
        elif self.values is not None:
            problems.append(("values", "values applies to generic PromQL indicators only"))
        _field_problems(problems)
        return self

    @property
    def generic(self) -> bool:
        """Whether this is a generic PromQL indicator (not on steadystream's stream metrics)."""
        return self.total_query is not None

    @property
    def per_second(self) -> bool:
        """Whether the generic queries return events per second (else events per window)."""
        return self.values != "count"


class AlertOverride(_Model):
    """Labels, annotations and on/off of one SLO's page or ticket alerts."""

    enabled: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels", "annotations")
    @classmethod
    def _plain(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        return _alert_fields(value, info.field_name == "labels")


#: Labels steadystream sets on every SLO alert itself, which an SLO's alerts may not override.
RESERVED_ALERT_LABELS = frozenset({"service", "slo", "long", "short", "failure_class"})


def _alert_fields(value: dict[str, str], labels: bool) -> dict[str, str]:
    problems = []
    for key, val in value.items():
        if not _LABEL_RE.match(key) or key.startswith("__"):
            problems.append((key, f"invalid Prometheus label name {key!r}"))
        elif labels and key in RESERVED_ALERT_LABELS:
            problems.append(
                (key, f"label {key!r} is set by steadystream on every SLO alert and cannot be set")
            )
        elif not labels and key in ("description", "runbook_url", "dashboard_url"):
            problems.append(
                (key, f"annotation {key!r} is written by steadystream; set 'summary' or another")
            )
        if "{{" in val or "}}" in val or "`" in val or "\n" in val:
            problems.append(
                (
                    key,
                    f"{val!r} contains '{{{{', '}}}}', '`' or a newline, which generated alert "
                    "templates cannot hold",
                )
            )
    _field_problems(problems)
    return value


class SLOAlerts(_Model):
    """This SLO's own burn-rate alert name, labels and annotations (Sloth's ``alerting``).
    Page alerts are the tiers of severity ``critical``/``page``, tickets the others."""

    name: str | None = Field(
        default=None,
        description="Alert name of this SLO's burn-rate alerts (default: steadystream's, "
        "which the generated Alertmanager inhibit rules match).",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Labels of every alert.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations of every alert ('summary' replaces ours)."
    )
    page: AlertOverride = Field(default_factory=AlertOverride)
    ticket: AlertOverride = Field(default_factory=AlertOverride)

    @field_validator("name")
    @classmethod
    def _alert_name(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", value):
            raise ValueError(f"invalid Prometheus alert name {value!r}")
        return value

    @field_validator("labels", "annotations")
    @classmethod
    def _plain(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        return _alert_fields(value, info.field_name == "labels")

    def override(self, severity: str) -> AlertOverride:
        """The page or ticket override for an alert of ``severity``."""
        return self.page if severity in ("critical", "page") else self.ticket


class SLO(_Model):
    """One service level objective."""

    name: Name = Field(description="Unique, lowercase, '-'-separated; used in rule and file names.")
    objective: Percent = Field(description="Share of good events, e.g. '95%' or 0.95.")
    description: str = ""
    indicator: Indicator
    alerts: SLOAlerts = Field(
        default_factory=SLOAlerts,
        description="This SLO's alert name, labels, annotations and page/ticket overrides.",
    )

    @field_validator("objective")
    @classmethod
    def _objective_range(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError("objective must be above 0% and below 100% (100% leaves no budget)")
        return value

    @property
    def kind(self) -> Literal["latency", "errors", "query"]:
        if self.indicator.generic:
            return "query"
        return "latency" if self.indicator.latency is not None else "errors"

    @property
    def error_budget(self) -> float:
        """The allowed share of bad events, ``1 - objective``."""
        return 1.0 - self.objective


class Tier(_Model):
    """A multi-window burn-rate alert tier (SRE Workbook, chapter 5)."""

    severity: Literal["critical", "warning", "info", "page", "ticket"] = Field(
        description="Alert severity label."
    )
    long: Duration = Field(description="Long window; the burn must be sustained over it.")
    short: Duration = Field(description="Short window; stops the alert soon after recovery.")
    budget: Percent = Field(description="Share of the period's error budget spent in 'long'.")
    for_: Duration | None = Field(default=None, alias="for", description="Prometheus 'for:'.")
    enabled: bool = True

    def factor(self, period: float) -> float:
        """Burn-rate factor: budget share x period / long window (14.4 for 2 % in 1 h of 30 d)."""
        return self.budget * period / self.long

    @field_validator("budget")
    @classmethod
    def _some_budget(cls, value: float) -> float:
        # A 0% share is a burn-rate threshold of 0: the first failed request would page.
        if value <= 0:
            raise ValueError(
                "budget must be above 0% (0% makes every failed event fire the alert); "
                "the SRE Workbook tiers spend 2%, 5% and 10%"
            )
        return value

    @model_validator(mode="after")
    def _windows(self) -> Tier:
        if self.short >= self.long:
            _field_problems([("short", "short window must be shorter than the long one")])
        return self


#: The SRE Workbook's tiers, without ``for``: the short window already rides out a bad scrape,
#: and a ``for`` only delays the page (a hard outage by its full length).
DEFAULT_TIERS: tuple[dict[str, Any], ...] = (
    {"severity": "critical", "long": "1h", "short": "5m", "budget": "2%"},
    {"severity": "critical", "long": "6h", "short": "30m", "budget": "5%"},
    {"severity": "warning", "long": "1d", "short": "2h", "budget": "10%"},
    {"severity": "warning", "long": "3d", "short": "6h", "budget": "10%"},
)


class Outage(_Model):
    """The hard-outage fast path: pages when most events of an SLO went bad over the last 5
    minutes, minutes before the fastest burn-rate tier can (its long window must fill first)."""

    enabled: bool = True
    ratio: Percent = Field(
        default=0.5,
        description="Bad share of the SLO's events over 5m above which it pages.",
    )
    severity: Literal["critical", "warning", "info", "page", "ticket"] = "critical"
    for_: Duration | None = Field(default=None, alias="for", description="Prometheus 'for:'.")

    @field_validator("ratio")
    @classmethod
    def _below_all(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError("ratio must be above 0% and below 100% (every event bad)")
        return value


class FailureClassAlert(_Model):
    """Overrides for one failure class's alert. ``threshold`` means what the class's runbook says
    (a ratio for retry-storm, a per-second rate for upstream-rate-limit, ...); ``None`` keeps the
    built-in default."""

    enabled: bool = True
    threshold: float | None = Field(default=None, ge=0)
    for_: Duration | None = Field(default=None, alias="for")
    severity: Literal["critical", "warning", "info", "page", "ticket"] | None = None


class Alerting(_Model):
    tiers: tuple[Tier, ...] = Field(default=DEFAULT_TIERS)  # type: ignore[assignment]
    min_events: int = Field(
        default=20,
        ge=0,
        description="Low-traffic guard: burn-rate alerts need at least this many events in the "
        "long window, so one failed request cannot page. Each tier raises it to the events above "
        "which one bad event stays under its threshold; 0 turns every guard off.",
    )
    window: Duration = Field(
        default="5m",  # type: ignore[arg-type]
        description="Rate window of the failure-class signals (the increase, rate and p99 "
        "each of them reads). Five minutes rides out a bad scrape; a demo that compresses "
        "time sets seconds (at least four scrape intervals, so a rate has samples to read). "
        "The generated promtool tests play one sample a minute: with another window they leave "
        "the failure-class alerts out.",
    )
    outage: Outage = Field(default_factory=Outage)
    failure_classes: dict[
        Literal[c.FAILURE_CLASSES],  # type: ignore[valid-type]
        FailureClassAlert,
    ] = Field(default_factory=dict)

    @field_validator("window")
    @classmethod
    def _window_bounds(cls, value: float) -> float:
        if not 1.0 <= value <= 3600.0:
            raise ValueError(
                f"window must be from 1s to 1h, got {format_duration(value)}; the default 5m "
                "suits a 15-60s scrape"
            )
        return value

    @model_validator(mode="after")
    def _some_tier(self) -> Alerting:
        # Every SLO has a runbook, a burn panel and budget rules; with no tier enabled nothing
        # would ever page or ticket on them, and their runbooks would be reached by no alert.
        if not any(t.enabled for t in self.tiers):
            _field_problems(
                [
                    (
                        "tiers",
                        "at least one burn-rate tier must be enabled, or no SLO ever alerts; "
                        "leave 'tiers' out for the four SRE Workbook defaults",
                    )
                ]
            )
        return self


class Timeouts(_Model):
    dial: Duration = Field(default="1s", description="TCP connect.")  # type: ignore[assignment]
    tls_handshake: Duration = Field(default="1s", description="TLS handshake.")  # type: ignore[assignment]
    first_token: Duration = Field(default="3s", description="Open to first content.")  # type: ignore[assignment]
    stream_idle: Duration = Field(default="8s", description="Longest gap without content.")  # type: ignore[assignment]
    total: Duration = Field(default="45s", description="Whole logical stream.")  # type: ignore[assignment]

    @model_validator(mode="after")
    def _within_total(self) -> Timeouts:
        problems = [
            (
                name,
                f"{name} ({format_duration(value)}) must not exceed total "
                f"({format_duration(self.total)})",
            )
            for name, value in (
                ("first_token", self.first_token),
                ("stream_idle", self.stream_idle),
            )
            if value > self.total
        ]
        _field_problems(problems)
        return self


class Retry(_Model):
    max_retries: int = Field(default=3, ge=0, le=10)
    base_backoff: Duration = "300ms"  # type: ignore[assignment]
    max_backoff: Duration = "5s"  # type: ignore[assignment]
    jitter: Percent = "25%"  # type: ignore[assignment]
    budget: Percent = Field(
        default="20%",  # type: ignore[arg-type]
        description="Retries may be at most this share of requests (plus min_per_second).",
    )
    min_per_second: float = Field(
        default=1.0, ge=0, description="Retry budget floor, so low traffic can still retry."
    )
    retry_after_cap: Duration = Field(
        default="30s",  # type: ignore[arg-type]
        description="Longest Retry-After honoured; a longer one fails the attempt instead.",
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> Retry:
        problems = []
        if self.base_backoff > self.max_backoff:
            problems.append(
                (
                    "base_backoff",
                    f"base_backoff ({format_duration(self.base_backoff)}) must not exceed "
                    f"max_backoff ({format_duration(self.max_backoff)})",
                )
            )
        if self.jitter >= 1:
            problems.append(("jitter", "jitter must be below 100%"))
        _field_problems(problems)
        return self


class FlowControl(_Model):
    max_buffer: Size = "512KiB"  # type: ignore[assignment]
    on_overflow: Literal["pause", "drop", "terminate"] = "terminate"

    @field_validator("max_buffer")
    @classmethod
    def _buffer_floor(cls, value: int) -> int:
        if value < 1024:
            raise ValueError("max_buffer below 1KiB would cut ordinary streams; use 256KiB-1MiB")
        return value


class Checkpointing(_Model):
    every: int = Field(default=16, ge=1, description="Checkpoint every N content chunks.")


class AdmissionQueue(_Model):
    """Streams that find every slot taken wait here, first in first out, instead of being
    refused at once."""

    max: int = Field(ge=1, le=100_000, description="Streams that may wait at once.")
    timeout: Duration = Field(  # type: ignore[assignment]
        default="2s",
        description="Longest wait for a slot; it counts toward time to first token and total.",
    )


class Overload(_Model):
    """How this process notices that it lags (its event loop, or its sync watchdog, runs late)
    and what it does then: a first-token or idle deadline found passed while lagging gets a
    grace instead of blaming the upstream, and new streams are shed at ingress."""

    lag: Duration = Field(  # type: ignore[assignment]
        default="500ms",
        description="The process lags when its event loop (or watchdog) runs this late: "
        "deadlines found passed then get a grace, and a lag sustained at this level sheds "
        "new streams (until it falls below half of it).",
    )
    shed: bool = Field(
        default=True,
        description="Reject new streams with reason 'overloaded' while the process lags.",
    )
    retry_after: Duration = Field(  # type: ignore[assignment]
        default="1s",
        description="The retry-after hint an 'overloaded' rejection carries.",
    )

    @field_validator("lag")
    @classmethod
    def _lag_range(cls, value: float) -> float:
        if not 0.01 <= value <= 10:
            raise ValueError(
                "lag must be between 10ms and 10s: a loop later than that has long missed its "
                "deadlines (default 500ms)"
            )
        return value


class Ingress(_Model):
    max_concurrent: int = Field(default=256, ge=1)
    rate: Rate = "50/s"  # type: ignore[assignment]
    burst: int | None = Field(
        default=None, ge=1, description="Token bucket size; default: one second of 'rate'."
    )
    queue: AdmissionQueue | None = Field(
        default=None,
        description="Admission queue in front of the concurrency cap; none: refuse at once.",
    )
    overload: Overload = Field(
        default_factory=Overload,
        description="Lag-aware deadlines and shedding when the process itself lags.",
    )


_SHARED_SCHEMES = ("redis://", "rediss://", "unix://")


class Shared(_Model):
    """Limits shared by every process and host running this spec and service, in Redis: the
    ingress rate limit, the retry budget and (optionally) a cluster-wide concurrency cap. When
    the store is unreachable or slower than ``timeout``, each process falls back to its own
    limits at once."""

    url: str = Field(
        description="Redis URL: redis://[[user]:password@]host[:port][/db], rediss:// (TLS) or "
        "unix:///path/to/socket. STEADYSTREAM_REDIS_URL is used when the spec has no 'shared'.",
    )
    prefix: str = Field(
        default="steadystream",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="First part of every key (the service name follows), so environments can "
        "share one Redis.",
    )
    timeout: Duration = Field(  # type: ignore[assignment]
        default="50ms",
        description="Longest wait for Redis per decision (connect and answer); past it the "
        "decision is taken on local limits.",
    )
    max_concurrent: int | None = Field(
        default=None,
        ge=1,
        description="Cluster-wide cap on open streams (leases that expire after the total "
        "timeout, so a dead process cannot hold slots); the per-process ingress.max_concurrent "
        "still applies.",
    )

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(_SHARED_SCHEMES) or any(ch.isspace() for ch in value):
            raise ValueError(
                "url must be a Redis URL without spaces: redis://host:6379/0, rediss://… (TLS) "
                f"or unix:///path/to/redis.sock; got {value.split('@')[-1]!r}"
            )
        return value

    @field_validator("timeout")
    @classmethod
    def _short_timeout(cls, value: float) -> float:
        if value > 5:
            raise ValueError(
                "timeout above 5s would stall every stream while Redis is slow; "
                "use tens of milliseconds (default 50ms)"
            )
        return value


class Pool(_Model):
    """The HTTP client's connection pool (the clients built by ``openai_client_options``):
    how many connections it may open to one upstream and keep idle. A stream that finds every
    connection busy waits for one; that wait is its ``pool`` phase."""

    max_connections: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Connections open at once (busy and idle); more concurrent requests wait "
        "for a free one, up to the pool timeout (the dial timeout).",
    )
    max_keepalive: int = Field(
        default=100,
        ge=0,
        le=100_000,
        description="Idle connections kept open for reuse; at most max_connections.",
    )

    @model_validator(mode="after")
    def _keepalive_within_max(self) -> Pool:
        if self.max_keepalive > self.max_connections:
            _field_problems(
                [
                    (
                        "max_keepalive",
                        f"max_keepalive ({self.max_keepalive}) must not exceed max_connections "
                        f"({self.max_connections})",
                    )
                ]
            )
        return self


class StreamPolicy(_Model):
    """The runtime policy the stream wrapper enforces."""

    timeouts: Timeouts = Field(default_factory=Timeouts)
    retry: Retry = Field(default_factory=Retry)
    flow_control: FlowControl = Field(default_factory=FlowControl)
    checkpoint: Checkpointing = Field(default_factory=Checkpointing)
    ingress: Ingress = Field(default_factory=Ingress)
    shared: Shared | None = Field(
        default=None,
        description="Share the rate limit and retry budget across processes and hosts "
        "through Redis (see docs/instrumentation.md, 'Running many workers and hosts').",
    )
    pool: Pool | None = Field(
        default=None,
        description="Connection pool of the HTTP clients the package builds; none: 1000 "
        "connections, 100 kept alive (the openai SDK's own defaults).",
    )
    max_models: int = Field(
        default=c.DEFAULT_MAX_MODELS,
        ge=1,
        description="Distinct model label values before further models collapse into 'other'.",
    )
    max_event_bytes: Size = Field(  # type: ignore[assignment]
        default="8MiB",
        ge=1024,
        description="Largest SSE line or event the wrapper parses from a byte body (a real "
        "event, a base64 image included, fits well within the default); past it the stream ends "
        "with EventTooLarge.",
    )


class Links(_Model):
    runbooks: str | None = Field(
        default=None, description="Base URL of the published runbooks; default: relative paths."
    )
    grafana: str | None = Field(default=None, description="Base URL of Grafana.")

    @field_validator("runbooks", "grafana")
    @classmethod
    def _base_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Both end up in alert annotations (Go templates) and in Markdown and Grafana links.
        if value is None:
            return value
        if not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
            raise ValueError(
                f"{info.field_name} must be an absolute http(s) URL without spaces, "
                f"e.g. https://example.com/{info.field_name}; got {value!r}"
            )
        if "{{" in value or "}}" in value or "`" in value:
            raise ValueError(
                f"{value!r} contains '{{{{', '}}}}' or '`', which alert templates reject"
            )
        return value


class Owners(_Model):
    """Who answers for the service: printed in every runbook's Escalation section."""

    team: str | None = Field(default=None, description="The team that owns the service.")
    escalation: str | None = Field(
        default=None,
        description="Where to escalate: a pager rotation, a chat channel, a phone number.",
    )
    provider_status: str | None = Field(
        default=None, description="The upstream LLM provider's status page."
    )

    @field_validator("team", "escalation", "provider_status")
    @classmethod
    def _one_line(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Printed inside Markdown lists and tables: a newline or a '|' would break them.
        if value is not None and (not value.strip() or "\n" in value or "|" in value):
            raise ValueError(f"{info.field_name} must be one non-empty line without '|'")
        return value


# ------------------------------------------------------------------------- kubernetes
# `generate --format kubernetes`: the namespace and labels of the objects it writes. Kubernetes'
# own name syntax (apimachinery's validation): object names are DNS-1123 subdomains, namespaces
# DNS-1123 labels, label and annotation keys qualified names, label values at most 63 characters.
_DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN_RE = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
#: Longest DNS-1123 label (a namespace, a label value, the name part of a key).
K8S_MAX_LABEL = 63
#: Longest DNS-1123 subdomain (an object name, the prefix of a key).
K8S_MAX_SUBDOMAIN = 253


def dns1123_subdomain_problem(value: str) -> str | None:
    """Why ``value`` is not a valid Kubernetes object name (a DNS-1123 subdomain), or None."""
    if len(value) > K8S_MAX_SUBDOMAIN:
        return f"{value!r} is longer than {K8S_MAX_SUBDOMAIN} characters"
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        return (
            f"{value!r} is not a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', "
            "each '.'-separated part starting and ending with a letter or digit"
        )
    return None


def dns1123_label_problem(value: str) -> str | None:
    """Why ``value`` is not a valid namespace (a DNS-1123 label), or None."""
    if len(value) > K8S_MAX_LABEL:
        return f"{value!r} is longer than {K8S_MAX_LABEL} characters"
    if not _DNS1123_LABEL_RE.match(value):
        return (
            f"{value!r} is not a DNS-1123 label: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return None


def k8s_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label or annotation key (``[prefix/]name``), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or dns1123_subdomain_problem(prefix)):
        return f"key {key!r}: the prefix before '/' must be a DNS-1123 subdomain (e.g. example.com)"
    if len(name) > K8S_MAX_LABEL or not _QUALIFIED_NAME_RE.match(name):
        return (
            f"key {key!r}: the name must be 1-{K8S_MAX_LABEL} letters, digits, '-', '_' "
            "or '.', a letter or digit at both ends"
        )
    return None


def k8s_label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a valid label value, or None."""
    if len(value) > K8S_MAX_LABEL or not _LABEL_VALUE_RE.match(value):
        return (
            f"label value {value!r}: at most {K8S_MAX_LABEL} letters, digits, '-', '_' or "
            "'.', a letter or digit at both ends"
        )
    return None


#: The label the Grafana sidecar (kube-prometheus-stack, the Grafana Helm chart) looks for.
DEFAULT_DASHBOARD_LABELS: dict[str, str] = {"grafana_dashboard": "1"}


class Kubernetes(_Model):
    """How ``generate --format kubernetes`` packages the output: PrometheusRule objects for
    prometheus-operator and dashboard ConfigMaps for the Grafana sidecar."""

    namespace: str | None = Field(
        default=None,
        description="Namespace of every object (metadata.namespace and the kustomization's "
        "namespace); default: none, the namespace kubectl or kustomize applies to.",
    )
    rule_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels on every PrometheusRule, so the Prometheus object's ruleSelector "
        "picks them up (kube-prometheus-stack: {release: <helm release>}).",
    )
    dashboard_labels: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_DASHBOARD_LABELS),
        description="Labels on every dashboard ConfigMap, the Grafana sidecar's label.",
    )
    dashboard_folder: str | None = Field(
        default=None,
        description="Grafana folder of the dashboards, as the annotation the sidecar's "
        "folderAnnotation names; default: no annotation.",
    )
    folder_annotation: str = Field(
        default="grafana_folder",
        description="The annotation key the sidecar reads the folder from (its folderAnnotation).",
    )

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        problem = None if value is None else dns1123_label_problem(value)
        if problem:
            raise ValueError(f"invalid namespace: {problem}")
        return value

    @field_validator("rule_labels", "dashboard_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        problems = []
        for key, val in value.items():
            problem = k8s_key_problem(key) or k8s_label_value_problem(val)
            if problem:
                problems.append((key, problem))
        _field_problems(problems)
        return value

    @field_validator("folder_annotation")
    @classmethod
    def _annotation_key(cls, value: str) -> str:
        problem = k8s_key_problem(value)
        if problem:
            raise ValueError(f"invalid annotation {problem}")
        return value

    @field_validator("dashboard_folder")
    @classmethod
    def _folder(cls, value: str | None) -> str | None:
        # A Grafana folder title, one line; the sidecar makes it a directory name.
        if value is not None and (not value.strip() or "\n" in value or "/" in value):
            raise ValueError("dashboard_folder must be one non-empty line without '/'")
        return value


DEFAULT_SLOS: tuple[dict[str, Any], ...] = (
    {
        "name": "time-to-first-token",
        "objective": "95%",
        "description": "95% of streams deliver their first content within 2.5 s.",
        "indicator": {"latency": {"metric": c.FIRST_TOKEN_LATENCY, "threshold": "2.5s"}},
    },
    {
        "name": "recovery-time",
        "objective": "99%",
        "description": "99% of interrupted streams resume within 8 s.",
        "indicator": {"latency": {"metric": c.RECOVERY_LATENCY, "threshold": "8s"}},
    },
    {
        "name": "stream-errors",
        "objective": "99%",
        "description": "Fewer than 1% of streams end in an error.",
        "indicator": {"errors": {"errors": c.ERRORS_TOTAL, "total": c.REQUESTS_TOTAL}},
    },
)


class Spec(_Model):
    """The one SLO spec. Build with :func:`steadystream.load_spec` or
    :func:`steadystream.default_spec`; ``Spec.model_validate(data)`` also runs every check."""

    version: Literal[1] = Field(description="Spec format version.")
    service: str = Field(description="Service name; the 'service' label of every metric.")
    selector: dict[str, str] = Field(
        default_factory=dict, description="Label matchers added to every generated query."
    )
    period: Duration = Field(default="28d", description="SLO period (error budget window).")  # type: ignore[assignment]
    links: Links = Field(default_factory=Links)
    owners: Owners = Field(default_factory=Owners)
    slos: tuple[SLO, ...] = Field(default=DEFAULT_SLOS, min_length=1)  # type: ignore[assignment]
    alerting: Alerting = Field(default_factory=Alerting)
    stream: StreamPolicy = Field(default_factory=StreamPolicy)
    kubernetes: Kubernetes = Field(
        default_factory=Kubernetes,
        description="Namespace and labels of the objects `generate --format kubernetes` writes.",
    )

    @field_validator("service")
    @classmethod
    def _service_name(cls, value: str) -> str:
        if not _SERVICE_RE.match(value) or len(value) > 63:
            raise ValueError(
                f"invalid service name {value!r}: letters, digits, '.', '_' and '-', "
                "at most 63 characters"
            )
        return value

    @field_validator("selector")
    @classmethod
    def _selector_labels(cls, value: dict[str, str]) -> dict[str, str]:
        problems = []
        for key, val in value.items():
            if not _LABEL_RE.match(key) or key.startswith("__"):
                problems.append((key, f"invalid Prometheus label name {key!r}"))
            # Alert labels and annotations are Go templates, and annotation queries are
            # backquoted: these would break the generated rules rather than match anything.
            bad = [t for t in ("{{", "}}", "`") if t in val]
            if bad:
                problems.append(
                    (
                        key,
                        f"label value {val!r} contains {' and '.join(repr(t) for t in bad)}, "
                        "which cannot go into Prometheus alert templates; match with a "
                        "value without them",
                    )
                )
        _field_problems(problems)
        return value

    @model_validator(mode="after")
    def _semantics(self, info: ValidationInfo) -> Spec:
        # The loader defers these to report them with file positions; direct construction
        # reports them here.
        if info.context and info.context.get("defer_semantic_checks"):
            return self
        problems = semantic_problems(self)
        if problems:
            raise ValueError("; ".join(f"{_dotted(loc)}: {msg}" for loc, msg in problems))
        return self

    def slo(self, name: str) -> SLO:
        """The SLO called ``name``."""
        for slo in self.slos:
            if slo.name == name:
                return slo
        raise KeyError(name)

    def latency_thresholds_ms(self, metric: str) -> tuple[float, ...]:
        """Every latency threshold the spec sets on ``metric``, in milliseconds."""
        return tuple(
            sorted(
                {
                    slo.indicator.latency.threshold_ms
                    for slo in self.slos
                    if slo.indicator.latency is not None and slo.indicator.latency.metric == metric
                }
            )
        )

    def histogram_buckets(self) -> dict[str, tuple[float, ...]]:
        """Bucket bounds (ms) of each stream histogram: the conventions defaults plus every
        latency threshold the spec sets on it, so an SLO on ``le="2500"`` always has its bucket.

        The instrumentation builds its histograms from this, and the alert generator reads it
        to know the highest bound a quantile can show, so the two always agree.
        """
        defaults = {
            c.FIRST_TOKEN_LATENCY: c.LATENCY_BUCKETS_MS,
            c.RECOVERY_LATENCY: c.LATENCY_BUCKETS_MS,
            c.CHUNK_GAP: c.GAP_BUCKETS_MS,
            c.PHASE_DURATION: tuple(sorted(set(c.GAP_BUCKETS_MS) | set(c.LATENCY_BUCKETS_MS))),
            c.LOOP_LAG: c.GAP_BUCKETS_MS,
        }
        out = {}
        for metric in c.HISTOGRAMS:
            bounds = set(defaults[metric]) | set(self.latency_thresholds_ms(metric))
            out[metric] = tuple(sorted(float(b) for b in bounds))
        return out


Loc = tuple[str | int, ...]


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def semantic_problems(spec: Spec) -> list[tuple[Loc, str]]:
    """Cross-field problems, each with the location of the field at fault."""
    return cross_problems(
        spec.period,
        list(enumerate(spec.slos)),
        list(enumerate(spec.alerting.tiers)),
        tiers_from_defaults="tiers" not in spec.alerting.model_fields_set,
    )


def cross_problems(
    period: float,
    slos: list[tuple[int, SLO]],
    tiers: list[tuple[int, Tier]],
    *,
    tiers_from_defaults: bool = False,
) -> list[tuple[Loc, str]]:
    """Problems between SLOs, tiers and the period. Takes the parts that validated on their
    own (with their indexes), so they are reported even when other parts of the spec failed.

    With ``tiers_from_defaults`` (the spec has no ``alerting.tiers``), a tier problem is not
    located at a tier, which is nowhere in the file, but at the field that makes the default
    tier fail: the SLO's ``objective`` or the ``period``."""
    problems: list[tuple[Loc, str]] = []
    seen: dict[str, int] = {}
    for i, slo in slos:
        if slo.name in seen:
            problems.append(
                (
                    ("slos", i, "name"),
                    f"duplicate SLO name {slo.name!r} (first used by slos[{seen[slo.name]}])",
                )
            )
        else:
            seen[slo.name] = i
        lat = slo.indicator.latency
        if lat is not None:
            problems.extend(_bucket_problems(i, lat))
        errs = slo.indicator.errors
        if errs is not None and errs.errors == errs.total:
            problems.append(
                (
                    ("slos", i, "indicator", "errors", "total"),
                    "the total counter must differ from the errors counter",
                )
            )

    windows: dict[tuple[float, float], int] = {}
    for j, tier in tiers:
        loc: Loc = ("alerting", "tiers", j)
        default = f"the default alerting tier alerting.tiers[{j}]"
        if tier.long > period:
            if tiers_from_defaults:
                problems.append(
                    (
                        ("period",),
                        f"period {format_duration(period)} is shorter than the long window "
                        f"({format_duration(tier.long)}) of {default}; lengthen the period, "
                        "or set alerting.tiers",
                    )
                )
            else:
                problems.append(((*loc, "long"), "long window must not exceed the SLO period"))
        if not tier.enabled:
            continue
        # Two enabled tiers on the same windows are one alert twice: the lower threshold
        # always fires with the higher, and with one severity their ALERTS series collide.
        first = windows.setdefault((tier.long, tier.short), j)
        if first != j:
            problems.append(
                (
                    (*loc, "long"),
                    f"tiers[{first}] already alerts on the windows "
                    f"{format_duration(tier.long)}/{format_duration(tier.short)}; give each "
                    "enabled tier its own long and short window",
                )
            )
        factor = tier.factor(period)
        for i, slo in slos:
            if factor * slo.error_budget > 1 and tiers_from_defaults:
                problems.append(
                    (
                        ("slos", i, "objective"),
                        f"objective {format_percent(slo.objective)} leaves an error budget of "
                        f"{format_percent(slo.error_budget)}, which {default} (burn-rate factor "
                        f"{factor:.4g}) could never page on; raise the objective, or set "
                        "alerting.tiers",
                    )
                )
            elif factor * slo.error_budget > 1:
                problems.append(
                    (
                        (*loc, "budget"),
                        f"can never fire for SLO {slo.name!r}: burn-rate factor {factor:.4g} x "
                        f"error budget {slo.error_budget:.4g} > 1 (more than 100% of events "
                        "would have to fail); lower the budget share or lengthen the long window",
                    )
                )
    return problems


def _bucket_problems(i: int, lat: LatencyIndicator) -> list[tuple[Loc, str]]:
    loc: Loc = ("slos", i, "indicator", "latency", "threshold")
    ms = lat.threshold * 1000
    if lat.metric in c.HISTOGRAMS:
        if abs(ms - round(ms)) > 1e-6:
            return [
                (
                    loc,
                    f"threshold {ms:g}ms is not a whole number of milliseconds, so it cannot be a "
                    f"bucket boundary of {lat.metric}",
                )
            ]
        return []
    if lat.buckets is None:
        return [
            (
                ("slos", i, "indicator", "latency", "metric"),
                f"{lat.metric} is not a steadystream histogram: list its bucket bounds in "
                "'buckets' so the threshold can be checked against them (steadystream's: "
                f"{', '.join(c.HISTOGRAMS)})",
            )
        ]
    if not any(abs(b * 1000 - ms) < 1e-6 for b in lat.buckets):
        return [(loc, f"threshold {ms:g}ms is not one of the histogram's buckets")]
    return []
