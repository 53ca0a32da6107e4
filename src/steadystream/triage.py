"""``steadystream triage``: what is wrong right now, and which runbook to open.

For the on-call engineer who has just been paged. :func:`triage` asks a Prometheus (HTTP API,
instant queries) for the signal behind every failure class and every SLO's burn rate, exactly
the expressions and thresholds the generated alerts use (from
:mod:`steadystream.catalog.alerting`, so triage and the alerts can never disagree), and ranks
the failure classes active now: causes before their symptoms (each class's ``explained_by`` in
the failure-class registry: a retry storm during a rate limit is the rate limit's
consequence), then by how far past its threshold the worst signal is. Each ranked class
carries its evidence (the query, the value, the threshold and the labels of the worst series)
and the runbook to open, as a path or as a URL under ``links.runbooks``.

It says plainly when it cannot tell:

* Prometheus unreachable, answering with errors, or with replies that break the HTTP API's
  schema: :class:`PrometheusUnreachable`, exit 3 (a malformed or late reply to one check is
  that check's ``error`` finding; the others still count);
* Prometheus reachable but holding no steadystream series for the service: ``has_data`` is
  False, exit 4 ("no data" is not "healthy", and a service Prometheus has never seen is not
  proof of ``no-traffic`` either: the name or the scrape may be wrong);
* a signal that matches no series while the service has data: state ``no_series`` (no such
  events recorded: healthy, shown apart from ``ok``).

Queries run :data:`MAX_CONCURRENT_QUERIES` at a time, each bounded by ``timeout`` and all of
them by ``deadline``; a check not answered by the deadline is an ``error`` finding. A bug in
triage itself is exit 5 (:data:`EXIT_INTERNAL`), never 1.

    report = triage(spec, "http://prometheus:9090")
    for ranked in report.ranked_classes:
        print(ranked.name, ranked.runbook, [f.value for f in ranked.evidence])
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from . import conventions as c
from .catalog.alerting import failure_class_signals, slo_burn_signals, slo_outage_signals
from .catalog.classes import explained_by as _explained_by
from .catalog.classes import failure_class
from .catalog.promql import matcher
from .spec import Spec

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_TIMEOUT",
    "EXIT_ACTIVE",
    "EXIT_HEALTHY",
    "EXIT_INTERNAL",
    "EXIT_NO_DATA",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "MAX_CONCURRENT_QUERIES",
    "MAX_REPLY_BYTES",
    "Check",
    "Finding",
    "PrometheusUnreachable",
    "Ranked",
    "TriageReport",
    "checks_for",
    "discover_services",
    "render_rich",
    "triage",
]

#: Exit codes of ``steadystream triage`` (also :attr:`TriageReport.exit_code`).
EXIT_HEALTHY = 0
"""Prometheus has the service's series and no failure class or SLO burn is active."""
EXIT_ACTIVE = 1
"""At least one failure class or SLO burn is active: open the first runbook."""
EXIT_USAGE = 2
"""Bad arguments or an invalid spec (argparse's own code for usage errors)."""
EXIT_UNREACHABLE = 3
"""Prometheus could not be reached, or answered a query with an error."""
EXIT_NO_DATA = 4
"""Prometheus answered, but holds no steadystream series for the service: cannot tell."""
EXIT_INTERNAL = 5
"""triage itself failed (a bug): the message names the error; nothing is known about the
service. Distinct from :data:`EXIT_ACTIVE`, so scripts never read a crash as an incident."""

#: Queries in flight at once: enough to finish ~30 checks quickly, few enough to be gentle
#: with a Prometheus that is already struggling during an incident.
MAX_CONCURRENT_QUERIES = 4
#: Largest reply read from Prometheus, in bytes (a reply to one of triage's aggregated
#: queries is a few KiB).
MAX_REPLY_BYTES = 32 * 1024 * 1024
#: Default HTTP timeout of one query, in seconds.
DEFAULT_TIMEOUT = 10.0
#: Default bound on the whole triage (every query), in seconds.
DEFAULT_DEADLINE = 60.0

Kind = Literal["failure_class", "slo_burn"]
State = Literal["active", "ok", "no_series", "error"]


class PrometheusUnreachable(RuntimeError):
    """Prometheus did not answer (connection refused, timeout, 5xx, not the HTTP API, a reply
    that breaks the API's schema)."""


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number of seconds above 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Check:
    """One signal triage evaluates: ``expr`` compared with ``threshold`` by ``op``.

    ``group`` is what gets ranked: a failure class id (``retry-storm``) or an SLO name;
    ``name`` is the signal within it (``retry-ratio``, ``stream-errors-1h-5m``). ``runbook`` is
    the path (``runbooks/retry-storm.md``) or URL to open when it is active.
    """

    kind: Kind
    group: str
    name: str
    expr: str
    threshold: float
    op: Literal[">", "<"]
    description: str
    runbook: str
    unit: str = ""
    severity: str = ""

    @classmethod
    def from_signal(cls, kind: Kind, signal: Any) -> Check:
        """A check from a :class:`steadystream.catalog.signal.Signal`."""
        return cls(
            kind=kind,
            group=signal.slo if kind == "slo_burn" and signal.slo else signal.failure_class,
            name=signal.name,
            expr=signal.expr,
            threshold=float(signal.threshold),
            op=signal.op,
            description=signal.description,
            runbook=signal.runbook,
            unit=signal.unit,
            severity=signal.severity,
        )

    def breached(self, value: float) -> bool:
        """Is ``value`` past the threshold?"""
        return value > self.threshold if self.op == ">" else value < self.threshold

    def score(self, value: float) -> float:
        """How far past the threshold ``value`` is, as a ratio (1.0 = at the threshold).

        A zero threshold ("any event is bad") scores 1 + the value, so it still ranks, and more
        events rank higher.
        """
        if self.op == ">":
            return value / self.threshold if self.threshold > 0 else 1.0 + value
        if value <= 0:
            return math.inf
        return self.threshold / value


@dataclass(frozen=True)
class Finding:
    """The outcome of one :class:`Check` at evaluation time, with its evidence."""

    check: Check
    state: State
    value: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    series: int = 0
    error: str | None = None

    @property
    def score(self) -> float | None:
        """Ratio to the threshold (see :meth:`Check.score`), None without a value."""
        return None if self.value is None else self.check.score(self.value)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "kind": self.check.kind,
            "group": self.check.group,
            "signal": self.check.name,
            "state": self.state,
            "value": self.value,
            "threshold": self.check.threshold,
            "op": self.check.op,
            "unit": self.check.unit,
            "score": _finite(self.score),
            "query": self.check.expr,
            "labels": dict(self.labels),
            "series": self.series,
            "description": self.check.description,
            "runbook": self.check.runbook,
            "error": self.error,
        }


@dataclass(frozen=True)
class Ranked:
    """One active failure class (or burning SLO) with its evidence, worst signal first.

    ``score`` is the worst signal's ratio to its threshold; ``explained_by`` lists the active
    classes that cause this one (it is then ranked after them).
    """

    kind: Kind
    name: str
    score: float
    runbook: str
    evidence: tuple[Finding, ...]
    explained_by: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "score": _finite(self.score),
            "runbook": self.runbook,
            "explained_by": list(self.explained_by),
            "evidence": [f.to_dict() for f in self.evidence],
        }


def _finite(score: float | None) -> float | None:
    return None if score is None or math.isinf(score) or math.isnan(score) else score


@dataclass(frozen=True)
class TriageReport:
    """Everything :func:`triage` found: every finding, and the active ones ranked."""

    prometheus: str
    service: str
    evaluated_at: float
    has_data: bool
    findings: tuple[Finding, ...]

    @property
    def ranked_classes(self) -> tuple[Ranked, ...]:
        """Active failure classes, most likely cause first: the first runbook to open.

        Classes not explained by another active class come first, by score; then the
        symptoms (a class another active class explains, as its registry record says), by
        score: a retry storm during a rate limit is the rate limit's consequence.
        """
        groups = _group(f for f in self.findings if f.check.kind == "failure_class")
        active = set(groups)
        ranked = []
        for name, findings in groups.items():
            causes = tuple(x for x in _explained_by(name) if x in active)
            ranked.append(_ranked("failure_class", name, findings, causes))
        return tuple(sorted(ranked, key=lambda r: (bool(r.explained_by), -r.score, r.name)))

    @property
    def burning(self) -> tuple[Ranked, ...]:
        """SLOs whose error budget burns faster than an alert tier allows, worst first."""
        groups = _group(f for f in self.findings if f.check.kind == "slo_burn")
        ranked = [_ranked("slo_burn", name, fs, ()) for name, fs in groups.items()]
        return tuple(sorted(ranked, key=lambda r: (-r.score, r.name)))

    @property
    def errors(self) -> tuple[Finding, ...]:
        """Findings whose query Prometheus rejected."""
        return tuple(f for f in self.findings if f.state == "error")

    @property
    def exit_code(self) -> int:
        """See the ``EXIT_*`` constants."""
        if self.errors:
            return EXIT_UNREACHABLE
        if not self.has_data:
            return EXIT_NO_DATA
        if self.ranked_classes or self.burning:
            return EXIT_ACTIVE
        return EXIT_HEALTHY

    @property
    def headline(self) -> str:
        """One sentence an on-call engineer reads first.

        A rejected query does not hide what the other queries found: with an active class the
        headline still names it and its runbook, and adds that the picture is incomplete.
        """
        if self.errors:
            n = len(self.errors)
            rejected = f"Prometheus rejected {n} quer{'y' if n == 1 else 'ies'}"
            if any((f.error or "").startswith(_NOT_REJECTED) for f in self.errors):
                rejected = f"{n} quer{'y' if n == 1 else 'ies'} failed"
            if self.ranked_classes:
                top = self.ranked_classes[0]
                return (
                    f"most likely: {top.name}; open {top.runbook} "
                    f"(incomplete: {rejected}, see below)"
                )
            return f"{rejected}; see the errors below."
        if not self.has_data:
            # absent() fires for a service Prometheus has never seen, so "no-traffic" would
            # be active here too; say what is actually known instead.
            return (
                f"no data: Prometheus holds no steadystream series for service "
                f"{self.service!r}. It is not scraped, the service or selector is wrong, or it "
                f"has never served a stream; if it used to, open {self._no_traffic_runbook()}."
            )
        if self.ranked_classes:
            top = self.ranked_classes[0]
            return f"most likely: {top.name}; open {top.runbook}"
        if self.burning:
            top = self.burning[0]
            return (
                f"SLO {top.name} is burning its error budget but no failure class is active; "
                f"open {top.runbook}"
            )
        return f"healthy: no failure class or SLO burn is active for {self.service!r}"

    def _no_traffic_runbook(self) -> str:
        for f in self.findings:
            if f.check.group == c.FC_NO_TRAFFIC:
                return f.check.runbook
        return failure_class(c.FC_NO_TRAFFIC).runbook

    @property
    def error(self) -> dict[str, str] | None:
        """Why the report is not a verdict, as ``--json`` states every failure: ``kind``
        ``deadline`` (a query not answered within the deadline), ``query`` (a query rejected
        or malformed) or ``no_data``, with the headline as ``message``; None otherwise."""
        if self.errors:
            late = any((f.error or "").startswith(_LATE) for f in self.errors)
            return {"kind": "deadline" if late else "query", "message": self.headline}
        if not self.has_data:
            return {"kind": "no_data", "message": self.headline}
        return None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``; ``ranked`` lists the active failure classes in order;
        ``error`` is present when the exit code is neither 0 nor 1 (see :attr:`error`)."""
        error = self.error
        return {
            **({"error": error} if error is not None else {}),
            "prometheus": self.prometheus,
            "service": self.service,
            "evaluated_at": self.evaluated_at,
            "has_data": self.has_data,
            "exit_code": self.exit_code,
            "headline": self.headline,
            "ranked": [r.to_dict() for r in self.ranked_classes],
            "burning": [r.to_dict() for r in self.burning],
            "findings": [f.to_dict() for f in self.findings],
        }

    def render_text(self) -> str:
        """A plain-text report (what ``triage`` prints without a TTY)."""
        lines = [
            f"steadystream triage: service {self.service} at {self.prometheus}",
            self.headline,
        ]
        for title, items in (("failure classes", self.ranked_classes), ("SLO burn", self.burning)):
            if not items:
                continue
            lines += ["", f"active {title}, most likely first:"]
            for i, r in enumerate(items, 1):
                why = f" (a consequence of {', '.join(r.explained_by)})" if r.explained_by else ""
                lines.append(f"{i}. {r.name}: {_ratio(r.score)} its threshold{why}")
                lines.append(f"   runbook: {r.runbook}")
                for f in r.evidence:
                    lines.append(
                        f"   - {f.check.name}: {_num(f.value)} {f.check.op} "
                        f"{_num(f.check.threshold)} ({f.check.description})"
                    )
                    if f.labels:
                        lines.append(
                            "     worst series: "
                            + ", ".join(f"{k}={v}" for k, v in f.labels.items())
                        )
                    lines.append(f"     query: {f.check.expr}")
        quiet = [f for f in self.findings if f.state != "active"]
        if quiet:
            lines += ["", "not active:"]
            for f in quiet:
                lines.append(f"  {f.check.group}/{f.check.name}: {_state_text(f)}")
        return "\n".join(lines) + "\n"


def _state_text(f: Finding) -> str:
    if f.state == "ok":
        return f"ok ({_num(f.value)}; alerts when {f.check.op} {_num(f.check.threshold)})"
    if f.state == "no_series":
        if f.check.unit == "bool":
            # A yes/no signal (absent(...)) returns a series only when the answer is yes.
            return "no (the condition is false: nothing to alert on)"
        if f.check.kind == "slo_burn":
            return "not burning (short window below the factor, or too few events to judge)"
        return "no series (nothing to judge: no such events, or below the traffic guard)"
    return f"ERROR: {f.error}"


def _group(findings: Iterable[Finding]) -> dict[str, list[Finding]]:
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        if f.state == "active":
            groups.setdefault(f.check.group, []).append(f)
    return groups


def _ranked(kind: Kind, name: str, findings: list[Finding], causes: tuple[str, ...]) -> Ranked:
    findings = sorted(findings, key=lambda f: -(f.score or 0.0))
    return Ranked(
        kind=kind,
        name=name,
        score=findings[0].score or 0.0,
        runbook=findings[0].check.runbook,
        evidence=tuple(findings),
        explained_by=causes,
    )


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value) or math.isnan(value):
        return str(value)
    if value == int(value) and abs(value) < 1e12:
        return str(int(value))
    return f"{value:.4g}"


def _ratio(score: float | None) -> str:
    if score is None:
        return "-"
    if math.isinf(score):
        return "far past"
    return f"{score:.2f}x"


# ----------------------------------------------------------------------------- Prometheus API
class _QueryError(Exception):
    """One query failed (Prometheus rejected it, its reply broke the API's schema, or the
    deadline passed): a problem with that query, reported as its finding's error."""


_REJECTED = "rejected: "
_MALFORMED = "malformed reply: "
_LATE = "not answered within the --deadline"
_NO_ANSWER = "no answer: "
_NOT_REJECTED = (_MALFORMED, _LATE, _NO_ANSWER)
Row = tuple[dict[str, str], float]


class _BadReply(ValueError):
    """A reply that breaks the Prometheus HTTP API's schema."""


def _number(value: object, where: str) -> float:
    # The API sends sample values as strings ("1.5", "NaN", "+Inf").
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _BadReply(f"{where} is {type(value).__name__}, not a number string")
    try:
        return float(value)
    except ValueError:
        raise _BadReply(f"{where} {str(value)[:40]!r} is not a number") from None


def _sample(value: object, where: str) -> float:
    if not isinstance(value, list) or len(value) != 2:
        raise _BadReply(f"{where} is not a [time, value] pair")
    _number(value[0], f"{where}[0]")
    return _number(value[1], f"{where}[1]")


def _rows(body: object) -> list[Row]:
    """The samples of a successful instant-query reply, checked against the API's schema."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise _BadReply("data is missing or not an object")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return [({}, _sample(result, "the scalar result"))]
    if kind != "vector":
        raise _BadReply(f"resultType {str(kind)[:40]!r} is not vector or scalar")
    if not isinstance(result, list):
        raise _BadReply(f"result is {type(result).__name__}, not a list")
    rows: list[Row] = []
    for i, item in enumerate(result):
        if not isinstance(item, dict):
            raise _BadReply(f"result[{i}] is {type(item).__name__}, not an object")
        metric = item.get("metric", {})
        if not isinstance(metric, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metric.items()
        ):
            raise _BadReply(f"result[{i}].metric is not an object of string labels")
        rows.append((metric, _sample(item.get("value"), f"result[{i}].value")))
    return rows


def _query(client: httpx.Client, expr: str, at: float, timeout: float | None = None) -> list[Row]:
    """Run one instant query. Raises :class:`PrometheusUnreachable` when Prometheus does not
    answer as Prometheus, :class:`_QueryError` when it rejects the query or its reply breaks
    the schema."""
    extra = {} if timeout is None else {"timeout": timeout}
    form = {"query": expr, "time": f"{at:.3f}"}
    try:
        with client.stream("POST", "/api/v1/query", data=form, **extra) as response:
            raw = bytearray()
            for chunk in response.iter_bytes():
                raw += chunk
                if len(raw) > MAX_REPLY_BYTES:
                    raise _QueryError(
                        f"{_MALFORMED}over {MAX_REPLY_BYTES} bytes; narrow the query or the "
                        "selector"
                    )
    except httpx.HTTPError as exc:
        raise PrometheusUnreachable(f"{client.base_url}: {exc}") from exc
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise PrometheusUnreachable(
            f"{client.base_url} answered HTTP {response.status_code} with something other than "
            "the Prometheus HTTP API (a reply that is not JSON); is this the Prometheus URL?"
        ) from None
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        raise PrometheusUnreachable(
            f"{client.base_url} does not speak the Prometheus HTTP API (a reply without a status)"
        )
    if body["status"] != "success":
        message = f"{body.get('errorType', 'error')}: {body.get('error', '')}"[:500]
        if response.status_code >= 500 and body.get("errorType") not in ("execution", "timeout"):
            raise PrometheusUnreachable(f"{client.base_url}: {message}")
        raise _QueryError(_REJECTED + message)
    try:
        return _rows(body)
    except _BadReply as exc:
        raise _QueryError(f"{_MALFORMED}{exc}") from None


def _selector(spec_selector: Mapping[str, str], service: str | None) -> str:
    matchers = [matcher(k, v) for k, v in sorted(spec_selector.items())]
    if service is not None:
        matchers.append(matcher(c.LABEL_SERVICE, service))
    matchers.append(matcher("__name__", "=~stream_.+"))
    return "{" + ",".join(matchers) + "}"


def discover_services(
    prometheus: str,
    *,
    selector: Mapping[str, str] | None = None,
    client: httpx.Client | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[str]:
    """The ``service`` label values of every steadystream series Prometheus holds now."""
    _positive("timeout", timeout)
    own = client is None
    client = client or httpx.Client(base_url=prometheus, timeout=timeout)
    try:
        expr = f"group by ({c.LABEL_SERVICE}) ({_selector(selector or {}, None)})"
        rows = _query(client, expr, time.time())
    except _QueryError as exc:
        raise PrometheusUnreachable(f"{prometheus}: {exc}") from None
    finally:
        if own:
            client.close()
    return sorted({labels[c.LABEL_SERVICE] for labels, _ in rows if c.LABEL_SERVICE in labels})


# ----------------------------------------------------------------------------- the checks
def checks_for(spec: Spec) -> list[Check]:
    """Every check for ``spec``: one per failure-class signal and one per SLO burn signal.

    The expressions, thresholds and descriptions come from the alert generator, so triage ranks
    exactly what the alerts fire on.
    """
    checks = [
        Check.from_signal("failure_class", signal)
        for signals in failure_class_signals(spec).values()
        for signal in signals
    ]
    checks += [
        Check.from_signal("slo_burn", signal)
        for signals in slo_burn_signals(spec).values()
        for signal in signals
    ]
    checks += [Check.from_signal("slo_burn", s) for s in slo_outage_signals(spec).values()]
    return checks


# ----------------------------------------------------------------------------- triage
def triage(
    spec: Spec,
    prometheus: str,
    *,
    client: httpx.Client | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float = DEFAULT_DEADLINE,
    at: float | None = None,
    checks: Sequence[Check] | None = None,
) -> TriageReport:
    """Evaluate every check for ``spec`` against the Prometheus at ``prometheus`` (base URL).

    ``at`` is the evaluation time (Unix seconds; default now). ``client`` may be an
    ``httpx.Client`` whose ``base_url`` is the Prometheus (for auth headers or a proxy).
    Queries run :data:`MAX_CONCURRENT_QUERIES` at a time, each within ``timeout`` seconds and
    all within ``deadline`` seconds; a check not answered by then is an ``error`` finding.
    Raises :class:`PrometheusUnreachable` when Prometheus does not answer at all, and
    ValueError for a ``timeout`` or ``deadline`` that is not a finite number above 0.
    """
    _positive("timeout", timeout)
    _positive("deadline", deadline)
    end = time.monotonic() + deadline
    own = client is None
    client = client or httpx.Client(base_url=prometheus, timeout=timeout)
    at = time.time() if at is None else at
    checks = list(checks_for(spec) if checks is None else checks)

    def budget() -> float:
        # A second past the deadline: the caller stops waiting at the deadline itself and
        # reports the query as late; the HTTP timeout only frees the worker thread.
        return max(0.001, min(timeout, end - time.monotonic() + 1.0))

    try:
        coverage = _query(client, f"count({_selector(spec.selector, spec.service)})", at, budget())
        has_data = bool(coverage) and coverage[0][1] > 0
        results = _bounded(
            [lambda ch=ch: _evaluate(client, ch, at, budget()) for ch in checks],
            workers=MAX_CONCURRENT_QUERIES,
            end=end,
        )
    except _QueryError as exc:
        raise PrometheusUnreachable(f"{prometheus}: {exc}") from None
    finally:
        if own:
            client.close()
    late = f"{_LATE} of {deadline:g} s"
    findings = [
        r if r is not None else Finding(ch, "error", error=late)
        for ch, r in zip(checks, results, strict=True)
    ]
    return TriageReport(
        prometheus=prometheus,
        service=spec.service,
        evaluated_at=at,
        has_data=has_data,
        findings=_rank(findings),
    )


def _bounded(
    tasks: Sequence[Callable[[], Finding]], *, workers: int, end: float
) -> list[Finding | None]:
    """Run ``tasks`` ``workers`` at a time until all are done or ``end`` (monotonic) passes;
    a task not finished by then is None. The worker threads are daemons: a query still in
    flight at the deadline never holds the process (its own timeout ends it)."""
    results: list[Finding | None] = [None] * len(tasks)
    failures: list[BaseException] = []
    lock = threading.Lock()
    done = threading.Condition(lock)
    state = {"next": 0, "finished": 0}

    def work() -> None:
        while True:
            with lock:
                i = state["next"]
                if i >= len(tasks) or time.monotonic() >= end:
                    return
                state["next"] += 1
            try:
                result = tasks[i]()
            except BaseException as exc:  # a bug: re-raised in the caller's thread
                with lock:
                    failures.append(exc)
                    done.notify_all()
                return
            with lock:
                results[i] = result
                state["finished"] += 1
                done.notify_all()

    for _ in range(min(workers, len(tasks))):
        threading.Thread(target=work, name="steadystream-triage", daemon=True).start()
    with lock:
        while state["finished"] < len(tasks) and not failures:
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            done.wait(remaining)
        if failures:
            raise failures[0]
        return list(results)


def _evaluate(client: httpx.Client, check: Check, at: float, timeout: float) -> Finding:
    try:
        rows = _query(client, check.expr, at, timeout)
    except _QueryError as exc:
        return Finding(check, "error", error=str(exc))
    except PrometheusUnreachable as exc:
        return Finding(check, "error", error=f"{_NO_ANSWER}{exc}")
    rows = [(labels, v) for labels, v in rows if not math.isnan(v)]
    if not rows:
        return Finding(check, "no_series")
    # The worst series decides: the one furthest past the threshold.
    labels, value = max(rows, key=lambda row: check.score(row[1]))
    labels = {k: v for k, v in labels.items() if k != "__name__"}
    state: State = "active" if check.breached(value) else "ok"
    return Finding(check, state, value=value, labels=labels, series=len(rows))


_STATE_ORDER = {"active": 0, "error": 1, "ok": 2, "no_series": 3}


def _rank(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Display order: active, errors, ok, no series; classes before burns; worst first."""

    def key(f: Finding) -> tuple[int, int, float, str, str]:
        kind = 0 if f.check.kind == "failure_class" else 1
        return (_STATE_ORDER[f.state], kind, -(f.score or 0.0), f.check.group, f.check.name)

    return tuple(sorted(findings, key=key))


def render_rich(report: TriageReport, console: Any = None) -> None:
    """Print ``report`` with rich (what ``triage`` shows on a TTY).

    The runbook of each active class is printed whole on its own line, never in a table
    cell a narrow terminal would cut: it is what on-call opens next. Everything that comes from
    the spec or from Prometheus is escaped, so a ``[5m]`` in a query is printed, not parsed.
    When a table of active classes does not fit the terminal with every value whole (a
    60-column terminal), the report is the plain list of :meth:`TriageReport.render_text`
    instead, so no value is squeezed into an empty or ellipsised cell.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    tables = []
    fits = True
    for title, items in (("failure class", report.ranked_classes), ("SLO", report.burning)):
        if not items:
            continue
        rows = []
        for i, r in enumerate(items, 1):
            for j, f in enumerate(r.evidence):
                rows.append(
                    (
                        str(i) if j == 0 else "",
                        (r.name + ("\n(consequence)" if r.explained_by else "")) if j == 0 else "",
                        f.check.name,
                        _num(f.value),
                        f"{f.check.op} {_num(f.check.threshold)}",
                        _ratio(f.score),
                    )
                )
        table = Table(title=f"active: {title}, most likely first", title_justify="left")
        cols = ("#", title, "signal", "value", "threshold", "x")
        widths = [
            max(len(x) for row in rows for x in [*row[k].split("\n"), col])
            for k, col in enumerate(cols)
        ]
        # Every cell whole: each column its widest cell plus one space each side, and the
        # borders between and around them.
        fits = fits and sum(w + 2 for w in widths) + len(widths) + 1 <= console.width
        for col in cols:
            table.add_column(
                col, justify="right" if col in ("#", "value", "x") else "left", no_wrap=True
            )
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        tables.append(table)
    if not fits:
        # Rich would squeeze the value columns to nothing: the plain list keeps every value,
        # runbook and query whole (the terminal wraps the long lines).
        console.print(escape(report.render_text().rstrip("\n")), highlight=False, soft_wrap=True)
        return
    style = {EXIT_ACTIVE: "red", EXIT_UNREACHABLE: "magenta", EXIT_NO_DATA: "yellow"}.get(
        report.exit_code, "green"
    )
    console.print(
        f"[bold]steadystream triage[/]: service {escape(report.service)} "
        f"at {escape(report.prometheus)}",
        soft_wrap=True,
    )
    console.print(f"[{style}]{escape(report.headline)}[/]", soft_wrap=True)
    for table in tables:
        console.print(table)
    for r in (*report.ranked_classes, *report.burning):
        why = f" (a consequence of {', '.join(r.explained_by)})" if r.explained_by else ""
        console.print(f"[bold]{escape(r.name)}[/]{escape(why)}", soft_wrap=True)
        console.print(f"  runbook: [bold]{escape(r.runbook)}[/]", soft_wrap=True)
        for f in r.evidence:
            console.print(f"  {escape(f.check.name)}: {escape(f.check.description)}")
            if f.labels:
                console.print(
                    "  worst series: " + escape(", ".join(f"{k}={v}" for k, v in f.labels.items())),
                    soft_wrap=True,
                )
            console.print(f"  query: [cyan]{escape(f.check.expr)}[/]", soft_wrap=True)
    quiet = [f for f in report.findings if f.state != "active"]
    if quiet:
        table = Table(title="not active", title_justify="left")
        for col in ("group", "signal", "state"):
            table.add_column(col, no_wrap=col != "state")
        for f in quiet:
            table.add_row(escape(f.check.group), escape(f.check.name), escape(_state_text(f)))
        console.print(table)
