"""`steadystream demo`, the whole loop: generated rules in the real Prometheus, a scripted
incident, alerts firing and resolving, triage at the peak, and no process left behind.

The three incidents (and the run without Prometheus) play in concurrent child processes, each
with its own Prometheus, so the suite waits for the slowest of them once. Each phase of a run
ends on a condition (an alert state in Prometheus, its scrape record), bounded by generous caps.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import steadystream as ss
from steadystream import conventions as c
from steadystream.alerts import render_rules
from steadystream.catalog import names
from steadystream.catalog.memo import render_scope
from steadystream.catalog.source import Source
from steadystream.demo import cause_classes, demo_spec
from steadystream.demo.incident import DEMO_FOR, DEMO_WINDOW, NO_PROMETHEUS_HINT
from steadystream.testing import find_prometheus

#: The incidents the suite plays, and the failure class each must page and triage first.
INCIDENTS = {
    "rate-limit": "upstream-rate-limit",
    "outage": "upstream-errors",
    "stall": "idle-stall",
}
#: A whole run is a warm-up, 15 s healthy, the incident and the recovery, each capped; this
#: bounds the slowest on a loaded machine with room to spare.
RUN_TIMEOUT = 480.0


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steadystream", "demo", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=_env(),
        timeout=RUN_TIMEOUT,
    )


@dataclass
class KeptRun:
    """A ``demo --keep`` run: its output, the replies to the URLs it printed while kept
    running, and its exit code after Ctrl-C."""

    output: str = ""
    pages: dict[str, int] = field(default_factory=dict)
    returncode: int | None = None


def _keep_run() -> KeptRun:
    """``demo --keep --faults outage``: wait for it to say it is kept running, open every URL
    it printed, then Ctrl-C it."""
    kept = KeptRun()
    proc = subprocess.Popen(
        [sys.executable, "-m", "steadystream", "demo", "--keep", "--faults", "outage"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_env(),
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in _lines(proc)], daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        # The URL lines follow "kept running"; the Ctrl-C line comes last.
        while not any(line.startswith("Ctrl-C stops") for line in seen):
            if time.monotonic() > deadline or proc.poll() is not None:
                kept.output = "".join(seen)
                return kept
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                continue
        for url in re.findall(
            r"(http://127\.0\.0\.1:\d+/(?:classic/)?(?:alerts|(?:graph|query)\?\S+))", "".join(seen)
        ):
            kept.pages[url] = httpx.get(url, timeout=30).status_code
        os.kill(proc.pid, signal.SIGINT)
        kept.returncode = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    while True:
        try:
            seen.append(lines.get(timeout=5))
        except queue.Empty:
            break
    kept.output = "".join(seen)
    return kept


@pytest.fixture(scope="module")
def runs() -> dict[str, Any]:
    """`demo --json` for each incident, once without Prometheus, and once with --keep, all
    at once."""
    find_prometheus()  # a missing binary fails here with the install hint, never a skip
    jobs = {name: ("--json", "--faults", name) for name in INCIDENTS}
    jobs["no-prometheus"] = ("--json", "--faults", "rate-limit", "--no-prometheus")
    with ThreadPoolExecutor(max_workers=len(jobs) + 1) as pool:
        futures = {name: pool.submit(_run, *args) for name, args in jobs.items()}
        keep = pool.submit(_keep_run)
        done: dict[str, Any] = {name: f.result() for name, f in futures.items()}
        done["keep"] = keep.result()
        return done


def _report(run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    data: dict[str, Any] = json.loads(run.stdout)
    return data


def _phase(report: dict[str, Any], name: str) -> dict[str, Any]:
    phases = {p["name"]: p for p in report["timeline"]["phases"]}
    assert name in phases, phases
    return phases[name]


def _pid_alive(pid: int, marker: str) -> bool:
    """Whether ``pid`` is still the process started with ``marker`` in its command line (a
    recycled pid belongs to someone else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return marker in cmdline


def _started(stderr: str) -> tuple[Path, int]:
    """The demo's temporary directory and its Prometheus's pid, as the demo printed them."""
    rules = re.search(r"^rules: (\S+)/alerts/\*\.yaml", stderr, re.M)
    pid = re.search(r"^prometheus: \S+ \(pid (\d+);", stderr, re.M)
    assert rules and pid, stderr[:2000]
    return Path(rules.group(1)), int(pid.group(1))


# ------------------------------------------------------------------------------- the spec
def test_demo_spec_compresses_time_through_the_spec_alone() -> None:
    """The demo's rules come from the generator as it is: the failure-class alerts read the
    spec's alerting.window and for, and nothing in them still reads 5 minutes."""
    spec = demo_spec()
    assert spec.alerting.window == 10.0
    with render_scope():
        files = render_rules(spec, Source.from_spec("slo.yaml", spec))
    groups = [
        g
        for text in files.values()
        for g in (yaml.safe_load(text) or {}).get("groups", [])
        if g["name"] == names.failure_class_group(spec.service)
    ]
    assert groups, sorted(files)
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 15
    for rule in alerts:
        assert rule["for"] == DEMO_FOR, rule["alert"]
        assert "[5m]" not in rule["expr"] and "offset 5m" not in rule["expr"], rule["expr"]
    assert any(f"[{DEMO_WINDOW}]" in r["expr"] for r in alerts)


def test_alerting_window_bounds_name_the_field(tmp_path: Path) -> None:
    """A window outside 1s..1h is refused with the file, line and field."""
    path = tmp_path / "slo.yaml"
    path.write_text("version: 1\nservice: x\nalerting:\n  window: 2h\n", encoding="utf-8")
    with pytest.raises(ss.SpecError) as err:
        ss.load_spec(path)
    message = str(err.value)
    assert f"{path}:4:" in message
    assert "alerting.window" in message
    assert "from 1s to 1h" in message


def test_each_profile_names_the_class_it_causes() -> None:
    """The class an incident waits for comes from the registry: the classes listing the
    profile, less those another of them explains."""
    assert {p: cause_classes(p) for p in INCIDENTS} == {p: (fc,) for p, fc in INCIDENTS.items()}
    assert cause_classes("mixed") == ()


# ------------------------------------------------------------------------------- the loop
@pytest.mark.parametrize("profile", sorted(INCIDENTS))
def test_incident_pages_the_injected_class_and_triage_ranks_it_first(
    runs: dict[str, Any], profile: str
) -> None:
    """The injected class's alert fires during the incident, with its runbook, and triage at
    the peak ranks that class first and names its runbook. The outage is a 503 outage while
    ingress sheds: streams are refused at ingress too, and the cause still ranks first."""
    report = _report(runs[profile])
    want = INCIDENTS[profile]
    if profile == "outage":
        assert report["errors"].get(c.ERROR_CLASS_REJECTED, 0) > 0, report["errors"]
    incident = _phase(report, "incident")
    assert incident["faults"] == profile
    assert incident["ended_by"] == "alert fired", incident
    fired = [a for a in report["alerts"] if a["failure_class"] == want]
    assert fired, [a["alertname"] for a in report["alerts"]]
    for alert in fired:
        assert alert["runbook_url"] == f"runbooks/{want}.md"
        assert alert["severity"] in ("warning", "critical")
        assert alert["fired_at"] >= incident["started_at"]
        assert alert["pending_at"] <= alert["fired_at"]
    triage = report["triage"]
    assert triage["ranked"][0]["name"] == want, [r["name"] for r in triage["ranked"]]
    assert triage["ranked"][0]["runbook"] == f"runbooks/{want}.md"
    assert triage["headline"] == f"most likely: {want}; open runbooks/{want}.md"
    timeline = report["timeline"]
    assert timeline["triage_first"] == want
    assert timeline["time_to_detect"] == pytest.approx(
        timeline["detected_at"] - incident["started_at"], abs=0.2
    )
    assert incident["started_at"] <= timeline["triage_at"] <= incident["ended_at"]


@pytest.mark.parametrize("profile", sorted(INCIDENTS))
def test_healthy_phase_fires_nothing(runs: dict[str, Any], profile: str) -> None:
    """No alert fires while the upstream is healthy before the incident, and none still
    fires from the warm-up."""
    report = _report(runs[profile])
    healthy = _phase(report, "healthy")
    assert _phase(report, "warm-up")["ended_by"] == "no alert active"
    early = [a for a in report["alerts"] if a["fired_at"] < healthy["ended_at"]]
    # On failure, what the run saw: each early alert whole, the phases, and the stream
    # outcomes and failure classes of the run (the report does not split them by phase).
    seen = {k: report[k] for k in ("streams_failed", "errors", "failure_classes", "retries")}
    assert early == [], (early, report["timeline"]["phases"], seen)


@pytest.mark.parametrize("profile", sorted(INCIDENTS))
def test_recovery_resolves_every_alert_and_cleans_up(runs: dict[str, Any], profile: str) -> None:
    """Once the upstream is healthy again every alert that fired resolves; the timeline says
    when; Prometheus is gone and the temporary directory removed."""
    run = runs[profile]
    report = _report(run)
    recovery = _phase(report, "recovery")
    assert recovery["ended_by"] == "every alert resolved", recovery
    for alert in report["alerts"]:
        assert alert["resolved_at"] is not None, alert
        assert alert["resolved_at"] >= alert["fired_at"]
    timeline = report["timeline"]
    assert timeline["all_resolved_at"] == max(a["resolved_at"] for a in report["alerts"])
    assert timeline["time_to_resolve"] == pytest.approx(
        timeline["all_resolved_at"] - recovery["started_at"], abs=0.2
    )
    # The SLO report is still there, for the whole run.
    assert report["streams_finished"] > 0
    assert {s["name"] for s in report["slos"]} == {
        "time-to-first-token",
        "recovery-time",
        "stream-errors",
    }
    workdir, pid = _started(run.stderr)
    assert not workdir.exists()
    assert not _pid_alive(pid, "prometheus")


def test_without_prometheus_the_load_and_slo_report_still_run(
    runs: dict[str, Any],
) -> None:
    """Without Prometheus the scripted load runs, the SLO report comes out, one line says how
    to get the whole loop, and there are no alerts or triage to report."""
    run = runs["no-prometheus"]
    report = _report(run)
    assert NO_PROMETHEUS_HINT in run.stderr
    assert [p["name"] for p in report["timeline"]["phases"]] == ["healthy", "incident", "recovery"]
    assert report["prometheus"] is None
    assert report["alerts"] == [] and report["triage"] is None
    assert report["streams_finished"] > 0
    assert report["failure_classes"]["upstream-rate-limit"] > 0


def test_keep_keeps_prometheus_up_with_alert_and_graph_urls(runs: dict[str, Any]) -> None:
    """--keep prints the report, then keeps Prometheus up: its alerts page and the printed
    graph URLs answer; Ctrl-C then stops everything."""
    kept: KeptRun = runs["keep"]
    assert kept.returncode == 0, kept.output[-3000:]
    assert "Traceback" not in kept.output
    assert "steadystream demo report" in kept.output
    assert "timeline (seconds from the start):" in kept.output
    assert "kept running until Ctrl-C:" in kept.output
    alerts = [u for u in kept.pages if u.endswith("alerts")]
    graphs = [u for u in kept.pages if "?g0.expr=" in u]
    # Each SLO's graph draws its burn rate over the fastest tier's two windows.
    assert sum("g1.expr=" in u for u in graphs) == 3, graphs
    # The alerts page, the cause's signal and each of the three SLOs' burn rate.
    assert len(alerts) == 1 and len(graphs) == 4, kept.output[-3000:]
    assert any("upstream-errors" in line and "graph" in line for line in kept.output.splitlines())
    assert set(kept.pages.values()) == {200}, kept.pages
    workdir, pid = _started(kept.output)
    assert not workdir.exists()
    assert not _pid_alive(pid, "prometheus")


# ------------------------------------------------------------------------------- Ctrl-C
def _children_in_group(pgid: int) -> set[int]:
    """Processes whose process group is ``pgid`` (the demo's own session)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces, so split after its ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def _lines(proc: subprocess.Popen[str]) -> Iterator[str]:
    assert proc.stdout is not None
    yield from proc.stdout


def test_sigint_mid_run_leaves_no_process_and_no_temp_dir() -> None:
    """Ctrl-C during the incident stops the upstream, /metrics and Prometheus: nothing of
    the demo's process group survives it, and its temporary directory is gone."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "steadystream", "demo", "--faults", "outage"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_env(),
        start_new_session=True,  # its own process group, so the check below is only its own
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in _lines(proc)], daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 180
        # Wait until the load runs against a live Prometheus: the incident has begun.
        while not any("] incident:" in line for line in seen):
            assert time.monotonic() < deadline, "".join(seen)[-3000:]
            assert proc.poll() is None, "".join(seen)[-3000:]
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                continue
        workdir, prom_pid = _started("".join(seen))
        group = _children_in_group(proc.pid)
        assert prom_pid in group and proc.pid in group, (prom_pid, group)
        os.kill(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    while True:
        try:
            seen.append(lines.get(timeout=5))
        except queue.Empty:
            break
    output = "".join(seen)
    assert code == 0, output[-3000:]
    assert "Traceback" not in output
    assert "(interrupted)" in output
    assert _children_in_group(proc.pid) == set()
    assert not _pid_alive(prom_pid, "prometheus")
    assert not workdir.exists()


def test_alert_watch_keeps_every_episode() -> None:
    """An alert that fires, resolves and comes back is two episodes, both reported; one that
    goes pending and drops without firing is reported apart."""
    from steadystream.demo.incident import AlertWatch

    def alert(name: str, state: str) -> dict[str, Any]:
        labels = {"alertname": name, "failure_class": "upstream-errors", "severity": "warning"}
        return {"labels": labels, "annotations": {"runbook_url": "runbooks/x.md"}, "state": state}

    watch = AlertWatch(t0=100.0)
    steps = [
        (101.0, [alert("A", "pending")]),
        (106.0, [alert("A", "firing"), alert("B", "pending")]),
        (107.0, [alert("A", "firing")]),
        (110.0, []),
        (112.0, [alert("A", "pending")]),
        (117.0, [alert("A", "firing")]),
        (120.0, []),
    ]
    changes = [
        (what, r.alertname) for now, alerts in steps for what, r in watch.update(alerts, now)
    ]
    assert changes == [
        ("pending", "A"),
        ("firing", "A"),
        ("pending", "B"),
        ("resolved", "B"),
        ("resolved", "A"),
        ("pending", "A"),
        ("firing", "A"),
        ("resolved", "A"),
    ]
    assert [(r.pending_at, r.fired_at, r.resolved_at) for r in watch.fired()] == [
        (1.0, 6.0, 10.0),
        (12.0, 17.0, 20.0),
    ]
    assert [(r.alertname, r.resolved_at) for r in watch.pending_only()] == [("B", 7.0)]
    assert watch.fired()[0].runbook_url == "runbooks/x.md"
