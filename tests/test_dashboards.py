"""Dashboards: golden files, real promtool on every query, the linter rules, Grafana's model.

Golden files live in tests/golden/dashboards/. After an intended change to the renderer,
regenerate them with ``UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_dashboards.py`` and review
the diff before committing it.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import steadystream as ss
from steadystream import conventions as c
from steadystream.alerts import names, rule_groups
from steadystream.dashboards import (
    dashboard_path,
    dashboard_url,
    lint_dashboard,
    lint_for_spec,
    panel_index,
    render_dashboards,
)
from steadystream.dashboards.lint import panel_targets
from steadystream.generate import Source

GOLDEN = Path(__file__).parent / "golden" / "dashboards"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
SOURCE = Source(name="examples/chat-gateway/slo.yaml", sha256="0" * 64)
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def _custom_spec() -> ss.Spec:
    return ss.load_spec(GOLDEN / "in-search-api.yaml")


def _render(spec: ss.Spec) -> dict[str, dict[str, Any]]:
    return {path: json.loads(text) for path, text in render_dashboards(spec, SOURCE).items()}


def _concrete(expr: str, service: str) -> str:
    """A dashboard query with Grafana's variables replaced by what Grafana would send."""
    return (
        expr.replace("$__rate_interval", "5m")
        .replace("$__range", "1d")
        .replace("$service", service)
        .replace("$model", ".*")
    )


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert Path(PROMTOOL).exists(), "promtool is required (Debian package 'prometheus')"
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


# ----------------------------------------------------------------------------- golden files
@pytest.mark.parametrize(
    ("name", "spec_factory"),
    [("chat-gateway", lambda: ss.default_spec("chat-gateway")), ("search-api", _custom_spec)],
)
def test_golden(name: str, spec_factory: Any) -> None:
    """Rendered dashboards equal the reviewed golden files byte for byte."""
    files = render_dashboards(spec_factory(), SOURCE)
    assert sorted(files) == sorted(dashboard_path(name, board) for board in c.BOARDS)
    for path, text in files.items():
        golden = GOLDEN / Path(path).name
        if UPDATE:
            golden.write_text(text, encoding="utf-8")
        assert golden.exists(), f"missing {golden}; run with UPDATE_GOLDEN=1 to create it"
        assert text == golden.read_text(encoding="utf-8"), (
            f"{path} differs from {golden}; if intended, rerun with UPDATE_GOLDEN=1"
        )


def test_output_is_byte_stable_and_canonical() -> None:
    """Rendering twice gives identical text: sorted keys, 2-space indent, trailing newline."""
    spec = ss.default_spec("chat-gateway")
    first = render_dashboards(spec, SOURCE)
    assert first == render_dashboards(ss.default_spec("chat-gateway"), SOURCE)
    for text in first.values():
        assert text.endswith("}\n")
        data = json.loads(text)
        assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------- importable as Grafana
@pytest.mark.parametrize("spec_factory", [lambda: ss.default_spec("chat-gateway"), _custom_spec])
def test_json_is_a_grafana_dashboard_model(spec_factory: Any) -> None:
    """Each file has schemaVersion, the conventions uid, a title, the header and a panel list."""
    spec = spec_factory()
    header = c.generated_header(SOURCE.name, SOURCE.sha256)
    for board in c.BOARDS:
        data = _render(spec)[dashboard_path(spec.service, board)]
        assert isinstance(data["schemaVersion"], int) and data["schemaVersion"] >= 36
        assert data["uid"] == c.dashboard_uid(spec.service, board)
        assert len(data["uid"]) <= 40
        assert data["title"].startswith(spec.service)
        assert data["description"] == header
        assert data["id"] is None, "an exported dashboard must not pin a database id"
        assert isinstance(data["panels"], list) and data["panels"]
        assert {v["name"] for v in data["templating"]["list"]} == {"datasource", "service", "model"}


@pytest.mark.parametrize("spec_factory", [lambda: ss.default_spec("chat-gateway"), _custom_spec])
def test_lint_rules_pass(spec_factory: Any) -> None:
    """Generated dashboards pass every linter rule with the spec's selector required."""
    spec = spec_factory()
    for path, data in _render(spec).items():
        assert lint_for_spec(spec, data) == [], path


# ------------------------------------------------------------------------ PromQL via promtool
def _all_exprs(spec: ss.Spec) -> list[tuple[str, str]]:
    """(name, PromQL) for every target, annotation and variable query of every board."""
    exprs: list[tuple[str, str]] = []
    for path, data in _render(spec).items():
        board = Path(path).stem.replace("-", "_").replace(".", "_")
        for panel, target in panel_targets(data):
            exprs.append((f"{board}:panel{panel['id']}_{target['refId']}", target["expr"]))
        for i, annotation in enumerate(data["annotations"]["list"]):
            exprs.append((f"{board}:annotation{i}", annotation["expr"]))
        for var in data["templating"]["list"]:
            if var["type"] == "query":
                inner = re.fullmatch(r"label_values\((.*), (\w+)\)", var["definition"])
                assert inner, var["definition"]
                exprs.append((f"{board}:var_{var['name']}", inner.group(1)))
    return exprs


@pytest.mark.parametrize("spec_factory", [lambda: ss.default_spec("chat-gateway"), _custom_spec])
def test_every_query_parses_with_promtool(spec_factory: Any, tmp_path: Path) -> None:
    """`promtool check rules` accepts every panel, annotation and variable query."""
    spec = spec_factory()
    exprs = _all_exprs(spec)
    assert len(exprs) > 30
    rules = [{"record": name, "expr": _concrete(expr, spec.service)} for name, expr in exprs]
    (tmp_path / "dash.rules.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, sort_keys=False)
    )
    result = _promtool("check", "rules", "dash.rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def _sli_groups(spec: ss.Spec) -> list[dict[str, Any]]:
    """The generated SLI recording groups the SLO overview reads."""
    wanted = {names.slo_group(spec.service, slo.name) for slo in spec.slos}
    return [g for g in rule_groups(spec) if g["name"] in wanted]


def _with_sli_rules(spec: ss.Spec, rules: list[dict[str, Any]]) -> str:
    """A rule file: the SLI groups, then a group recording the given dashboard queries."""
    groups = [*_sli_groups(spec), {"name": "dashboard", "interval": "1m", "rules": rules}]
    return yaml.safe_dump({"groups": groups}, sort_keys=False)


def _panel(data: dict[str, Any], key: str, spec: ss.Spec) -> dict[str, Any]:
    ref = panel_index(spec)[key]
    return next(p for p in data["panels"] if p["id"] == ref.panel_id)


def _slo_labels(key: str) -> str:
    slo = "time-to-first-token" if key.startswith("slo-time-to-first-token") else "stream-errors"
    return f'{{service="chat-gateway",slo="{slo}"}}'


def test_slo_panel_math_evaluates_correctly_in_promtool(tmp_path: Path) -> None:
    """With 10% slow first tokens and 1% errors, promtool evaluates the SLO overview's queries
    (over the generated SLI recording rules) to SLI 90%, burn rate 2x, budget -100% for TTFT,
    and burn 1x, budget 0% for errors."""
    spec = ss.default_spec("chat-gateway")
    data = _render(spec)[dashboard_path(spec.service, c.BOARD_SLO_OVERVIEW)]
    labels = '{service="chat-gateway",model="m",provider="p"}'
    le = c.le_label(2500)
    series = [
        # 100 first tokens a minute, 90 of them within 2.5 s.
        {"series": f"{c.count(c.FIRST_TOKEN_LATENCY)}{labels}", "values": "0+100x120"},
        {
            "series": f'{c.bucket(c.FIRST_TOKEN_LATENCY)}{labels[:-1]},le="{le}"}}',
            "values": "0+90x120",
        },
        # 100 streams a minute, 1 of them an error.
        {"series": f'{c.REQUESTS_TOTAL}{labels[:-1]},outcome="ok"}}', "values": "0+99x120"},
        {"series": f'{c.REQUESTS_TOTAL}{labels[:-1]},outcome="error"}}', "values": "0+1x120"},
        {"series": f'{c.ERRORS_TOTAL}{labels[:-1]},error_class="network"}}', "values": "0+1x120"},
    ]
    wanted = {
        ("slo-time-to-first-token-sli", "A"): 0.9,
        ("slo-time-to-first-token-budget", "A"): -1.0,
        ("slo-time-to-first-token-burn", "A"): 2.0,
        ("slo-time-to-first-token-sli-trend", "A"): 0.9,
        ("slo-stream-errors-sli", "A"): 0.99,
        ("slo-stream-errors-budget", "A"): 0.0,
        ("slo-stream-errors-burn", "A"): 1.0,
    }
    rules, samples = [], []
    for (key, ref_id), value in wanted.items():
        target = next(t for t in _panel(data, key, spec)["targets"] if t["refId"] == ref_id)
        record = "dash:" + key.replace("-", "_")
        rules.append({"record": record, "expr": _concrete(target["expr"], spec.service)})
        # round() drops the name and absorbs float noise; the recorded series keep the
        # spec's matchers and the SLO name. (1 - 0.95 is 0.050000000000000044).
        samples.append(
            {
                "expr": f"round({record}, 0.0001)",
                "eval_time": "100m",
                "exp_samples": [{"labels": _slo_labels(key), "value": value}],
            }
        )
    (tmp_path / "slo.rules.yaml").write_text(_with_sli_rules(spec, rules))
    test = {
        "rule_files": ["slo.rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": samples}],
    }
    (tmp_path / "slo.test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    result = _promtool("test", "rules", "slo.test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_traffic_gives_no_sample_not_nan(tmp_path: Path) -> None:
    """With zero traffic the error-ratio queries return no sample, never NaN."""
    spec = ss.default_spec("chat-gateway")
    data = _render(spec)[dashboard_path(spec.service, c.BOARD_SLO_OVERVIEW)]
    target = _panel(data, "slo-stream-errors-burn", spec)["targets"][0]
    labels = '{service="chat-gateway",model="m",provider="p",outcome="ok"}'
    rules = [{"record": "dash:burn", "expr": _concrete(target["expr"], spec.service)}]
    (tmp_path / "r.yaml").write_text(_with_sli_rules(spec, rules))
    test = {
        "rule_files": ["r.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"{c.REQUESTS_TOTAL}{labels}", "values": "0x120"},
                    {"series": f"{c.ERRORS_TOTAL}{labels}", "values": "0x120"},
                ],
                "promql_expr_test": [{"expr": "dash:burn", "eval_time": "100m", "exp_samples": []}],
            }
        ],
    }
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(test))
    result = _promtool("test", "rules", "t.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_recorded_series_on_dashboards_are_recorded_by_the_rules() -> None:
    """Every steadystream:* series a dashboard reads is one the generated rules record."""
    for spec in (ss.default_spec("chat-gateway"), _custom_spec()):
        recorded = {r["record"] for g in rule_groups(spec) for r in g["rules"] if "record" in r}
        used: set[str] = set()
        for data in _render(spec).values():
            for _, target in panel_targets(data):
                used |= set(re.findall(r"steadystream:[A-Za-z0-9_:]+", target["expr"]))
        assert used, "the SLO overview reads no recorded series"
        assert used <= recorded, used - recorded


# --------------------------------------------------------------------- content from the spec
def test_stream_internals_has_a_panel_for_every_metric() -> None:
    """Every metric in conventions is queried on the stream internals board."""
    spec = ss.default_spec("chat-gateway")
    data = _render(spec)[dashboard_path(spec.service, c.BOARD_STREAM_INTERNALS)]
    exprs = " ".join(t["expr"] for _, t in panel_targets(data))
    for metric in c.ALL_METRICS:
        assert re.search(rf"\b{metric}(_bucket|_count|_sum)?\{{", exprs), metric


def test_every_queried_metric_is_one_steadystream_emits() -> None:
    """Queries name only conventions metrics (and their histogram series), never a typo."""
    spec = ss.default_spec("chat-gateway")
    known = set(c.ALL_METRICS) | {f(m) for m in c.HISTOGRAMS for f in (c.bucket, c.count)}
    known |= {"ALERTS"}
    known |= {r["record"] for g in rule_groups(spec) for r in g["rules"] if "record" in r}
    for data in _render(spec).values():
        for _, target in panel_targets(data):
            names = set(re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)\{", target["expr"]))
            assert names <= known, names - known


def test_spec_thresholds_are_drawn_and_follow_the_spec() -> None:
    """TTFT shows the SLO threshold and first_token timeout; changing the spec moves the lines."""

    def lines(spec: ss.Spec) -> list[float]:
        data = _render(spec)[dashboard_path(spec.service, c.BOARD_STREAM_INTERNALS)]
        steps = _panel(data, "ttft-quantiles", spec)["fieldConfig"]["defaults"]["thresholds"]
        return [s["value"] for s in steps["steps"] if s["value"] is not None]

    assert lines(ss.default_spec("chat-gateway")) == [2500.0, 3000.0]
    custom = _custom_spec()
    assert lines(custom) == [2000.0, 5000.0]  # 2s SLO, 5s first_token timeout


def test_burn_rate_panel_draws_every_enabled_tier() -> None:
    """Burn-rate lines are the enabled tiers' factors for the spec's period (30d: 14.4, 3)."""
    spec = _custom_spec()
    data = _render(spec)[dashboard_path(spec.service, c.BOARD_SLO_OVERVIEW)]
    panel = _panel(data, "slo-ttft-burn", spec)
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps[1:]] == [3.0, 14.4]
    assert [t["legendFormat"] for t in panel["targets"]] == ["1h window", "1d window"]
    default = ss.default_spec("x")
    data = _render(default)[dashboard_path("x", c.BOARD_SLO_OVERVIEW)]
    steps = _panel(data, "slo-time-to-first-token-burn", default)["fieldConfig"]["defaults"]
    assert [s["value"] for s in steps["thresholds"]["steps"][1:]] == [0.9333, 2.8, 5.6, 13.44]


def test_queries_carry_the_selector_and_the_service_variable() -> None:
    """Every series selector has the spec's selector labels and service="$service"."""
    spec = _custom_spec()
    for data in _render(spec).values():
        for _, target in panel_targets(data):
            for matchers in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*\{([^}]*)\}", target["expr"]):
                assert 'job="search"' in matchers and 'namespace="prod"' in matchers
                assert 'service="$service"' in matchers


def test_panel_links_go_to_runbooks() -> None:
    """Panels link to the runbooks of the classes they diagnose: relative paths by default,
    under links.runbooks when set."""
    spec = ss.default_spec("chat-gateway")
    data = _render(spec)[dashboard_path(spec.service, c.BOARD_STREAM_INTERNALS)]
    retries = _panel(data, "retries-by-reason", spec)
    assert [link["url"] for link in retries["links"]] == [
        c.failure_class_runbook(c.FC_IDLE_STALL),
        c.failure_class_runbook(c.FC_RETRY_STORM),
        c.failure_class_runbook(c.FC_UPSTREAM_RATE_LIMIT),
        c.failure_class_runbook(c.FC_UPSTREAM_ERRORS),
    ]
    custom = _custom_spec()
    data = _render(custom)[dashboard_path(custom.service, c.BOARD_STREAM_INTERNALS)]
    urls = {link["url"] for link in _panel(data, "retries-by-reason", custom)["links"]}
    assert "https://runbooks.example.com/search/runbooks/retry-storm.md" in urls


def test_dashboard_urls_use_grafana_base_or_uid() -> None:
    """Panel URLs are absolute under links.grafana, else /d/<uid> paths."""
    spec = ss.default_spec("chat-gateway")
    uid = c.dashboard_uid("chat-gateway", c.BOARD_STREAM_INTERNALS)
    assert dashboard_url(spec, c.BOARD_STREAM_INTERNALS, 7) == (
        f"/d/{uid}?var-service=chat-gateway&viewPanel=7"
    )
    custom = _custom_spec()
    ref = panel_index(custom)["slo-ttft-burn"]
    assert ref.url.startswith("https://grafana.example.com/d/" + ref.uid + "?")
    assert ref.url.endswith(f"viewPanel={ref.panel_id}")


# ------------------------------------------------------------------ the linter catches faults
def _one_board() -> dict[str, Any]:
    spec = ss.default_spec("chat-gateway")
    return _render(spec)[dashboard_path(spec.service, c.BOARD_STREAM_INTERNALS)]


def _first_panel(data: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in data["panels"] if p["type"] != "row")


@pytest.mark.parametrize(
    ("mutate", "rule"),
    [
        (lambda d: _first_panel(d).update(datasource="Prometheus"), "panel-datasource-rule"),
        (
            lambda d: _first_panel(d)["targets"][0].update(datasource={"uid": "prom"}),
            "panel-datasource-rule",
        ),
        (
            lambda d: _first_panel(d)["targets"][0].update(
                expr='sum(rate(stream_bytes_total{service="$service"}[5m]))'
            ),
            "target-rate-interval-rule",
        ),
        (
            lambda d: _first_panel(d)["targets"][0].update(expr="sum(stream_in_flight)"),
            "target-selector-rule",
        ),
        (
            lambda d: _first_panel(d)["targets"][0].update(
                expr='sum(stream_bytes_total{service="$service"})'
            ),
            "target-counter-agg-rule",
        ),
        (
            lambda d: _first_panel(d)["fieldConfig"]["defaults"].update(unit=""),
            "panel-units-rule",
        ),
        (lambda d: _first_panel(d).update(title=""), "panel-title-description-rule"),
        (lambda d: _first_panel(d).update(description=""), "panel-title-description-rule"),
        (lambda d: _first_panel(d).update(links=[]), "panel-links-rule"),
        (lambda d: _first_panel(d).update(id=1), "panel-ids"),
        (lambda d: _first_panel(d).pop("gridPos"), "panel-gridpos"),
        (lambda d: _first_panel(d)["gridPos"].update(y=0), "panel-gridpos"),
        (lambda d: _first_panel(d)["gridPos"].update(x=20), "panel-gridpos"),
        (lambda d: d["templating"].update(list=[]), "template-datasource-rule"),
        (lambda d: d.pop("schemaVersion"), "dashboard-model"),
        (lambda d: d.update(uid="x" * 41), "dashboard-model"),
        (
            lambda d: d["annotations"]["list"][0].update(expr='ALERTS{alertstate="firing"}'),
            "target-selector-rule",
        ),
        (
            lambda d: d["annotations"]["list"][0].update(datasource="Prometheus"),
            "panel-datasource-rule",
        ),
    ],
)
def test_linter_reports_each_rule(mutate: Any, rule: str) -> None:
    """Breaking one rule in a clean dashboard produces a problem naming that rule."""
    data = copy.deepcopy(_one_board())
    mutate(data)
    problems = lint_dashboard(data, required_matchers=['service="$service"'])
    assert any(p.startswith(rule + ":") for p in problems), problems


def test_awkward_selector_values_are_escaped_and_still_parse(tmp_path: Path) -> None:
    """Selector values with quotes and backslashes are escaped; a selector that pins `service`
    is matched once; the result still lints clean and parses in promtool."""
    spec = ss.Spec.model_validate(
        {
            "version": 1,
            "service": "edge",
            "selector": {"job": 'we"ird\\job', "service": "edge-prod"},
        }
    )
    exprs = _all_exprs(spec)
    for data in _render(spec).values():
        assert lint_for_spec(spec, data) == []
        for _, target in panel_targets(data):
            assert 'job="we\\"ird\\\\job"' in target["expr"]
            assert target["expr"].count("service=") == target["expr"].count("job=")
    rules = [{"record": name, "expr": _concrete(expr, spec.service)} for name, expr in exprs]
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": rules}]}))
    result = _promtool("check", "rules", "r.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def _eq_matchers(expr: str) -> dict[str, str]:
    """The equality matchers of a selector whose values need no escaping."""
    inner = re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*\{(.*)\}", expr)
    assert inner, expr
    return dict(re.findall(r'(\w+)="([^"\\]*)"', inner.group(1)))


@pytest.mark.parametrize(
    "selector",
    [{"job": "chat-gateway"}, {"job": "chat-gateway", "service": "gw-prod", "env": "prod"}],
)
def test_alert_annotations_select_exactly_this_specs_alerts(selector: dict[str, str]) -> None:
    """The firing-alerts annotation matches every generated alert's labels (with $service at
    the variable's default) and carries every selector label, so another job's alerts for a
    service of the same name stay off the board."""
    spec = ss.Spec.model_validate({"version": 1, "service": "chat-gateway", "selector": selector})
    alerts = [r for g in rule_groups(spec) for r in g["rules"] if "alert" in r]
    assert alerts
    for path, data in _render(spec).items():
        service_var = next(v for v in data["templating"]["list"] if v["name"] == "service")
        (annotation,) = data["annotations"]["list"]
        wanted = _eq_matchers(
            annotation["expr"].replace("$service", service_var["current"]["value"])
        )
        assert wanted.pop("alertstate") == "firing"
        assert set(selector) <= set(wanted), path
        for alert in alerts:
            labels = alert["labels"]
            assert {k: labels.get(k) for k in wanted} == wanted, (path, alert["alert"])
        decoy = {**alerts[0]["labels"], "job": "another-job"}
        assert {k: decoy.get(k) for k in wanted} != wanted
    expected_service = selector.get("service", spec.service)
    assert f"var-service={expected_service}&" in dashboard_url(spec, c.BOARD_SLO_OVERVIEW, 1)
