"""``steadystream demo``: the whole loop on one machine, with nothing to set up.

:func:`run_demo` starts the fault-injecting upstream (:mod:`steadystream.simulate`) on loopback,
drives ``streams`` concurrent resilient streams through it with the real ``openai.AsyncOpenAI``
client and :func:`steadystream.instrumentation.openai.responses_stream` (retries, retry budget,
exactly-once resume, timeouts), serves the metrics on ``/metrics`` for a Prometheus to scrape,
shows live progress, and ends with a :class:`DemoReport`: each SLO's measured value against its
target, and what happened per failure class.

Two independent views are kept, on purpose:

* the demo's **own count** of what its consumers saw (streams finished ok, failed with which
  error, abandoned at shutdown), kept by the driver loop; and
* the **metrics** the instrumentation exported to the registry (the same numbers a Prometheus
  scraping ``/metrics`` sees), from which the SLO verdict is computed exactly as the generated
  recording rules compute it: good events are the histogram bucket at the threshold.

The end-to-end tests check that the two agree, and that Prometheus agrees with both.

    report = run_demo(duration=10, streams=8, faults="mixed", metrics_port=None)
    print(report.render_text())
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import signal
import sys
import time
from collections import Counter as _Tally
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from .. import conventions as c
from ..spec import SLO, Spec, default_spec, format_percent

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ..simulate import Profile

__all__ = [
    "DEFAULT_DURATION",
    "DEFAULT_FAULTS",
    "DEFAULT_SERVICE",
    "DEFAULT_STREAMS",
    "DemoReport",
    "MetricsView",
    "SLOResult",
    "histogram_quantile",
    "resilient_stream",
    "run_demo",
    "run_demo_async",
    "scrape_config",
    "slow_relay_stream",
]

#: The demo's service name: the example spec's, so rules generated from
#: ``examples/chat-gateway/slo.yaml`` match the demo's series as they are.
DEFAULT_SERVICE = "chat-gateway"
DEFAULT_DURATION = 20.0
DEFAULT_STREAMS = 16
DEFAULT_FAULTS = "mixed"
#: The simulated model: a first token after 250 ms, then a delta every 20 ms (about 1 s per
#: stream), so 16 streams make a steady ~15 streams/s, well inside the default ingress limits.
DEMO_FIRST_TOKEN_LATENCY = 0.25
DEMO_TOKEN_INTERVAL = 0.02
DEMO_MODEL = "gpt-4.1-mini"
DEMO_PROVIDER = "openai"

#: After the duration, streams still running get this long to finish before they are cancelled
#: (and counted as abandoned), so the defaults stay under a minute whatever the fault profile.
DRAIN_SECONDS = 8.0

_INCOMPLETE_EVENT = "response.incomplete"

_PROMPTS = (
    "Explain exponential backoff with jitter in three sentences.",
    "Write a haiku about a dropped TCP connection.",
    "Summarise the SRE Workbook chapter on burn-rate alerts.",
    "List five causes of a stalled token stream.",
    "Describe an idempotency key to a new engineer.",
    "Give a JSON object with the fields name, latency_ms and ok.",
)


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


def failure_class_counts(view: MetricsView) -> dict[str, float]:
    """How often each failure class showed in the metrics, by the counter that reveals it.

    The mapping mirrors the failure-class alerts: 429 retries and rate-limited errors are
    upstream-rate-limit, 5xx retries and upstream error events are upstream-errors, a refused
    retry (budget spent) is retry-storm, and so on. no-traffic has no counter: it is the absence
    of all of them.
    """
    errors = view.by_label(c.ERRORS_TOTAL, c.LABEL_ERROR_CLASS)
    retries = view.by_label(c.RETRY_TOTAL, c.LABEL_REASON)
    timeouts = view.by_label(c.TIMEOUTS_TOTAL, c.LABEL_PHASE)
    return {
        c.FC_SLOW_CONSUMER: view.total(c.ABORT_CLIENT_SLOW_TOTAL),
        c.FC_IDLE_STALL: view.total(c.TIMEOUT_IDLE_TOTAL),
        c.FC_FIRST_TOKEN_TIMEOUT: timeouts.get(c.TIMEOUT_FIRST_TOKEN, 0.0),
        c.FC_TIMEOUT_CASCADE: sum(
            timeouts.get(p, 0.0) for p in (c.TIMEOUT_TOTAL, c.TIMEOUT_DIAL, c.TIMEOUT_TLS)
        ),
        c.FC_RETRY_STORM: view.total(c.RETRY_BUDGET_EXHAUSTED_TOTAL),
        c.FC_UPSTREAM_RATE_LIMIT: retries.get(c.RETRY_REASON_429, 0.0)
        + errors.get(c.ERROR_CLASS_RATE_LIMITED, 0.0),
        c.FC_UPSTREAM_ERRORS: retries.get(c.RETRY_REASON_5XX, 0.0)
        + sum(
            errors.get(k, 0.0)
            for k in (
                c.ERROR_CLASS_UPSTREAM_5XX,
                c.ERROR_CLASS_UPSTREAM_EVENT,
                c.ERROR_CLASS_RESPONSE_FAILED,
            )
        ),
        c.FC_BROKEN_CHUNKS: view.total(c.REASSEMBLY_ERRORS_TOTAL),
        c.FC_RESUME_FAILURE: view.total(c.RESUME_FAILURE_TOTAL),
    }


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


def scrape_config(address: str, spec: Spec, *, scrape_interval: str = "5s") -> str:
    """A ready-to-paste ``prometheus.yml`` fragment that scrapes the demo at ``address``."""
    job, labels = scrape_job(spec)
    # Values are quoted as JSON strings, which YAML reads as the same strings whatever they
    # hold (a colon in a job name, quotes or backslashes in a selector value).
    text = (
        "scrape_configs:\n"
        f"  - job_name: {json.dumps(job)}\n"
        f"    scrape_interval: {scrape_interval}\n"
        "    static_configs:\n"
        f"      - targets: [{json.dumps(address)}]\n"
    )
    if labels:
        text += "        labels:\n" + "".join(
            f"          {k}: {json.dumps(v)}\n" for k, v in labels.items()
        )
    return text


def scrape_job(spec: Spec) -> tuple[str, dict[str, str]]:
    """The scrape job name and static labels under which the generated rules find the demo.

    The generated queries select ``spec.selector`` (``{job: chat-gateway}`` in the example), so
    the printed scrape config names the job after the selector's ``job`` (else the service) and
    adds the selector's other labels as static target labels.
    """
    job = spec.selector.get("job", spec.service)
    labels = {k: v for k, v in spec.selector.items() if k != "job"}
    return job, labels


# ----------------------------------------------------------------------------- live progress
class Progress:
    """Live progress: a rich table redrawn in place on a TTY, plain periodic lines otherwise.

    The plain lines start after ``plain_every`` seconds (a line at 0 s would only say that
    nothing has finished yet). Once the duration is over, :meth:`finishing` marks the drain,
    so a run that goes on past ``--duration`` says why.
    """

    def __init__(
        self,
        spec: Spec,
        registry: Any,
        tally: ClientTally,
        out: TextIO,
        *,
        live: bool,
        duration: float,
        plain_every: float = 5.0,
    ) -> None:
        self.spec = spec
        self.registry = registry
        self.tally = tally
        self.out = out
        self.duration = duration
        self.plain_every = plain_every
        self.started = time.monotonic()
        self.drain_end: float | None = None
        self._live: Any = None
        self._last_plain = self.started
        if live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                self._table(),
                console=Console(file=out),
                refresh_per_second=4,
                transient=False,
            )

    def __enter__(self) -> Progress:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(None, None, None)

    def finishing(self, drain: float) -> None:
        """The duration is over: no new streams; running ones get up to ``drain`` seconds."""
        self.drain_end = time.monotonic() + drain

    def _measure(self) -> tuple[float, tuple[SLOResult, ...], MetricsView]:
        view = MetricsView(self.registry, self.spec.service)
        return time.monotonic() - self.started, slo_results(self.spec, view), view

    def _phase(self) -> str:
        if self.drain_end is None:
            return ""
        return f"finishing, at most {max(self.drain_end - time.monotonic(), 0):.0f}s more"

    def _table(self) -> Any:
        from rich import box
        from rich.table import Table

        elapsed, slos, view = self._measure()
        t = self.tally
        phase = self._phase()
        table = Table(
            title=f"steadystream demo: {self.spec.service} "
            f"({min(elapsed, self.duration):.0f}s / {self.duration:.0f}s"
            + (f", {phase}" if phase else "")
            + ")",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        # Sized to fit an 80-column terminal: names never truncated, details wrap.
        table.add_column("measure", no_wrap=True)
        table.add_column("now", justify="right", no_wrap=True)
        table.add_column("target", justify="right", no_wrap=True)
        table.add_column("", overflow="fold")
        table.add_row("streams done", str(t.finished), "", f"{t.failed} failed")
        table.add_row("in flight", str(t.in_flight), "", "")
        for s in slos:
            style = {"PASS": "green", "FAIL": "red"}.get(s.verdict, "yellow")
            detail = f"[{style}]{s.verdict}[/]" + (
                f" ({s.quantile_text})" if s.quantile_text else ""
            )
            table.add_row(s.name, s.share_text, s.target_share_text, detail)
        retries = view.by_label(c.RETRY_TOTAL, c.LABEL_REASON)
        table.add_row(
            "retries",
            str(int(sum(retries.values()))),
            "",
            " ".join(f"{k}={int(v)}" for k, v in retries.items()),
        )
        table.add_row(
            "resumes",
            str(int(view.total(c.RESUME_SUCCESS_TOTAL))),
            "",
            f"{int(view.total(c.RESUME_FAILURE_TOTAL))} failed",
        )
        return table

    def line(self) -> str:
        """One plain progress line (what a CI log shows every few seconds): the streams, each
        SLO measured against its target with the verdict so far, retries and resumes."""
        elapsed, slos, view = self._measure()
        t = self.tally
        phase = self._phase()
        parts = [
            f"[{elapsed:5.1f}s] {t.finished} streams done ({t.failed} failed), "
            f"{t.in_flight} in flight" + (f", {phase}" if phase else ""),
            *(f"{s.name} {s.measured_text} vs target {s.target_text}: {s.verdict}" for s in slos),
            f"retries {int(view.total(c.RETRY_TOTAL))}, "
            f"resumes {int(view.total(c.RESUME_SUCCESS_TOTAL))}",
        ]
        return " | ".join(parts)

    def tick(self, *, force: bool = False) -> None:
        """Redraw the table, or print a plain line when ``plain_every`` has passed (or now,
        with ``force``: the end of the load phase always gets a line, however short the run)."""
        if self._live is not None:
            self._live.update(self._table())
            return
        now = time.monotonic()
        if force or now - self._last_plain >= self.plain_every:
            self._last_plain = now
            print(self.line(), file=self.out, flush=True)


# ----------------------------------------------------------------------------- the driver
#: ``stream_factory(monitor, client, prompt)``: one consumer stream of the demo.
StreamFactory = Callable[[Any, Any, str], AsyncIterable[Any]]


def resilient_stream(monitor: Any, client: Any, prompt: str) -> AsyncIterable[Any]:
    """The demo's default consumer stream: ``responses_stream`` (retries, budget, resume)."""
    from ..instrumentation.openai import responses_stream

    stream: AsyncIterable[Any] = responses_stream(monitor, client, model=DEMO_MODEL, input=prompt)
    return stream


#: Slow consumers (the slow-consumer failure class) read one event every 100 ms, like a client
#: on a congested link, through a relay buffer of 2 KiB: the spec's cap is sized for real
#: responses, and the simulated ones are a few KiB, so a smaller cap makes the policy visible.
SLOW_CONSUMER_DELAY = 0.1
SLOW_CONSUMER_BUFFER = 2048
#: Share of slow consumers when ``slow_consumers`` is not given: some with the realistic
#: ``mixed`` profile (every failure class, the client-side one included), none otherwise.
MIXED_SLOW_CONSUMERS = 0.03


def slow_relay_stream(monitor: Any, client: Any, prompt: str) -> AsyncIterable[Any]:
    """A slow consumer: the resilient stream relayed through a bounded buffer
    (``monitor.relay``, policy from ``spec.stream.flow_control.on_overflow``) and read at one
    event per :data:`SLOW_CONSUMER_DELAY` seconds."""

    async def consume() -> AsyncIterator[Any]:
        source = resilient_stream(monitor, client, prompt)
        async with monitor.relay(source, max_buffer=SLOW_CONSUMER_BUFFER) as relayed:
            async for event in relayed:
                yield event
                await asyncio.sleep(SLOW_CONSUMER_DELAY)

    return consume()


async def _one_stream(
    monitor: Any, client: Any, prompt: str, tally: ClientTally, factory: StreamFactory
) -> None:
    from ..instrumentation.errors import StreamError

    tally.started += 1
    last_type = None
    try:
        async for event in factory(monitor, client, prompt):
            last_type = getattr(event, "type", None)
            if last_type == "response.output_text.delta":
                tally.content_bytes += len(event.delta.encode("utf-8"))
    except asyncio.CancelledError:
        tally.abandoned += 1
        raise
    except StreamError as exc:
        tally.failed += 1
        tally.errors[exc.error_class] += 1
    except Exception as exc:
        # Anything else reaching the consumer is still a failed stream, and the report must
        # say what it was rather than hide it.
        tally.failed += 1
        tally.errors[type(exc).__name__] += 1
    else:
        # A response that ends with response.incomplete arrives without an exception (its
        # events are the answer), but the consumer got a truncated answer: a failed stream.
        if last_type == _INCOMPLETE_EVENT:
            tally.failed += 1
            tally.errors[c.ERROR_CLASS_RESPONSE_INCOMPLETE] += 1
        else:
            tally.ok += 1


async def run_demo_async(
    *,
    duration: float = DEFAULT_DURATION,
    streams: int = DEFAULT_STREAMS,
    faults: str | Profile = DEFAULT_FAULTS,
    metrics_port: int | None = 0,
    spec: Spec | None = None,
    seed: int = 0,
    registry: CollectorRegistry | None = None,
    out: TextIO | None = None,
    live: bool | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = False,
    drain: float = DRAIN_SECONDS,
    token_interval: float = DEMO_TOKEN_INTERVAL,
    first_token_latency: float = DEMO_FIRST_TOKEN_LATENCY,
    stream_factory: StreamFactory = resilient_stream,
    slow_consumers: float | None = None,
) -> DemoReport:
    """Run the demo in the running event loop; see :func:`run_demo` for the arguments.

    ``stop``: set it to end the run early (what Ctrl-C does with ``handle_signals``); ``drain``:
    seconds running streams get to finish after the duration before they are cancelled.
    """
    from prometheus_client import CollectorRegistry as _Registry

    from ..instrumentation.monitor import StreamMonitor
    from ..simulate import Upstream, resolve_profile

    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration!r}")
    if streams < 1:
        raise ValueError(f"streams must be at least 1, got {streams!r}")
    profile = resolve_profile(faults)  # an unknown name fails here, before anything starts
    if slow_consumers is None:
        slow_consumers = MIXED_SLOW_CONSUMERS if profile.name == DEFAULT_FAULTS else 0.0
    if not 0.0 <= slow_consumers <= 1.0:
        raise ValueError(f"slow_consumers must be a share from 0 to 1, got {slow_consumers!r}")
    spec = spec if spec is not None else default_spec(DEFAULT_SERVICE)
    registry = registry if registry is not None else _Registry()
    out = out if out is not None else sys.stdout
    live = out.isatty() if live is None else live
    stop = stop if stop is not None else asyncio.Event()
    interrupted = False
    tally = ClientTally()
    rng = random.Random(seed)
    monitor = StreamMonitor(spec, registry=registry)

    loop = asyncio.get_running_loop()

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        stop.set()

    if handle_signals:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
        loop.add_signal_handler(signal.SIGTERM, on_sigint)

    metrics_url = None
    server = None
    injected: dict[str, int] = {}
    started = time.monotonic()
    try:
        if metrics_port is not None:
            server, address = _serve_metrics(registry, metrics_port)
            metrics_url = f"http://{address}/metrics"
            print(f"metrics: {metrics_url}", file=out)
            print("Prometheus scrape config (prometheus.yml):", file=out)
            print(scrape_config(address, spec), file=out, flush=True)
        async with Upstream(
            profile=profile,
            seed=seed,
            token_interval=token_interval,
            first_token_latency=first_token_latency,
        ) as upstream:
            print(
                f"upstream: {upstream.base_url} (faults {profile.name!r}, seed {seed}); "
                f"{streams} concurrent streams for {duration:g}s; Ctrl-C stops early",
                file=out,
                flush=True,
            )
            client = _openai_client(upstream.base_url)
            accepting = True

            async def worker() -> None:
                while accepting and not stop.is_set():
                    slow = slow_consumers > 0 and rng.random() < slow_consumers
                    factory = slow_relay_stream if slow else stream_factory
                    await _one_stream(monitor, client, rng.choice(_PROMPTS), tally, factory)

            with Progress(spec, registry, tally, out, live=live, duration=duration) as progress:
                tasks = [asyncio.create_task(worker()) for _ in range(streams)]
                # --duration is seconds of load, counted from when the streams start.
                deadline = progress.started + duration
                while not stop.is_set() and time.monotonic() < deadline:
                    progress.tick()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            stop.wait(), timeout=min(0.5, max(deadline - time.monotonic(), 0))
                        )
                accepting = False
                # On time: let running streams finish (bounded); on Ctrl-C: stop them now.
                grace = 0.0 if interrupted else drain
                if grace > 0 and tally.in_flight:
                    progress.finishing(grace)
                progress.tick(force=not interrupted)
                drain_end = time.monotonic() + grace
                pending = {t for t in tasks if not t.done()}
                while pending and time.monotonic() < drain_end and not interrupted:
                    _, pending = await asyncio.wait(
                        pending, timeout=min(0.5, max(drain_end - time.monotonic(), 0))
                    )
                    progress.tick()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await client.close()
                progress.tick()
            injected = _injected(upstream)
    finally:
        if handle_signals:
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)
        if server is not None:
            server.close()
    return build_report(
        spec=spec,
        registry=registry,
        tally=tally,
        faults=profile.name,
        seed=seed,
        streams=streams,
        duration_s=time.monotonic() - started,
        interrupted=interrupted,
        metrics_url=metrics_url,
        injected=injected,
    )


def run_demo(
    *,
    duration: float = DEFAULT_DURATION,
    streams: int = DEFAULT_STREAMS,
    faults: str | Profile = DEFAULT_FAULTS,
    metrics_port: int | None = 0,
    spec: Spec | None = None,
    seed: int = 0,
    registry: CollectorRegistry | None = None,
    out: TextIO | None = None,
    live: bool | None = None,
    handle_signals: bool = False,
    drain: float = DRAIN_SECONDS,
    token_interval: float = DEMO_TOKEN_INTERVAL,
    first_token_latency: float = DEMO_FIRST_TOKEN_LATENCY,
    stream_factory: StreamFactory = resilient_stream,
    slow_consumers: float | None = None,
) -> DemoReport:
    """Run the demo and return its :class:`DemoReport`.

    Arguments (all keyword, all optional):

    - ``duration`` seconds of load (default 20) and ``streams`` concurrent streams (16);
    - ``faults``: a fault profile of :mod:`steadystream.simulate`, by name or as a
      ``Profile`` (default ``mixed``: every server-side failure class at realistic rates);
    - ``token_interval`` / ``first_token_latency``: the simulated model's pace (seconds);
    - ``stream_factory(monitor, client, prompt)``: the consumer stream (default
      :func:`resilient_stream`); tests plug in other consumers (a slow one, one expecting
      JSON) and keep the same tally and report;
    - ``slow_consumers``: share of streams read by :func:`slow_relay_stream` instead (default:
      3 % with the ``mixed`` profile, so every failure class shows, else none);
    - ``metrics_port``: serve ``/metrics`` on ``127.0.0.1:<port>`` (0 picks a free port; None
      serves nothing, for callers that expose ``registry`` themselves);
    - ``spec`` (default ``default_spec("chat-gateway")``), ``seed`` (reproducible faults and
      prompts), ``registry`` (a fresh ``CollectorRegistry`` by default);
    - ``out`` and ``live``: where progress goes and whether it is a live rich table (default:
      when ``out`` is a TTY); ``handle_signals``: first Ctrl-C stops the run early and the
      report is still returned, marked ``interrupted``.
    """
    return asyncio.run(
        run_demo_async(
            duration=duration,
            streams=streams,
            faults=faults,
            metrics_port=metrics_port,
            spec=spec,
            seed=seed,
            registry=registry,
            out=out,
            live=live,
            handle_signals=handle_signals,
            drain=drain,
            token_interval=token_interval,
            first_token_latency=first_token_latency,
            stream_factory=stream_factory,
            slow_consumers=slow_consumers,
        )
    )


def _openai_client(base_url: str) -> Any:
    try:
        from openai import AsyncOpenAI
    except ImportError:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "the demo needs the openai SDK: pip install 'steadystream[demo]'"
        ) from None
    # The upstream is the local simulator: no real key exists or is needed.
    return AsyncOpenAI(base_url=base_url, api_key="sk-steadystream-demo")


def _injected(upstream: Any) -> dict[str, int]:
    stats = getattr(upstream, "stats", None)
    faults = getattr(stats, "faults", None)
    return {str(k): int(v) for k, v in dict(faults or {}).items()}


def _serve_metrics(registry: Any, port: int) -> tuple[Any, str]:
    from ..exporters import start_metrics_server

    server = start_metrics_server(port, "127.0.0.1", registry=registry)
    return server, f"127.0.0.1:{server.port}"
