"""The alerting benchmark's harness, run for real so it cannot silently rot.

``benchmarks/bench_alerting.py`` reads "when did the first page fire" out of promtool; here it
runs on two of its shapes (a hard outage and one failure on a quiet night), with a 4-hour
history instead of 3 days so the test stays short, for both rule sets (steadystream's generated
rules and Sloth's templated ones), with the real promtool. The minute it finds is then checked
by promtool's own pass/fail: an alert firing at that minute, none at any minute before.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_alerting as bench  # noqa: E402

HISTORY_MIN = 4 * 60


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("bench-alerting")
    rule_sets, base = bench.build_rule_sets(work)
    shapes = {s.key: s for s in bench.shapes(HISTORY_MIN)}
    chosen = [shapes["hard-outage"], shapes["night-failure"]]
    outcomes = bench.run_all(chosen, rule_sets, base, work, jobs=2)
    return {"work": work, "rules": rule_sets, "base": base, "shapes": shapes, "out": outcomes}


def test_rule_sets_are_the_generated_and_the_templated_sloth_rules(setup: dict[str, Any]) -> None:
    ours, sloth = setup["rules"]
    assert ours.name == "steadystream" and sloth.name == "Sloth"
    ours_doc, sloth_doc = yaml.safe_load(ours.text), yaml.safe_load(sloth.text)
    ours_exprs = [r["expr"] for g in ours_doc["groups"] for r in g["rules"]]
    assert any('slo="stream-errors"' in e for e in ours_exprs)
    assert any("vector(0.995)" in e for e in ours_exprs)
    sloth_rules = [r for g in sloth_doc["groups"] for r in g["rules"]]
    sloth_text = sloth.text
    assert "http_request_duration_seconds_count" not in sloth_text
    assert 'stream_errors_total{job="chat-gateway",service="chat-gateway"}[5m]' in sloth_text
    assert "vector(0.995)" in sloth_text and "* 0.005)" in sloth_text
    severities = sorted(r["labels"]["severity"] for r in sloth_rules if "alert" in r)
    assert severities == ["critical", "warning"]


@pytest.mark.parametrize("rules", ["steadystream", "Sloth"])
def test_hard_outage_page_is_found_and_confirmed_by_promtool(
    setup: dict[str, Any], promtool: str, rules: str
) -> None:
    shape = setup["shapes"]["hard-outage"]
    outcome = setup["out"][(shape.key, rules)]
    assert outcome.history == [], f"{rules} alerted in the healthy history: {outcome.history}"
    page = outcome.first(bench.PAGE)
    assert page is not None, f"{rules}: no page found for a hard outage: {outcome}"
    # Both rule sets page a total outage within half an hour; a whole minute, after the start.
    assert 1 <= page.first_min <= 30 and page.first_min == int(page.first_min), page
    assert page.severity == "critical" and page.alertname
    assert outcome.minutes_firing.get(bench.PAGE, 0) >= 1
    # promtool itself agrees: a page firing at that minute, none at any minute before it.
    ruleset = next(r for r in setup["rules"] if r.name == rules)
    proc = bench.confirm_first(
        shape, ruleset, setup["base"], bench.PAGE, int(page.first_min), setup["work"]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # ... and it would say so if the harness were a minute early.
    early = bench.confirm_first(
        shape, ruleset, setup["base"], bench.PAGE, int(page.first_min) - 1, setup["work"]
    )
    assert early.returncode != 0 and "FAILED" in early.stdout + early.stderr


def test_quiet_night_single_failure_does_not_page_steadystream(setup: dict[str, Any]) -> None:
    shape = setup["shapes"]["night-failure"]
    outcome = setup["out"][(shape.key, "steadystream")]
    assert outcome.history == [], outcome.history
    assert outcome.first(bench.PAGE) is None, outcome.incident
    assert bench.PAGE not in outcome.minutes_firing


def test_got_lines_parse_labels_and_values() -> None:
    out = (
        '    expr: "x", time: 1h,\n        exp: nil\n'
        '        got: {alertname="A", severity="critical"} 7E+00, '
        '{alertname="B", failure_class="no-traffic", severity="warning"} -1.5E+01\n'
    )
    assert bench.parse_got(out) == [
        ({"alertname": "A", "severity": "critical"}, 7.0),
        ({"alertname": "B", "failure_class": "no-traffic", "severity": "warning"}, -15.0),
    ]


def test_series_count_whole_streams_and_start_together() -> None:
    shape = bench.shapes(60)[0]  # hard outage after 1 hour at 5 streams/s
    series = {s["series"]: s["values"] for s in bench.input_series(shape, {"job": "j"})}
    ok = _expand(next(v for k, v in series.items() if 'outcome="ok"' in k))
    assert ok[60] == 17982 and ok[-1] == 17982  # 0.1 % fail: 299.7 ok a minute, then none
    lengths = {len(_expand(v)) for v in series.values()}
    assert lengths == {shape.history_min + shape.incident_min + 1}
    errors = _expand(next(v for k, v in series.items() if 'error_class="upstream_5xx"' in k))
    assert errors[60] == pytest.approx(18, abs=1) and errors[-1] - errors[60] == 60 * 300


def _expand(values: str) -> list[float]:
    out: list[float] = []
    for tok in values.split():
        if "x" in tok:
            head, n = tok.split("x")
            sign = "+" if "+" in head[1:] else "-"
            a, b = head.rsplit(sign, 1)
            step = float(b) if sign == "+" else -float(b)
            out += [float(a) + step * i for i in range(int(n) + 1)]
        else:
            out.append(float(tok))
    return out
