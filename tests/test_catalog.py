"""The failure-class registry is the one list of classes: the spec accepts exactly its ids, and a
class registered with a record and a template appears in the rules (passing promtool), the
dashboards, the runbooks and triage with no other edit."""

from __future__ import annotations

import shutil
import subprocess
import typing
from pathlib import Path

import pytest
import yaml

import steadystream as ss
from steadystream import conventions as c
from steadystream.catalog.classes import FailureClass, failure_classes, registered
from steadystream.catalog.faults import FAULT_PROFILES
from steadystream.catalog.panels import STREAM_INTERNALS_KEYS, panel_index
from steadystream.catalog.signal import Queries, SignalDef
from steadystream.generate import Source, render_all
from steadystream.simulate import PROFILE_FOR_FAILURE_CLASS, PROFILES
from steadystream.spec import Alerting, json_schema
from steadystream.triage import Finding, TriageReport, checks_for

SOURCE = Source("slo.yaml", "0" * 64)


def _queue_signals(q: Queries) -> list[SignalDef]:
    return [
        SignalDef(
            "queue-rejections",
            "StreamQueueSaturated",
            q.rate(c.REJECTED_TOTAL, reason="concurrency"),
            ">",
            0.5,
            "per_second",
            "streams rejected per second because every slot was taken",
            "The admission queue is saturated",
            "warning",
            120,
            scenario=("rate", c.REJECTED_TOTAL, {c.LABEL_REASON: "concurrency"}),
            panel="rejections",
        )
    ]


def _queue_class(template_dir: Path) -> FailureClass:
    (template_dir / "fc-queue-saturation.md.j2").write_text(
        "<!-- {{ header }} -->\n# {{ fc.title }}\n\n"
        "{% for a in fc_alerts %}- `{{ a.alert }}` {{ a.when }}: {{ a.description }}\n"
        "{% endfor %}\nPanels:{% for p in fc.panels %} [{{ p.title }}]({{ p.url }}){% endfor %}\n",
        encoding="utf-8",
    )
    return FailureClass(
        "queue-saturation",
        "Queue saturation",
        "concurrency rejections rising while in-flight sits at the cap",
        _queue_signals,
        ("rejections", "in-flight"),
        explained_by=(c.FC_TIMEOUT_CASCADE,),
        template_dir=template_dir,
    )


def test_the_spec_accepts_exactly_the_registered_classes() -> None:
    """``alerting.failure_classes`` keys, in the model and in the JSON Schema, are the
    registry's ids, in registry order."""
    ids = tuple(fc.id for fc in failure_classes())
    assert ids == c.FAILURE_CLASSES
    key_type = typing.get_args(Alerting.model_fields["failure_classes"].annotation)[0]
    assert typing.get_args(key_type) == ids
    schema = json_schema()
    alerting = schema["$defs"]["Alerting"]["properties"]["failure_classes"]
    assert tuple(alerting["propertyNames"]["enum"]) == ids


def test_every_record_is_complete() -> None:
    """Each built-in class has a title, signals with a panel it names, and panels and profiles
    that exist; its main profile is the one the simulator offers for it."""
    spec = ss.default_spec("svc")
    q = Queries(spec)
    for fc in failure_classes():
        assert fc.title and fc.signs and fc.panels
        assert set(fc.panels) <= STREAM_INTERNALS_KEYS
        defs = fc.signals(q)
        assert defs, fc.id
        assert {d.panel for d in defs} <= STREAM_INTERNALS_KEYS
        assert set(fc.profiles) <= set(PROFILES) == set(FAULT_PROFILES)
        assert PROFILE_FOR_FAILURE_CLASS.get(fc.id) == (fc.profiles[0] if fc.profiles else None)
        template = Path(ss.__file__).parent / "runbooks" / "templates" / fc.template
        assert template.is_file(), template


def test_a_record_naming_what_does_not_exist_is_refused() -> None:
    """Unknown panels, profiles or explaining classes, and a second class with a taken id,
    fail when the record is made or registered, never in the middle of a render."""
    args = ("x", "X", "signs", _queue_signals)
    with pytest.raises(ValueError, match="unknown panels"):
        FailureClass(*args, ("no-such-panel",))
    with pytest.raises(ValueError, match="unknown fault profiles"):
        FailureClass(*args, ("rejections",), profiles=("no-such-profile",))
    with pytest.raises(ValueError, match="at least one panel"):
        FailureClass(*args, ())
    with (
        pytest.raises(ValueError, match="explained by unknown"),
        registered(FailureClass(*args, ("rejections",), explained_by=("nope",))),
    ):
        pass
    with (
        pytest.raises(ValueError, match="already registered"),
        registered(FailureClass(c.FC_RETRY_STORM, "X", "s", _queue_signals, ("rejections",))),
    ):
        pass
    assert [fc.id for fc in failure_classes()] == list(c.FAILURE_CLASSES)


def test_a_registered_class_appears_everywhere(tmp_path: Path) -> None:
    """A new class (record + template, nothing else) gets an alert that passes promtool's
    check and the generated unit test, runbook links on the panels it names, its own runbook
    listed in the index, and a triage check ranked after the class that explains it."""
    promtool = shutil.which("promtool")
    assert promtool is not None, "install the Debian 'prometheus' package (`make tools` does)"
    spec = ss.default_spec("chat-gateway")
    templates = tmp_path / "templates"
    templates.mkdir()
    with registered(_queue_class(templates)):
        files = render_all(spec, SOURCE)
        every = checks_for(spec)
        checks = [ch for ch in every if ch.group == "queue-saturation"]
        cascade = next(ch for ch in every if ch.group == c.FC_TIMEOUT_CASCADE)
        # The queue class scores far higher, but the cascade explains it: the cascade first.
        report = TriageReport(
            "http://p",
            "chat-gateway",
            0.0,
            True,
            (Finding(checks[0], "active", value=50.0), Finding(cascade, "active", value=0.9)),
        )
        ranked = [(r.name, r.explained_by) for r in report.ranked_classes]
    assert "queue-saturation" not in [fc.id for fc in failure_classes()]

    rules = yaml.safe_load(files["alerts/chat-gateway.rules.yaml"])
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    mine = [a for a in alerts if a["alert"] == "StreamQueueSaturated"]
    assert len(mine) == 1
    assert mine[0]["labels"]["failure_class"] == "queue-saturation"
    assert mine[0]["annotations"]["runbook_url"] == "runbooks/queue-saturation.md"
    out = tmp_path / "out"
    for path, text in files.items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(text, encoding="utf-8")
    tests = yaml.safe_load((out / "rule-tests/chat-gateway.rules.test.yaml").read_text())
    assert "StreamQueueSaturated" in yaml.safe_dump(tests)
    for sub, args in (
        ("alerts", ("check", "rules", "chat-gateway.rules.yaml")),
        ("rule-tests", ("test", "rules", "chat-gateway.rules.test.yaml")),
    ):
        proc = subprocess.run(
            [promtool, *args],
            cwd=out / sub,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    board = yaml.safe_load(files["dashboards/chat-gateway-stream-internals.json"])
    panels = {p["title"]: p for p in board["panels"]}
    for key in ("rejections", "in-flight"):
        title = panel_index(spec)[key].title
        urls = [link["url"] for link in panels[title].get("links", [])]
        assert "runbooks/queue-saturation.md" in urls, key

    runbook = files["runbooks/queue-saturation.md"]
    assert runbook.startswith("<!-- generated by steadystream from slo.yaml")
    assert "# Queue saturation" in runbook
    assert "`StreamQueueSaturated` > 0.5/s" in runbook
    assert panel_index(spec)["rejections"].url in runbook
    assert "queue-saturation.md" in files["runbooks/README.md"]

    assert [ch.name for ch in checks] == ["queue-rejections"]
    assert checks[0].runbook == "runbooks/queue-saturation.md"
    assert ranked == [
        (c.FC_TIMEOUT_CASCADE, ()),
        ("queue-saturation", (c.FC_TIMEOUT_CASCADE,)),
    ]
