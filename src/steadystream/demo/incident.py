"""The demo's whole loop: generated rules in a real Prometheus, a scripted incident, alerts
firing, triage naming the runbook, and a timeline.

:func:`run_incident` (``steadystream demo``):

1. builds the compressed-time :func:`demo_spec` (failure-class windows of
   :data:`DEMO_WINDOW`, burn tiers of a minute and less, ``for`` of :data:`DEMO_FOR`) and
   generates every artifact from it, with the same generator as ``steadystream generate``,
   into a temporary directory;
2. serves the demo's metrics on loopback and starts the real ``prometheus`` binary on loopback
   (:class:`~steadystream.testing.PrometheusServer`), the rules loaded by glob
   (``alerts/*.yaml``), scraping ``/metrics`` and evaluating every :data:`SCRAPE_INTERVAL`;
3. drives the load (:func:`~.driver.run_demo_async`) through a scripted incident:
   **warm-up** until Prometheus holds the demo's series and no alert is active, **healthy**
   traffic for :data:`HEALTHY_SECONDS`, the **incident** (the upstream switches to the fault
   profile) until the alert of the class that profile causes fires (bounded by
   :data:`INCIDENT_CAP`), then **recovery** until every alert has resolved (bounded by
   :data:`RECOVERY_CAP`);
4. watches ``ALERTS`` every second and shows pending and firing alerts with their runbook;
5. at the incident's peak (the alert fired), runs :func:`steadystream.triage.triage` against
   its Prometheus, exactly what ``steadystream triage`` runs, and prints the headline and the
   runbook to open;
6. ends with an :class:`IncidentReport`: the SLO report, the timeline (incident start, each
   alert's pending, fired and resolved times, time to detect and to resolve) and triage's
   first rank.

Every phase ends on a condition (an alert state reached, Prometheus's own scrape record),
never on a guessed sleep, with a cap so a run always ends. Prometheus, the ``/metrics``
server and the simulated upstream stop on exit, on Ctrl-C and on errors; the temporary
directory is removed.

Without a ``prometheus`` binary (``binary=None``), the same phases run with fixed lengths
(:data:`FALLBACK_PHASES`), and the report is the SLO report alone.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import yaml

from .. import conventions as c
from ..catalog import names as n
from ..catalog import promql
from ..catalog.classes import failure_classes
from ..catalog.faults import FAULT_PROFILES
from ..spec import Spec
from .defaults import DEFAULT_INCIDENT, DEFAULT_SERVICE, INCIDENT_STREAMS
from .driver import LoadControl, run_demo_async
from .report import DemoReport
from .scrape import scrape_job

__all__ = [
    "DEFAULT_INCIDENT",
    "DEMO_FOR",
    "DEMO_WINDOW",
    "FALLBACK_PHASES",
    "HEALTHY_SECONDS",
    "INCIDENT_CAP",
    "INCIDENT_STREAMS",
    "INCIDENT_TOKEN_INTERVAL",
    "NO_PROMETHEUS_HINT",
    "RECOVERY_CAP",
    "SCRAPE_INTERVAL",
    "AlertRecord",
    "IncidentReport",
    "Phase",
    "cause_classes",
    "demo_spec",
    "demo_spec_data",
    "run_incident",
    "run_incident_async",
]

#: The compressed time scale: failure-class rate window and ``for`` of every alert.
DEMO_WINDOW = "10s"
DEMO_FOR = "5s"
#: Ingress admits 8 streams a second: healthy traffic (8 streams of about 1.5 s) stays under
#: it, while in an outage failing streams come back at once and are shed, as a gateway's
#: callers retrying into it would be: the incident is a 503 outage *while ingress sheds*.
DEMO_INGRESS_RATE = "8/s"
DEMO_INGRESS_BURST = 8
INCIDENT_TOKEN_INTERVAL = 0.04
#: Prometheus scrapes ``/metrics`` and evaluates the rules this often (seconds).
SCRAPE_INTERVAL = 1.0
#: Healthy traffic before the incident: one window and a half, so every failure-class
#: window holds only healthy streams when the fault starts.
HEALTHY_SECONDS = 15.0
#: Bounds of the condition-ended phases (seconds): generous, for a loaded machine.
WARMUP_CAP = 60.0
INCIDENT_CAP = 120.0
RECOVERY_CAP = 150.0
#: Phase lengths without Prometheus (healthy, incident, recovery), in seconds.
FALLBACK_PHASES = (5.0, 15.0, 5.0)
#: The one line printed when there is no ``prometheus`` binary.
NO_PROMETHEUS_HINT = (
    "without Prometheus (no 'prometheus' binary found, or --no-prometheus): the load and the "
    "SLO report only; for the whole loop (rules, alerts, triage) run 'make tools' (Debian's "
    "prometheus package) or put Prometheus >= 2.40 from https://prometheus.io/download/ on PATH"
)


# ----------------------------------------------------------------------------- the demo spec
def demo_spec_data(service: str = DEFAULT_SERVICE) -> dict[str, Any]:
    """The compressed-time demo spec as data (what ``slo.yaml`` would hold).

    The baseline SLOs and runtime policy, with time scaled down so an incident fires and
    resolves within a minute or two: a 1 h period with burn tiers of 1 m/10 s and 5 m/30 s,
    failure-class windows of :data:`DEMO_WINDOW` with ``for`` :data:`DEMO_FOR` (every class
    in the registry), a 4 s idle timeout so a stall shows in seconds, an ingress rate of 8
    streams a second (:data:`DEMO_INGRESS_RATE`), and a low-traffic floor of 10 events. The
    hard-outage fast path reads 5 m SLI series and is turned off: the tiers in seconds page as
    fast here.
    """
    return {
        "version": 1,
        "service": service,
        "period": "1h",
        "alerting": {
            "window": DEMO_WINDOW,
            "min_events": 10,
            "tiers": [
                {"severity": "critical", "long": "1m", "short": "10s", "budget": "2%"},
                {"severity": "warning", "long": "5m", "short": "30s", "budget": "5%"},
            ],
            "outage": {"enabled": False},
            "failure_classes": {fc.id: {"for": DEMO_FOR} for fc in failure_classes()},
        },
        "stream": {
            "timeouts": {"stream_idle": "4s"},
            "ingress": {"rate": DEMO_INGRESS_RATE, "burst": DEMO_INGRESS_BURST},
        },
    }


def demo_spec(service: str = DEFAULT_SERVICE) -> Spec:
    """The compressed-time demo spec (:func:`demo_spec_data`), validated."""
    return Spec.model_validate(demo_spec_data(service))


def cause_classes(profile: str) -> tuple[str, ...]:
    """The failure classes ``profile`` reproduces (their registry records list it) that no
    other such class explains: the alert the incident waits for, and what triage should rank
    first. ``outage`` causes upstream-errors and retry-storm, and the storm is explained by
    the errors: ``("upstream-errors",)``. Empty for a profile no class lists (``mixed``)."""
    listing = {fc.id: fc for fc in failure_classes() if profile in fc.profiles}
    return tuple(fc.id for fc in listing.values() if not any(x in listing for x in fc.explained_by))


# ----------------------------------------------------------------------------- the report
@dataclass(frozen=True)
class Phase:
    """One phase of the scripted incident: its name, the upstream's fault profile, and when
    it started and ended (seconds from the start of the run)."""

    name: str
    faults: str
    started_at: float
    ended_at: float | None = None
    ended_by: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "faults": self.faults,
            "started_at": _r(self.started_at),
            "ended_at": _r(self.ended_at),
            "ended_by": self.ended_by,
        }


@dataclass
class AlertRecord:
    """One alert (one label set) seen in Prometheus's ``ALERTS`` during the run; times in
    seconds from the start of the run (None: never reached)."""

    alertname: str
    failure_class: str
    severity: str
    runbook_url: str
    labels: dict[str, str]
    summary: str = ""
    pending_at: float | None = None
    fired_at: float | None = None
    resolved_at: float | None = None
    state: str = "pending"

    def to_dict(self) -> dict[str, Any]:
        return {
            "alertname": self.alertname,
            "failure_class": self.failure_class,
            "severity": self.severity,
            "runbook_url": self.runbook_url,
            "labels": dict(self.labels),
            "summary": self.summary,
            "pending_at": _r(self.pending_at),
            "fired_at": _r(self.fired_at),
            "resolved_at": _r(self.resolved_at),
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass(frozen=True)
class IncidentReport:
    """The result of :func:`run_incident`: the load's :class:`~.report.DemoReport`, the
    phases, every alert seen, and triage at the incident's peak.

    ``alerts`` holds every alert that fired; ``pending_only`` those that went pending and
    never fired. ``triage`` is :meth:`TriageReport.to_dict` (what ``triage --json`` prints),
    ``None`` without Prometheus or when triage could not run (``triage_error`` says why).
    """

    load: DemoReport
    faults: str
    causes: tuple[str, ...]
    phases: tuple[Phase, ...]
    alerts: tuple[AlertRecord, ...] = ()
    pending_only: tuple[AlertRecord, ...] = ()
    triage: dict[str, Any] | None = None
    triage_at: float | None = None
    triage_error: str | None = None
    prometheus: str | None = None
    note: str = ""

    def phase(self, name: str) -> Phase | None:
        """The phase called ``name`` (``healthy``, ``incident``, ``recovery``), if it ran."""
        return next((p for p in self.phases if p.name == name), None)

    @property
    def incident_started_at(self) -> float | None:
        p = self.phase("incident")
        return None if p is None else p.started_at

    @property
    def detected_at(self) -> float | None:
        """When the first alert of a cause class fired (any failure-class alert when the
        profile names no cause)."""
        fired = [
            a.fired_at
            for a in self.alerts
            if a.fired_at is not None
            and (a.failure_class in self.causes if self.causes else _is_class(a.failure_class))
        ]
        return min(fired) if fired else None

    @property
    def time_to_detect(self) -> float | None:
        start, detected = self.incident_started_at, self.detected_at
        return None if start is None or detected is None else detected - start

    @property
    def all_resolved_at(self) -> float | None:
        """When the last alert that fired resolved (None while one still fires)."""
        if not self.alerts or any(a.resolved_at is None for a in self.alerts):
            return None
        return max(a.resolved_at for a in self.alerts if a.resolved_at is not None)

    @property
    def time_to_resolve(self) -> float | None:
        """From the start of recovery (the fault removed) to the last alert resolved."""
        p, end = self.phase("recovery"), self.all_resolved_at
        return None if p is None or end is None else end - p.started_at

    @property
    def triage_first(self) -> str | None:
        ranked = (self.triage or {}).get("ranked") or []
        return str(ranked[0]["name"]) if ranked else None

    def to_dict(self) -> dict[str, Any]:
        """The load report's data plus ``alerts``, ``triage`` and the ``timeline``."""
        data = self.load.to_dict()
        data.update(
            {
                "faults": self.faults,
                "prometheus": self.prometheus,
                "alerts": [a.to_dict() for a in self.alerts],
                "alerts_pending_only": [a.to_dict() for a in self.pending_only],
                "triage": self.triage,
                "triage_error": self.triage_error,
                "timeline": {
                    "phases": [p.to_dict() for p in self.phases],
                    "causes": list(self.causes),
                    "incident_started_at": _r(self.incident_started_at),
                    "detected_at": _r(self.detected_at),
                    "time_to_detect": _r(self.time_to_detect),
                    "triage_at": _r(self.triage_at),
                    "triage_first": self.triage_first,
                    "all_resolved_at": _r(self.all_resolved_at),
                    "time_to_resolve": _r(self.time_to_resolve),
                },
            }
        )
        return data

    def render_text(self) -> str:
        """The SLO report, then the timeline."""
        lines = [self.load.render_text().rstrip("\n"), ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("timeline (seconds from the start):")
        for p in self.phases:
            end = "running" if p.ended_at is None else f"{p.ended_at:6.1f}"
            why = f" ({p.ended_by})" if p.ended_by else ""
            lines.append(
                f"  {p.started_at:6.1f} - {end}  {p.name:<9} upstream faults {p.faults!r}{why}"
            )
        if self.prometheus is not None:
            lines.append("")
            if not self.alerts and not self.pending_only:
                lines.append("alerts: none went pending")
            else:
                lines.append("alerts (pending -> fired -> resolved):")
                for a in (*self.alerts, *self.pending_only):
                    lines.append(
                        f"  {_t(a.pending_at)} -> {_t(a.fired_at)} -> {_t(a.resolved_at)}  "
                        f"{a.alertname} ({a.failure_class}, {a.severity}){_slo(a)}"
                    )
                    lines.append(f"      runbook: {a.runbook_url}")
            lines.append("")
            lines.append(
                f"incident started at {_t(self.incident_started_at).strip()}s; "
                f"time to detect: {_span(self.time_to_detect)}; "
                f"time to resolve (from recovery): {_span(self.time_to_resolve)}"
            )
            if self.triage is not None:
                lines.append(f"triage at {_t(self.triage_at).strip()}s: {self.triage['headline']}")
            elif self.triage_error:
                lines.append(f"triage did not run: {self.triage_error}")
        return "\n".join(lines) + "\n"


def _is_class(failure_class: str) -> bool:
    return failure_class in {fc.id for fc in failure_classes()}


def _slo(a: AlertRecord) -> str:
    slo = a.labels.get("slo")
    if not slo:
        return ""
    windows = "/".join(a.labels[k] for k in ("long", "short") if k in a.labels)
    return f" slo={slo}" + (f" {windows}" if windows else "")


def _t(value: float | None) -> str:
    return "     -" if value is None else f"{value:6.1f}"


def _span(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


# ----------------------------------------------------------------------------- watching ALERTS
class AlertWatch:
    """Every alert seen in ``/api/v1/alerts``, with when it went pending, fired and resolved."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        #: The latest record of each label set; an alert that resolves and comes back gets
        #: a new record, and :attr:`history` keeps them all.
        self.records: dict[tuple[tuple[str, str], ...], AlertRecord] = {}
        self.history: list[AlertRecord] = []

    def update(self, alerts: list[dict[str, Any]], now: float) -> list[tuple[str, AlertRecord]]:
        """Fold one reply of the alerts API in; return the transitions
        (``pending``/``firing``/``resolved``, record), in order."""
        t = now - self.t0
        changes: list[tuple[str, AlertRecord]] = []
        seen = set()
        for alert in alerts:
            labels = {str(k): str(v) for k, v in dict(alert.get("labels") or {}).items()}
            key = tuple(sorted(labels.items()))
            seen.add(key)
            state = str(alert.get("state", ""))
            record = self.records.get(key)
            if record is None or record.resolved_at is not None:
                annotations = dict(alert.get("annotations") or {})
                record = AlertRecord(
                    alertname=labels.get("alertname", ""),
                    failure_class=labels.get(n.LABEL_FAILURE_CLASS, ""),
                    severity=labels.get("severity", ""),
                    runbook_url=str(annotations.get("runbook_url", "")),
                    summary=str(annotations.get("summary", "")),
                    labels=labels,
                    pending_at=t,
                )
                self.records[key] = record
                self.history.append(record)
                changes.append(("pending", record))
            if state == "firing" and record.fired_at is None:
                record.fired_at = t
                record.state = "firing"
                changes.append(("firing", record))
        for key, record in self.records.items():
            if key not in seen and record.resolved_at is None:
                record.resolved_at = t
                record.state = "resolved"
                changes.append(("resolved", record))
        return changes

    def active(self) -> list[AlertRecord]:
        return [r for r in self.records.values() if r.resolved_at is None]

    def fired(self) -> list[AlertRecord]:
        return sorted(
            (r for r in self.history if r.fired_at is not None),
            key=lambda r: (r.fired_at or 0.0, r.alertname),
        )

    def pending_only(self) -> list[AlertRecord]:
        return sorted(
            (r for r in self.history if r.fired_at is None),
            key=lambda r: (r.pending_at or 0.0, r.alertname),
        )


# ----------------------------------------------------------------------------- the run
#: Signals that stop the run cleanly (with ``handle_signals``).
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class _State:
    phases: list[Phase] = field(default_factory=list)
    triage: dict[str, Any] | None = None
    triage_at: float | None = None
    triage_error: str | None = None
    report: IncidentReport | None = None
    prometheus: str | None = None
    watch: AlertWatch | None = None


async def run_incident_async(
    *,
    faults: str = DEFAULT_INCIDENT,
    streams: int = INCIDENT_STREAMS,
    spec: Spec | None = None,
    binary: str | None,
    seed: int = 0,
    out: TextIO | None = None,
    live: bool | None = None,
    keep: bool = False,
    on_report: Callable[[IncidentReport], None] | None = None,
    handle_signals: bool = False,
    stop: asyncio.Event | None = None,
    provider: str = "openai",
    healthy_seconds: float = HEALTHY_SECONDS,
    incident_cap: float = INCIDENT_CAP,
    recovery_cap: float = RECOVERY_CAP,
    metrics_port: int = 0,
) -> IncidentReport:
    """Run the whole loop in the running event loop; see :func:`run_incident`."""
    from ..exporters import start_metrics_server
    from ..simulate import resolve_profile

    profile = resolve_profile(faults)  # an unknown name fails here, before anything starts
    spec_data = demo_spec_data() if spec is None else None
    spec = spec if spec is not None else demo_spec()
    out = out if out is not None else sys.stdout
    stop = stop if stop is not None else asyncio.Event()
    causes = cause_classes(profile.name)
    state = _State()
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    loop = asyncio.get_running_loop()
    if handle_signals:
        # From the very start: a Ctrl-C while Prometheus boots must still stop it.
        # A closed terminal (SIGHUP) too: Prometheus must not outlive the demo.
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
    workdir = Path(tempfile.mkdtemp(prefix="steadystream-demo-"))
    server = None
    prom = None
    load: DemoReport | None = None
    try:
        server = start_metrics_server(metrics_port, "127.0.0.1", registry=registry)
        address = f"127.0.0.1:{server.port}"
        print(f"metrics: http://{address}/metrics", file=out, flush=True)
        if binary is None:
            print(NO_PROMETHEUS_HINT, file=out, flush=True)
        else:
            prom = await asyncio.to_thread(
                _start_prometheus, spec, spec_data, workdir, address, binary, out
            )

        async def script(control: LoadControl) -> None:
            await _script(
                control,
                spec=spec,
                profile=profile.name,
                causes=causes,
                prom=prom,
                state=state,
                healthy_seconds=healthy_seconds,
                incident_cap=incident_cap,
                recovery_cap=recovery_cap,
                keep=keep,
                on_report=on_report,
                workdir=workdir,
            )

        if not stop.is_set():
            load = await run_demo_async(
                streams=streams,
                faults="none",
                metrics_port=None,
                spec=spec,
                seed=seed,
                registry=registry,
                out=out,
                live=live,
                stop=stop,
                slow_consumers=0.03 if profile.name == "mixed" else 0.0,
                provider=provider,
                token_interval=INCIDENT_TOKEN_INTERVAL,
                script=script,
            )
    finally:
        if handle_signals:
            for sig in _STOP_SIGNALS:
                loop.remove_signal_handler(sig)
        if prom is not None:
            await asyncio.to_thread(prom.stop)
        if server is not None:
            server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    if load is None:  # stopped while Prometheus was starting
        from .report import ClientTally, build_report

        load = build_report(
            spec=spec,
            registry=registry,
            tally=ClientTally(),
            faults=profile.name,
            seed=seed,
            streams=streams,
            duration_s=0.0,
            interrupted=True,
            metrics_url=None,
        )
    load = replace(load, faults=profile.name, metrics_url=f"http://{address}/metrics")
    final = state.report
    if final is not None and not keep:
        # The script's report is a snapshot at the end of recovery; the load's own count
        # after the drain is the complete one.
        final = replace(final, load=load)
    if final is None:  # interrupted before the end of recovery
        final = _report(spec, load, profile.name, causes, state, None, state.watch)
    return final


def _start_prometheus(
    spec: Spec,
    spec_data: Mapping[str, Any] | None,
    workdir: Path,
    address: str,
    binary: str,
    out: TextIO,
) -> Any:
    """Generate every artifact into ``workdir`` and start Prometheus on its rules."""
    from ..generate import render_all, write_output
    from ..testing.prometheus import PrometheusServer, ScrapeTarget

    text = yaml.safe_dump(
        spec_data if spec_data is not None else spec.model_dump(mode="json", by_alias=True),
        sort_keys=False,
    )
    (workdir / "slo.yaml").write_text(text, encoding="utf-8")
    from ..catalog.source import Source

    write_output(workdir, render_all(spec, Source.from_bytes("slo.yaml", text.encode())))
    job, labels = scrape_job(spec)
    rules = workdir / c.ALERTS_DIR / "*.yaml"
    prom = PrometheusServer(
        rule_files=[rules],
        targets=[ScrapeTarget(address, job=job, labels=labels)],
        scrape_interval=SCRAPE_INTERVAL,
        evaluation_interval=SCRAPE_INTERVAL,
        binary=binary,
    )
    prom.start()
    print(
        f"rules: {rules} (generated from {workdir / 'slo.yaml'}: failure-class window "
        f"{_dur(spec.alerting.window)}, burn tiers "
        + ", ".join(f"{_dur(t.long)}/{_dur(t.short)}" for t in spec.alerting.tiers if t.enabled)
        + ")",
        file=out,
    )
    print(
        f"prometheus: {prom.url} (pid {prom.pid}; scrapes and evaluates every "
        f"{SCRAPE_INTERVAL:g}s)",
        file=out,
        flush=True,
    )
    return prom


def _dur(seconds: float) -> str:
    from ..spec import format_duration

    return format_duration(seconds)


async def _script(
    control: LoadControl,
    *,
    spec: Spec,
    profile: str,
    causes: tuple[str, ...],
    prom: Any,
    state: _State,
    healthy_seconds: float,
    incident_cap: float,
    recovery_cap: float,
    keep: bool,
    on_report: Callable[[IncidentReport], None] | None,
    workdir: Path,
) -> None:
    """The scripted incident, run beside the load by the driver."""
    t0 = time.monotonic()
    progress = control.progress
    watch = state.watch = AlertWatch(t0)
    upstream = control.upstream

    def now() -> float:
        return time.monotonic() - t0

    def begin(name: str, faults: str, what: str) -> None:
        upstream.profile = faults
        state.phases.append(Phase(name, faults, now()))
        progress.phase = f"{name}: {faults}"
        progress.note(f"[{now():5.1f}s] {name}: {what}")

    def end(why: str) -> None:
        state.phases[-1] = replace(state.phases[-1], ended_at=now(), ended_by=why)

    async def poll() -> list[tuple[str, AlertRecord]]:
        alerts = await asyncio.to_thread(prom.alerts)
        changes = watch.update(alerts, time.monotonic())
        for what, r in changes:
            progress.note(
                f"[{now():5.1f}s] alert {what}: {r.alertname} ({r.failure_class}, "
                f"{r.severity}){_slo(r)}; runbook {r.runbook_url}"
            )
        progress.alerts = [
            (r.state, r.alertname, r.failure_class, r.runbook_url) for r in watch.active()
        ]
        return changes

    async def until(condition: Callable[[], bool], cap: float) -> bool:
        """Poll ALERTS every scrape interval until ``condition`` holds (True) or ``cap``
        seconds pass (False)."""
        deadline = time.monotonic() + cap
        while True:
            if prom is not None:
                await poll()
            if condition():
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(SCRAPE_INTERVAL)

    healthy_len, incident_len, recovery_len = FALLBACK_PHASES
    if prom is None:
        for name, faults, length in (
            ("healthy", "none", healthy_len),
            ("incident", profile, incident_len),
            ("recovery", "none", recovery_len),
        ):
            begin(name, faults, f"upstream faults {faults!r} for {length:g}s")
            await asyncio.sleep(length)
            end(f"after {length:g}s")
        state.report = _report(
            spec, _snapshot(control, spec, profile), profile, causes, state, NO_PROMETHEUS_HINT
        )
        return

    state.prometheus = prom.url
    # Warm-up: Prometheus has seen streams finish, every rule has run on that, and nothing is
    # active. Until a finished stream's counter is scraped twice, its rate is empty, which
    # the rules read as "streams are open but none finishes": on a loaded machine the first
    # streams take several scrapes to end, and a warm-up of a fixed number of scrapes ended
    # with that alert pending.
    begin("warm-up", "none", "waiting for Prometheus to see streams finish and run the rules")
    await asyncio.to_thread(prom.wait_for_targets_up, timeout=WARMUP_CAP)
    finishing = promql.sum_rate(
        promql.Selector.concrete(spec), c.REQUESTS_TOTAL, window=DEMO_WINDOW
    )
    await asyncio.to_thread(prom.wait_for_query, f"{finishing} > 0", timeout=WARMUP_CAP)
    await asyncio.to_thread(prom.wait_for_rule_evaluations, after=time.time(), timeout=WARMUP_CAP)
    ok = await until(lambda: not watch.active(), WARMUP_CAP)
    end("no alert active" if ok else f"cap of {WARMUP_CAP:g}s")

    begin("healthy", "none", f"healthy traffic for {healthy_seconds:g}s")
    deadline = time.monotonic() + healthy_seconds
    await until(lambda: time.monotonic() >= deadline, healthy_seconds + 1)
    end(f"after {healthy_seconds:g}s")

    detail = FAULT_PROFILES.get(profile, profile)
    target = ", ".join(causes) if causes else "any failure class"
    begin(
        "incident",
        profile,
        f"the upstream now injects {profile!r} ({detail}); "
        f"waiting for the alert of {target} to fire",
    )

    def detected() -> bool:
        # The peak: the cause's alert fires, and every other alert the fault set pending has
        # fired too (or dropped), so triage and the timeline see the incident whole.
        cause_fired = any(
            r.fired_at is not None
            and r.resolved_at is None
            and (r.failure_class in causes if causes else _is_class(r.failure_class))
            for r in watch.records.values()
        )
        return cause_fired and not any(r.state == "pending" for r in watch.active())

    fired = await until(detected, incident_cap)
    # The peak: what on-call sees when paged, from the same code as `steadystream triage`.
    await _triage(spec, prom, state, now, progress)
    end("alert fired" if fired else f"cap of {incident_cap:g}s")

    begin("recovery", "none", "the upstream is healthy again; waiting for every alert to resolve")
    resolved = await until(lambda: not watch.active(), recovery_cap)
    end("every alert resolved" if resolved else f"cap of {recovery_cap:g}s")

    state.report = _report(
        spec, _snapshot(control, spec, profile), profile, causes, state, None, watch
    )
    if keep:
        progress.phase = "kept running (Ctrl-C stops)"
        if on_report is not None:
            on_report(state.report)
        for line in await asyncio.to_thread(_keep_lines, spec, prom, workdir, causes):
            progress.note(line)
        while True:
            await poll()
            await asyncio.sleep(SCRAPE_INTERVAL)


async def _triage(
    spec: Spec, prom: Any, state: _State, now: Callable[[], float], progress: Any
) -> None:
    from ..triage import PrometheusUnreachable, triage

    state.triage_at = now()
    try:
        report = await asyncio.to_thread(triage, spec, prom.url)
    except PrometheusUnreachable as exc:
        state.triage_error = str(exc)
        progress.note(f"[{now():5.1f}s] triage: {exc}")
        return
    state.triage = report.to_dict()
    progress.note(f"[{now():5.1f}s] triage (steadystream triage --prometheus {prom.url}):")
    progress.note(f"    {report.headline}")
    for i, r in enumerate(report.ranked_classes, 1):
        why = f", a consequence of {', '.join(r.explained_by)}" if r.explained_by else ""
        progress.note(f"    {i}. {r.name} ({r.score:.2f}x its threshold{why}): {r.runbook}")


def _snapshot(control: LoadControl, spec: Spec, profile: str) -> DemoReport:
    from .report import build_report

    return build_report(
        spec=spec,
        registry=control.registry,
        tally=control.tally,
        faults=profile,
        seed=control.seed,
        streams=control.streams,
        duration_s=time.monotonic() - control.started,
        interrupted=False,
        metrics_url=None,
    )


def _report(
    spec: Spec,
    load: DemoReport,
    profile: str,
    causes: tuple[str, ...],
    state: _State,
    note: str | None,
    watch: AlertWatch | None = None,
) -> IncidentReport:
    return IncidentReport(
        load=load,
        faults=profile,
        causes=causes,
        phases=tuple(state.phases),
        alerts=tuple(watch.fired()) if watch else (),
        pending_only=tuple(watch.pending_only()) if watch else (),
        triage=state.triage,
        triage_at=state.triage_at,
        triage_error=state.triage_error,
        prometheus=state.prometheus,
        note=note or "",
    )


def _keep_lines(spec: Spec, prom: Any, workdir: Path, causes: tuple[str, ...]) -> list[str]:
    """What ``--keep`` prints: the alerts page, graph URLs, where the runbooks are."""
    from ..catalog.alerting import burn_rate, failure_class_signals
    from ..catalog.promql import Sel, dur, matcher_labels

    graph_page = prom.ui_page("graph")

    def graph(*exprs: str) -> str:
        params: dict[str, str] = {}
        for i, expr in enumerate(exprs):
            params |= {f"g{i}.expr": expr, f"g{i}.tab": "0", f"g{i}.range_input": "5m"}
        return f"{graph_page}?{urllib.parse.urlencode(params)}"

    lines = [
        "kept running until Ctrl-C:",
        f"  alerts:   {prom.ui_page('alerts')}",
        f"  runbooks: {workdir / c.RUNBOOKS_DIR}",
    ]
    classes = failure_class_signals(spec)
    for fc in causes or tuple(classes):
        for sig in classes.get(fc, [])[:1]:
            lines.append(f"  graph {fc} ({sig.name}): {graph(sig.expr)}")
    tier = next(t for t in spec.alerting.tiers if t.enabled)
    for slo in spec.slos:
        sel = Sel({**matcher_labels(spec), n.LABEL_SLO: slo.name})
        lines.append(
            f"  graph SLO {slo.name} burn rate ({dur(tier.long)} and {dur(tier.short)}): "
            + graph(
                burn_rate(sel(n.slo_error_ratio(tier.long)), slo),
                burn_rate(sel(n.slo_error_ratio(tier.short)), slo),
            )
        )
    lines.append("Ctrl-C stops the upstream, /metrics and Prometheus.")
    return lines


def run_incident(
    *,
    faults: str = DEFAULT_INCIDENT,
    streams: int = INCIDENT_STREAMS,
    spec: Spec | None = None,
    binary: str | None,
    seed: int = 0,
    out: TextIO | None = None,
    live: bool | None = None,
    keep: bool = False,
    on_report: Callable[[IncidentReport], None] | None = None,
    handle_signals: bool = False,
    provider: str = "openai",
    healthy_seconds: float = HEALTHY_SECONDS,
    incident_cap: float = INCIDENT_CAP,
    recovery_cap: float = RECOVERY_CAP,
    metrics_port: int = 0,
) -> IncidentReport:
    """Run the whole loop (see the module's docstring) and return its :class:`IncidentReport`.

    - ``faults``: the incident's fault profile (default :data:`DEFAULT_INCIDENT`);
    - ``binary``: the ``prometheus`` binary (:func:`steadystream.testing.find_prometheus`);
      ``None`` runs the load and the SLO report only;
    - ``spec``: default :func:`demo_spec`; a spec with 5 m windows runs into the caps;
    - ``keep``: after the report, keep everything running until Ctrl-C (``on_report`` is
      called with the report first);
    - ``handle_signals``: Ctrl-C and SIGTERM stop the run; everything still stops cleanly and
      the report comes back, marked interrupted;
    - ``streams``, ``seed``, ``provider``, ``metrics_port``, ``out`` and ``live`` as for
      :func:`~.driver.run_demo`; ``healthy_seconds`` and the caps bound the phases.
    """
    return asyncio.run(
        run_incident_async(
            faults=faults,
            streams=streams,
            spec=spec,
            binary=binary,
            seed=seed,
            out=out,
            live=live,
            keep=keep,
            on_report=on_report,
            handle_signals=handle_signals,
            provider=provider,
            healthy_seconds=healthy_seconds,
            incident_cap=incident_cap,
            recovery_cap=recovery_cap,
            metrics_port=metrics_port,
        )
    )
