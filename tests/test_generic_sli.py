"""Generic PromQL SLIs: validation at load, the JSON Schema, and the generated rules played by
the real promtool over a known metric (the generated promtool tests leave generic SLOs out)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from steadystream.alerts import names, rule_groups, tier_factor
from steadystream.catalog.alerting import burn_event_floor
from steadystream.catalog.slo import generic_events
from steadystream.spec import SpecError, json_schema, parse_spec

BASE = """version: 1
service: web
alerting:
  outage: {enabled: false}
  tiers: [{severity: critical, long: 1h, short: 5m, budget: 2%}]
slos:
  - name: availability
    objective: 99%
    indicator:
"""

RATE = BASE + (
    "      errors_query: 'sum(rate(http_requests_total{code=~\"5..\"}[{{.window}}]))'\n"
    "      total_query: 'sum(rate(http_requests_total[{{.window}}]))'\n"
)
COUNT = BASE + (
    "      errors_query: 'sum(increase(http_requests_total{code=~\"5..\"}[{{ .window }}]))'\n"
    "      total_query: 'sum(increase(http_requests_total[{{ .window }}]))'\n"
    "      values: count\n"
)
GOOD = BASE + (
    "      good_query: 'sum(rate(http_requests_total{code!~\"5..\"}[{{.window}}]))'\n"
    "      total_query: 'sum(rate(http_requests_total[{{.window}}]))'\n"
)


def one_problem(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "s.yaml")
    assert len(info.value.problems) == 1, str(info.value)
    return str(info.value.problems[0])


@pytest.mark.parametrize(
    ("indicator", "expected"),
    [
        (
            "      errors_query: 'sum(rate(x[5m]))'\n"
            "      total_query: 'sum(rate(y[{{.window}}]))'\n",
            "s.yaml:10:21: slos[0].indicator.errors_query: the query has no {{.window}} "
            "placeholder",
        ),
        (
            "      errors_query: 'sum(rate(x[{{.window}}])'\n"
            "      total_query: 'sum(rate(y[{{.window}}]))'\n",
            "s.yaml:10:21: slos[0].indicator.errors_query: '(' at character 4 of the query is "
            "never closed",
        ),
        (
            "      errors_query: |\n        sum(rate(x[{{.window}}])) # bad\n        or vector(0)\n"
            "      total_query: 'sum(rate(y[{{.window}}]))'\n",
            "s.yaml:10:21: slos[0].indicator.errors_query: a '#' comment at character 27",
        ),
        (
            "      errors_query: 'sum(rate(x{a=`b`}[{{.window}}]))'\n"
            "      total_query: 'sum(rate(y[{{.window}}]))'\n",
            "s.yaml:10:21: slos[0].indicator.errors_query: the query contains a backquote",
        ),
        (
            "      errors_query: 'sum(rate(x{a=\"{{$labels}}\"}[{{.window}}]))'\n"
            "      total_query: 'sum(rate(y[{{.window}}]))'\n",
            "s.yaml:10:21: slos[0].indicator.errors_query: the only Go template a query may "
            "hold is the {{.window}} placeholder",
        ),
        (
            "      errors_query: 'sum(rate(x[{{.window}}]))'\n",
            "s.yaml:10:7: slos[0].indicator.total_query: a generic indicator needs total_query",
        ),
        (
            "      errors_query: 'sum(rate(x[{{.window}}]))'\n"
            "      good_query: 'sum(rate(z[{{.window}}]))'\n"
            "      total_query: 'sum(rate(y[{{.window}}]))'\n",
            "s.yaml:10:21: slos[0].indicator.errors_query: give exactly one of errors_query",
        ),
        (
            "      errors: {}\n      values: count\n",
            "s.yaml:11:15: slos[0].indicator.values: values applies to generic PromQL "
            "indicators only",
        ),
        (
            "      errors: {}\n      total_query: 'sum(rate(y[{{.window}}]))'\n",
            "s.yaml:10:7: slos[0].indicator: give exactly one of 'latency', 'errors', or a "
            "generic PromQL pair",
        ),
    ],
    ids=[
        "no-placeholder",
        "unclosed",
        "comment",
        "backquote",
        "template",
        "no-total",
        "errors-and-good",
        "values-on-stream",
        "two-kinds",
    ],
)
def test_bad_generic_indicator_is_a_located_error(indicator: str, expected: str) -> None:
    """Each bad generic indicator is one error at its file, line and field."""
    assert one_problem(BASE + indicator).startswith(expected)


def test_brackets_inside_strings_do_not_count() -> None:
    """A ')', '[' or '#' inside a PromQL string literal is not a bracket or a comment."""
    spec = parse_spec(
        BASE + "      errors_query: 'sum(rate(x{path=~\"/a(b|[c#\"}[{{.window}}]))'\n"
        "      total_query: 'sum(rate(x[{{.window}}]))'\n"
    )
    assert spec.slos[0].kind == "query"


def test_json_schema_has_the_generic_fields_and_accepts_a_generic_spec() -> None:
    """The JSON Schema documents the generic fields and the SLO's alerts, and validates a
    spec using them."""
    schema = json_schema()
    props = schema["$defs"]["Indicator"]["properties"]
    assert {"errors_query", "good_query", "total_query", "values"} <= set(props)
    assert "alerts" in schema["$defs"]["SLO"]["properties"]
    data = yaml.safe_load(GOOD)
    data["slos"][0]["alerts"] = {"name": "WebBurn", "page": {"labels": {"team": "web"}}}
    jsonschema.Draft202012Validator(schema).validate(data)
    data["slos"][0]["indicator"]["total_query"] = "sum(rate(x[5m]))"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(data)


def test_rate_queries_count_events_by_window_seconds() -> None:
    """values: rate (the default) multiplies by the window's seconds; count takes the value."""
    rate = parse_spec(RATE).slos[0].indicator
    bad, total = generic_events(rate, "1h", per_second=False)
    assert total == "sum(sum(rate(http_requests_total[1h]))) * 3600"
    assert bad.startswith('(sum(sum(rate(http_requests_total{code=~"5.."}[1h]))) * 3600 or 0 *')
    count = parse_spec(COUNT).slos[0].indicator
    assert generic_events(count, "1h", per_second=False)[1] == (
        "sum(sum(increase(http_requests_total[1h])))"
    )
    assert generic_events(count, "1h", per_second=True)[1] == (
        "sum(sum(increase(http_requests_total[1h]))) / 3600"
    )


def _promtool_case(spec_text: str, tmp_path: Path, promtool: str) -> None:
    """Play the generated SLI and burn rules of ``spec_text`` over http_requests_total:
    2 requests a minute, all failing, fires the 1h/5m page (120 events an hour, over the
    tier's low-traffic floor); one every 4 minutes, all failing, never does (15 events an
    hour, under it)."""
    spec = parse_spec(spec_text)
    tier = spec.alerting.tiers[0]
    floor = burn_event_floor(spec, spec.slos[0], tier_factor(tier, spec.period))
    assert 15 < floor < 120  # the two traffic levels sit on either side of the guard
    groups = [g for g in rule_groups(spec) if "failure-class" not in g["name"]]
    alerts: list[dict[str, Any]] = []
    for g in groups:
        for r in g["rules"]:
            if "alert" in r:
                r["annotations"] = {}  # this test reads the expressions, not the text
                alerts.append(r)
    assert len(alerts) == 1
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    labels = alerts[0]["labels"]

    def series(per_minute: float) -> list[dict[str, str]]:
        return [
            {
                "series": 'http_requests_total{code="500"}',
                "values": f"0+{per_minute}x150",
            }
        ]

    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "group_eval_order": [g["name"] for g in groups],
        "tests": [
            {
                "interval": "1m",
                "input_series": series(2),
                "alert_rule_test": [
                    {
                        "alertname": alerts[0]["alert"],
                        "eval_time": "30m",
                        "exp_alerts": [{"exp_labels": labels}],
                    }
                ],
            },
            {
                "interval": "1m",
                "input_series": series(0.25),
                "alert_rule_test": [
                    {"alertname": alerts[0]["alert"], "eval_time": f"{m}m", "exp_alerts": []}
                    for m in (10, 30, 60, 90, 120)
                ],
            },
        ],
    }
    (tmp_path / "rules.test.yaml").write_text(yaml.safe_dump(tests))
    run = subprocess.run(
        [promtool, "test", "rules", "rules.test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("spec_text", [RATE, COUNT, GOOD], ids=["rate", "count", "good"])
def test_generated_rules_of_a_generic_slo_fire_above_the_guard_only(
    spec_text: str, tmp_path: Path, promtool: str
) -> None:
    """The generated rules of a generic SLO, read by the real promtool: the burn alert fires
    on a busy failing service and the low-traffic guard holds it on a quiet one, for rate
    queries (values: rate), increase queries (values: count) and a good_query."""
    _promtool_case(spec_text, tmp_path, promtool)


def test_generated_tests_leave_generic_slos_out() -> None:
    """The promtool test generator plays no scenario for a generic SLO (it cannot invent its
    input series) and says so in the test file's header."""
    from steadystream.alerts import render_rules
    from steadystream.generate import source_for

    spec = parse_spec(RATE)
    files = render_rules(spec, source_for("spec.yaml", ".", spec))
    tests_file = next(t for p, t in files.items() if p.startswith("rule-tests/"))
    assert tests_file.splitlines()[1] == (
        "# Not tested here: the burn and outage alerts of availability (generic PromQL SLIs: "
        "no input series can be invented for them)"
    )
    from steadystream.alerts import names

    played = {
        a["alertname"] for t in yaml.safe_load(tests_file)["tests"] for a in t["alert_rule_test"]
    }
    assert played and names.ALERT_SLO_BURN not in played and names.ALERT_SLO_OUTAGE not in played


def test_slo_alert_overrides_reach_the_alerts_and_their_generated_tests(
    tmp_path: Path, promtool: str
) -> None:
    """An SLO's own alert name, labels (a page 'severity' included), annotations and a
    disabled ticket tier reach its generated alerts, and the generated promtool tests (which
    play this stream SLO) pass against them."""
    from steadystream.generate import render_all, source_for

    spec = parse_spec(
        """version: 1
service: chat
slos:
  - name: stream-errors
    objective: 99%
    indicator: {errors: {}}
    alerts:
      name: ChatErrorBudget
      labels: {team: llm}
      annotations: {summary: Chat streams fail too often, playbook: https://example.com/p}
      page: {labels: {severity: pageteam}}
      ticket: {enabled: false}
"""
    )
    files = render_all(spec, source_for(tmp_path / "s.yaml", tmp_path, spec))
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    rules = yaml.safe_load(files["alerts/chat.rules.yaml"])
    burn = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "ChatErrorBudget"]
    assert {(r["labels"]["long"], r["labels"]["short"]) for r in burn} == {
        ("1h", "5m"),
        ("6h", "30m"),
    }
    for r in burn:
        assert r["labels"]["severity"] == "pageteam" and r["labels"]["team"] == "llm"
        assert r["annotations"]["summary"] == "Chat streams fail too often"
        assert r["annotations"]["playbook"] == "https://example.com/p"
    run = subprocess.run(
        [promtool, "test", "rules", "chat.rules.test.yaml"],
        cwd=tmp_path / "rule-tests",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    assert "ChatErrorBudget" in files["rule-tests/chat.rules.test.yaml"]


@pytest.mark.parametrize(
    ("alerts", "expected"),
    [
        ("{labels: {slo: x}}", "slos[0].alerts.labels.slo: label 'slo' is set by steadystream"),
        ("{annotations: {description: x}}", "annotation 'description' is written by steadystream"),
        ("{labels: {team: '{{ $value }}'}}", "which generated alert templates cannot hold"),
        ("{name: 'bad name'}", "slos[0].alerts.name: invalid Prometheus alert name 'bad name'"),
        ("{page: {labels: {'1x': y}}}", "invalid Prometheus label name '1x'"),
    ],
)
def test_bad_slo_alerts_are_located_errors(alerts: str, expected: str) -> None:
    """Reserved labels, steadystream's own annotations, templates and bad names are refused."""
    text = (
        "version: 1\nservice: chat\nslos:\n  - name: e\n    objective: 99%\n"
        f"    indicator: {{errors: {{}}}}\n    alerts: {alerts}\n"
    )
    assert expected in one_problem(text)


def test_generic_slo_gets_slo_panels_and_a_runbook_that_claims_no_failure_class(
    tmp_path: Path,
) -> None:
    """A generic SLO gets the SLO overview's panels (its SLI, budget and burn) and a runbook
    pointing at its own queries, with no stream failure class named as its likely cause."""
    from steadystream.generate import render_all, source_for

    spec = parse_spec(RATE)
    files = render_all(spec, source_for(tmp_path / "s.yaml", tmp_path, spec))
    board = files["dashboards/web-slo-overview.json"]
    titles = [p.get("title", "") for p in yaml.safe_load(board)["panels"]]
    assert any(t.startswith("availability: SLI") for t in titles), titles
    assert any(t.startswith("availability: burn rate") for t in titles), titles
    runbook = files["runbooks/slo-availability.md"]
    assert 'sum(sum(rate(http_requests_total{code=~"5.."}[5m])))' in runbook
    assert "no failure class is implied" in runbook
    assert "failure classes most likely behind this SLO" not in runbook


def test_demo_refuses_a_spec_with_generic_slos(tmp_path: Path) -> None:
    """The demo feeds stream metrics only: a generic SLO is refused in one line, exit 2."""
    import sys

    spec = tmp_path / "s.yaml"
    spec.write_text(RATE)
    result = subprocess.run(
        [sys.executable, "-m", "steadystream", "demo", "--spec", str(spec)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"steadystream demo: {spec}: SLO availability reads its own PromQL queries, which the "
        "demo's simulated streams do not feed; give the demo a spec of stream SLOs"
    ]


def test_real_prometheus_records_generic_events_as_counts(tmp_path: Path) -> None:
    """A running Prometheus evaluates the generated SLI rules of a generic SLO (rate queries)
    against a scraped counter: every rule is healthy, and the recorded 5 m events are
    `increase` of the counter over 5 m at the rule's own evaluation time (rate x 300 s is a
    count), with every event bad."""
    import time

    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily

    from steadystream.exporters import start_metrics_server
    from steadystream.testing import PrometheusServer, ScrapeTarget

    started = time.monotonic()

    class Requests:
        """http_requests_total{code="500"} growing 10 a second: every request fails."""

        def collect(self) -> list[CounterMetricFamily]:
            family = CounterMetricFamily("http_requests", "Requests.", labels=["code"])
            family.add_metric(["500"], 10.0 * (time.monotonic() - started))
            return [family]

    registry = CollectorRegistry()
    registry.register(Requests())  # type: ignore[arg-type]
    spec = parse_spec(RATE)
    groups = [g for g in rule_groups(spec) if g["name"].startswith("steadystream.web.slo.")]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    with (
        start_metrics_server(0, "127.0.0.1", registry=registry) as exporter,
        PrometheusServer(
            rule_files=[tmp_path / "rules.yaml"],
            targets=[ScrapeTarget(f"127.0.0.1:{exporter.port}", job="web")],
        ) as prom,
    ):
        prom.wait_for_targets_up()
        recorded = f'{names.SLO_TOTAL_5M}{{slo="availability"}}'
        # The SLI group runs every minute: wait for an evaluation that saw two scrapes.
        result = prom.wait_for_query(
            recorded,
            predicate=lambda r: bool(r) and float(r[0]["value"][1]) > 0,
            timeout=240,
        )
        assert result
        # The instant query answers at "now"; the rule's own evaluation time is the sample's.
        at = float(prom.query(f"timestamp({recorded})")[0]["value"][1])
        value = float(prom.query(recorded, at=at)[0]["value"][1])
        direct = prom.query("sum(increase(http_requests_total[5m]))", at=at)
        # Equal but for a scrape that started before `at` and landed after the rule ran (one
        # sample of 10 events a second among hundreds); a rate read as a count would be 300x
        # smaller.
        assert value == pytest.approx(float(direct[0]["value"][1]), rel=0.1)
        ratio = prom.query(f'{names.slo_error_ratio(300)}{{slo="availability"}}', at=at)
        assert float(ratio[0]["value"][1]) == 1.0
        unhealthy = [r for r in prom.rules() if r.get("health") != "ok"]
        assert unhealthy == []
