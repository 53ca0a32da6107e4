"""One page per incident, proved with the real tools: a 503 outage is played through the
generated rules by ``promtool test rules``, the alerts it fires are posted to a real
Alertmanager (Debian's ``prometheus-alertmanager``) running the generated
``alertmanager/<service>.yaml``, and the Alertmanager API says which are inhibited.

Which alerts fire is read from promtool, not written here: every alert rule of the generated file
is asserted silent at the end of the outage, promtool's failure report lists what fired (labels
and annotations), and a second promtool run asserting exactly that list must pass, so the parse
is proved too. The missing binaries fail with the ``make tools`` hint; nothing skips.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import steadystream as ss
from steadystream import conventions as c
from steadystream.alerts import names, rules_paths
from steadystream.catalog.classes import explained_by
from steadystream.catalog.promql import matcher_labels
from steadystream.generate import Source, render_all
from steadystream.spec.units import parse_duration
from steadystream.testing import AlertmanagerServer, find_alertmanager

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SPEC = ROOT / "examples" / "chat-gateway" / "slo.yaml"
_RANK = {"critical": 3, "page": 3, "warning": 2, "ticket": 2, "info": 1}
PAGE = 3

#: The outage: 30 healthy minutes at 10 streams/s, then 45 minutes in which every stream ends in
#: an upstream 503. The service runs 4 worker processes, each with its own retry budget (20 % of
#: its requests + its own 1/s floor): together they let 6 retries/s through, twice what one
#: budget for the whole service would allow, so the retry storm pages too, and refuse the rest,
#: as the instrumentation counts them.
HEALTHY_MIN, OUTAGE_MIN = 30, 45
STREAMS_PER_MIN = 600


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH: `make tools` installs it (Debian package 'prometheus') "
            "— these tests never skip"
        )
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[ss.Spec, Path]:
    """The example spec's full output, generated fresh."""
    out = tmp_path_factory.mktemp("generated")
    raw = EXAMPLE_SPEC.read_bytes()
    spec = ss.load_spec(EXAMPLE_SPEC)
    for rel, text in render_all(spec, Source.from_bytes("slo.yaml", raw)).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text, encoding="utf-8")
    return spec, out


# ------------------------------------------------------------------- the outage, by promtool
def _outage_series(spec: ss.Spec) -> list[dict[str, str]]:
    base = {**matcher_labels(spec), c.LABEL_MODEL: "gpt-4.1", c.LABEL_PROVIDER: "openai"}

    def series(metric: str, **extra: str) -> str:
        labels = {**base, **extra}
        return metric + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"

    n = STREAMS_PER_MIN
    healthy_total = n * HEALTHY_MIN
    quiet = f"0+0x{HEALTHY_MIN}"
    workers = 4
    retries = (n // 10) * (2 + workers)  # 6/s: 20 % of 10/s plus 4 workers' 1/s floors
    return [
        {
            "series": series(c.REQUESTS_TOTAL, outcome=c.OUTCOME_OK),
            "values": f"0+{n}x{HEALTHY_MIN} {healthy_total}+0x{OUTAGE_MIN}",
        },
        {
            "series": series(c.REQUESTS_TOTAL, outcome=c.OUTCOME_ERROR),
            "values": f"{quiet} 0+{n}x{OUTAGE_MIN}",
        },
        {
            "series": series(c.ERRORS_TOTAL, error_class=c.ERROR_CLASS_UPSTREAM_5XX),
            "values": f"{quiet} 0+{n}x{OUTAGE_MIN}",
        },
        {
            "series": series(c.RETRY_TOTAL, reason=c.RETRY_REASON_5XX),
            "values": f"{quiet} 0+{retries}x{OUTAGE_MIN}",
        },
        {
            "series": series(c.RETRY_BUDGET_EXHAUSTED_TOTAL),
            "values": f"{quiet} 0+{n - retries}x{OUTAGE_MIN}",
        },
    ]


_BLOCK = re.compile(r"^\s*alertname: (\S+), time: ", re.M)
_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r'\\(["\\abfnrtv]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})')
_SIMPLE = {'"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r"}
_SIMPLE |= {"t": "\t", "v": "\v"}


def _go_unquote(text: str) -> str:
    """The string Go's ``strconv.Quote`` printed as ``text`` (without the quotes)."""

    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        return _SIMPLE[e] if len(e) == 1 else chr(int(e[1:], 16))

    return _ESCAPE.sub(one, text)


def _pairs(text: str) -> dict[str, str]:
    return {k: _go_unquote(v) for k, v in _PAIR.findall(text)}


def _parse_got(report: str) -> list[dict[str, Any]]:
    """The firing alerts promtool printed under ``got:`` for each failed alert_rule_test."""
    alerts = []
    for line in report.splitlines():
        stripped = line.strip()
        if stripped.startswith("Labels:{"):
            alerts.append({"labels": _pairs(stripped[len("Labels:") :]), "annotations": {}})
        elif stripped.startswith("Annotations:{"):
            alerts[-1]["annotations"] = _pairs(stripped[len("Annotations:") :])
    return alerts


def _test_file(
    rules: Path, groups: list[str], series: list[dict[str, str]], checks: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "group_eval_order": groups,
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": checks}],
    }


def _play_outage(spec: ss.Spec, out: Path, work: Path) -> list[dict[str, Any]]:
    """The alerts the generated rules fire at the end of the outage (labels + annotations)."""
    promtool = _promtool()
    rules = out / rules_paths(spec.service)[0]
    data = yaml.safe_load(rules.read_text())
    groups = [g["name"] for g in data["groups"]]
    alertnames = sorted({r["alert"] for g in data["groups"] for r in g["rules"] if "alert" in r})
    at = f"{HEALTHY_MIN + OUTAGE_MIN}m"
    series = _outage_series(spec)

    silent = [{"alertname": a, "eval_time": at, "exp_alerts": []} for a in alertnames]
    probe = work / "outage-probe.test.yaml"
    probe.write_text(yaml.safe_dump(_test_file(rules, groups, series, silent)))
    proc = subprocess.run(
        [promtool, "test", "rules", str(probe)], capture_output=True, text=True, timeout=600
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "FAILED" in report, report
    fired = _parse_got(report)
    assert fired, report
    assert {a["labels"]["alertname"] for a in fired} == set(_BLOCK.findall(report)), report

    # Prove the reading: asserting exactly these alerts (labels and annotations) passes.
    by_name: dict[str, list[dict[str, Any]]] = {a: [] for a in alertnames}
    for alert in fired:
        labels = {k: v for k, v in alert["labels"].items() if k != "alertname"}
        by_name[alert["labels"]["alertname"]].append(
            {"exp_labels": labels, "exp_annotations": alert["annotations"]}
        )
    exact = [{"alertname": a, "eval_time": at, "exp_alerts": by_name[a]} for a in alertnames]
    confirm = work / "outage-confirm.test.yaml"
    confirm.write_text(yaml.safe_dump(_test_file(rules, groups, series, exact), width=10**6))
    proc = subprocess.run(
        [promtool, "test", "rules", str(confirm)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return fired


@pytest.fixture(scope="module")
def outage(
    generated: tuple[ss.Spec, Path], tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    spec, out = generated
    return _play_outage(spec, out, tmp_path_factory.mktemp("outage"))


def _unrelated_warning(spec: ss.Spec, out: Path) -> dict[str, Any]:
    """The broken-chunks alert exactly as the generated rule labels it."""
    data = yaml.safe_load((out / rules_paths(spec.service)[0]).read_text())
    rule = next(
        r
        for g in data["groups"]
        for r in g["rules"]
        if r.get("labels", {}).get(names.LABEL_FAILURE_CLASS) == c.FC_BROKEN_CHUNKS
    )
    assert rule["labels"][names.LABEL_SEVERITY] == "warning"
    return {"labels": {"alertname": rule["alert"], **rule["labels"]}, "annotations": {}}


# --------------------------------------------------------------------------- the expectation
def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _should_be_inhibited(alert: dict[str, str], firing: list[dict[str, str]]) -> bool:
    """What one page per incident means, stated from the registry and the tiers: a failure
    class is silenced while a class that explains it fires; a burn alert while the outage
    alert of its SLO fires, or a burn alert of the same SLO with a higher severity, or the same
    severity and a shorter window. Nothing silences the outage alert."""
    fc = alert[names.LABEL_FAILURE_CLASS]
    if fc != names.BURN_FAILURE_CLASS:
        causes = set(explained_by(fc))
        return any(other[names.LABEL_FAILURE_CLASS] in causes for other in firing)
    if alert["alertname"] == names.ALERT_SLO_OUTAGE:
        return False

    for other in firing:
        if other is alert or other[names.LABEL_FAILURE_CLASS] != names.BURN_FAILURE_CLASS:
            continue
        if other[names.LABEL_SLO] != alert[names.LABEL_SLO]:
            continue
        if other["alertname"] == names.ALERT_SLO_OUTAGE:
            return True
        mine, theirs = _RANK[alert["severity"]], _RANK[other["severity"]]
        if theirs > mine or (
            theirs == mine
            and parse_duration(other[names.LABEL_LONG]) < parse_duration(alert[names.LABEL_LONG])
        ):
            return True
    return False


# --------------------------------------------------------------------------- the real thing
@pytest.fixture(scope="module")
def alertmanager(generated: tuple[ss.Spec, Path]) -> Iterator[AlertmanagerServer]:
    find_alertmanager()  # AlertmanagerNotFound names `make tools`: a failure, never a skip
    spec, out = generated
    with AlertmanagerServer(out / rules_paths(spec.service)[1], startup_timeout=120) as am:
        yield am


def _settled(
    am: AlertmanagerServer, expected: dict[tuple[tuple[str, str], ...], bool]
) -> list[dict[str, Any]] | None:
    got = {_key(a["labels"]): a for a in am.alerts()}
    if set(got) != set(expected):
        return None
    for key, inhibited in expected.items():
        status = got[key]["status"]
        if status["state"] == "unprocessed":
            return None
        if bool(status["inhibitedBy"]) != inhibited:
            return None
    return list(got.values())


def test_a_503_outage_leaves_exactly_one_critical_page(
    generated: tuple[ss.Spec, Path],
    outage: list[dict[str, Any]],
    alertmanager: AlertmanagerServer,
) -> None:
    """The outage fires several pages and warnings; in the real Alertmanager running the
    generated config, every symptom is inhibited by its cause, the longer-window page by the
    shorter, and exactly one critical page is left — while an unrelated broken-chunks warning
    firing at the same time is not inhibited."""
    spec, out = generated
    fired = [a["labels"] for a in outage]
    pages = [a for a in fired if _RANK[a["severity"]] >= PAGE]
    # The scenario is a real test of inhibition only if it fires more than one page, and both a
    # cause and a symptom class.
    assert len(pages) >= 2, fired
    classes = {a[names.LABEL_FAILURE_CLASS] for a in fired}
    assert c.FC_UPSTREAM_ERRORS in classes, fired
    registry = classes - {names.BURN_FAILURE_CLASS}
    assert any(set(explained_by(fc)) & registry for fc in registry), fired

    unrelated = _unrelated_warning(spec, out)
    posted = [*outage, unrelated]
    all_labels = [a["labels"] for a in posted]
    expected = {_key(a): _should_be_inhibited(a, all_labels) for a in all_labels}
    assert not expected[_key(unrelated["labels"])]

    now = datetime.now(UTC).isoformat()
    alertmanager.post_alerts(
        {"labels": a["labels"], "annotations": a["annotations"], "startsAt": now} for a in posted
    )
    alertmanager.wait_until(
        lambda: _settled(alertmanager, expected),
        timeout=120,
        what="every posted alert processed with the expected inhibition",
    )
    got = {_key(a["labels"]): a for a in alertmanager.alerts()}
    assert set(got) == set(expected)
    by_fp = {a["fingerprint"]: a["labels"] for a in got.values()}

    left = [a["labels"] for a in got.values() if not a["status"]["inhibitedBy"]]
    left_pages = [labels for labels in left if _RANK[labels["severity"]] >= PAGE]
    assert len(left_pages) == 1, left_pages
    page = left_pages[0]
    # The page left is the SLO's outage fast path: every stream fails, so it fired first,
    # and the burn pages that followed are the same incident.
    assert page["alertname"] == names.ALERT_SLO_OUTAGE, page
    assert page[names.LABEL_SLO] == "stream-errors", page
    assert any(p["alertname"] == names.ALERT_SLO_BURN for p in pages), pages

    # The unrelated warning is active, and so are the cause's own alerts (they say why).
    assert got[_key(unrelated["labels"])]["status"]["state"] == "active"
    for labels in fired:
        if labels[names.LABEL_FAILURE_CLASS] == c.FC_UPSTREAM_ERRORS:
            assert got[_key(labels)]["status"]["state"] == "active", labels

    # Each inhibited alert names a source that explains it.
    for alert in got.values():
        labels = alert["labels"]
        sources = [by_fp[fp] for fp in alert["status"]["inhibitedBy"]]
        if not sources:
            continue
        assert alert["status"]["state"] == "suppressed", alert
        fc = labels[names.LABEL_FAILURE_CLASS]
        for source in sources:
            if fc == names.BURN_FAILURE_CLASS:
                assert source[names.LABEL_SLO] == labels[names.LABEL_SLO], (labels, source)
            else:
                assert source[names.LABEL_FAILURE_CLASS] in explained_by(fc), (labels, source)


def test_the_outage_reading_covers_both_kinds_of_inhibition(
    outage: list[dict[str, Any]],
) -> None:
    """The alert set promtool reports for the outage holds a burn page that a shorter-window
    page of the same SLO silences, and a retry-storm alert that the upstream errors explain:
    the two kinds of rule the Alertmanager test exercises."""
    fired = [a["labels"] for a in outage]
    assert any(
        a[names.LABEL_FAILURE_CLASS] == names.BURN_FAILURE_CLASS and _should_be_inhibited(a, fired)
        for a in fired
    ), fired
    assert any(
        a[names.LABEL_FAILURE_CLASS] == c.FC_RETRY_STORM and _should_be_inhibited(a, fired)
        for a in fired
    ), fired


def test_without_the_cause_rules_the_outage_pages_twice(
    generated: tuple[ss.Spec, Path], outage: list[dict[str, Any]]
) -> None:
    """The failure-class inhibit rules are what leaves one page: the same alerts in an
    Alertmanager running only the SLO rules (burn tiers and outage) leave the retry storm
    paging beside the SLO's page."""
    spec, out = generated
    config = yaml.safe_load((out / rules_paths(spec.service)[1]).read_text())
    slo_sources = {f'alertname="{names.ALERT_SLO_BURN}"', f'alertname="{names.ALERT_SLO_OUTAGE}"'}
    config["inhibit_rules"] = [
        r for r in config["inhibit_rules"] if slo_sources & set(r["source_matchers"])
    ]
    fired = [a["labels"] for a in outage]
    longer = [
        a
        for a in fired
        if a[names.LABEL_FAILURE_CLASS] == names.BURN_FAILURE_CLASS
        and _should_be_inhibited(a, fired)
    ]
    assert longer, fired
    now = datetime.now(UTC).isoformat()
    with AlertmanagerServer(config, startup_timeout=120) as am:
        am.post_alerts(
            {"labels": a["labels"], "annotations": a["annotations"], "startsAt": now}
            for a in outage
        )

        def processed() -> list[dict[str, Any]] | None:
            got = am.alerts()
            states = {_key(a["labels"]): a["status"] for a in got}
            if len(got) != len(outage) or any(s["state"] == "unprocessed" for s in states.values()):
                return None
            # The burn rules still work, so the inhibitor has seen every source.
            if not all(states[_key(a)]["inhibitedBy"] for a in longer):
                return None
            return got

        got = am.wait_until(processed, timeout=120, what="the outage's alerts processed")
    left_pages = [
        a["labels"]
        for a in got
        if not a["status"]["inhibitedBy"] and _RANK[a["labels"]["severity"]] >= PAGE
    ]
    assert len(left_pages) >= 2, left_pages
    assert any(p[names.LABEL_FAILURE_CLASS] == c.FC_RETRY_STORM for p in left_pages), left_pages
