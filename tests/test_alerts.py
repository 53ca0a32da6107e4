"""The rule generator: recording rules, burn-rate and failure-class alerts, signals, goldens.

Golden files live in ``tests/golden/alerts/<case>/``: ``slo.yaml`` is the input and
``alerts/*.yaml`` the expected output of :func:`steadystream.alerts.render_rules`. After an
intended change to the rules, regenerate them on purpose and review the diff::

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_alerts.py -k golden

The real promtool runs on generated output in ``tests/test_alerts_promtool.py``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from steadystream.alerts import (
    Signal,
    failure_class_signals,
    inhibit_rules,
    names,
    render_rules,
    rule_groups,
    rules_paths,
    slo_burn_signals,
    slo_outage_signals,
    tier_factor,
    windows,
)
from steadystream.generate import Source
from steadystream.spec import Spec, format_duration

GOLDEN = Path(__file__).parent / "golden" / "alerts"
SOURCE = Source("slo.yaml", "0" * 64)


def _spec(**overrides: Any) -> Spec:
    return Spec.model_validate({"version": 1, "service": "chat-gateway", **overrides})


def _rules(spec: Spec) -> list[dict[str, Any]]:
    return [rule for group in rule_groups(spec) for rule in group["rules"]]


def _alerts(spec: Spec) -> list[dict[str, Any]]:
    return [r for r in _rules(spec) if "alert" in r]


def _loaded(spec: Spec) -> dict[str, Any]:
    files = render_rules(spec, SOURCE)
    return yaml.safe_load(files[f"alerts/{spec.service}.rules.yaml"])


# ----------------------------------------------------------------------------- PromQL parsing
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "bool", "offset"}


def metric_names(expr: str) -> set[str]:
    """Every metric name an expression selects (``name{...}``, or a bare ``name``)."""
    text = _STRING.sub('""', expr)
    found = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", text))
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)  # range durations
    text = re.sub(r"\boffset\s+-?[0-9a-z]+", "", text)  # offset modifiers
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)  # label lists
    for m in _IDENT.finditer(text):
        word = m.group(0)
        rest = text[m.end() :].lstrip()
        if word in _KEYWORDS or rest.startswith("(") or re.fullmatch(r"[0-9.e+]+", word):
            continue
        found.add(word)
    return found


def _exposed_by_instrumentation() -> set[str]:
    """Series names a real StreamMonitor's prometheus_client registry exposes."""
    registry = CollectorRegistry()
    ss.StreamMonitor(ss.default_spec("chat-gateway"), registry=registry)
    out: set[str] = set()
    for family in registry.collect():
        if family.type == "counter":
            out.add(f"{family.name}_total")
        elif family.type == "histogram":
            out |= {c.bucket(family.name), c.count(family.name), c.sum_(family.name)}
        else:
            out.add(family.name)
    return out


def test_metric_name_parser_finds_selectors_and_bare_names() -> None:
    """The PromQL metric-name parser sees through functions, strings, ranges and label lists."""
    expr = (
        'sum by (le) (rate(a_bucket{le="x{y}"}[5m])) / on() b and absent(c{j="1"}) '
        "or vector(0) > 0.5 and on() sum(increase(d[1h] offset 5m))"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c", "d"}


@pytest.mark.parametrize("case", ["minimal", "custom"])
def test_every_metric_in_generated_promql_is_emitted(case: str) -> None:
    """Every raw metric a rule queries is in conventions and exposed by a real StreamMonitor;
    every recorded one is recorded by the same file."""
    spec = ss.load_spec(GOLDEN / case / "slo.yaml")
    rules = _rules(spec)
    recorded = {r["record"] for r in rules if "record" in r}
    allowed = set(c.ALL_METRICS) | {f(h) for h in c.HISTOGRAMS for f in (c.bucket, c.count, c.sum_)}
    exposed = _exposed_by_instrumentation()
    seen: set[str] = set()
    for rule in rules:
        for name in metric_names(rule["expr"]):
            seen.add(name)
            if ":" in name:
                assert name in recorded, f"{name} is queried but never recorded"
            else:
                assert name in allowed, f"{name} is not a steadystream metric"
                assert name in exposed, f"{name} is not exposed by the instrumentation"
    # Failure classes and SLOs together touch most of the metric list.
    assert len({n for n in seen if ":" not in n}) >= 12


def test_every_query_carries_the_selector_and_service() -> None:
    """Each raw and recorded series selector has the spec's selector labels and service."""
    spec = ss.load_spec(GOLDEN / "custom" / "slo.yaml")
    for rule in _rules(spec):
        text = _STRING.sub(lambda m: m.group(0).replace("{", "(").replace("}", ")"), rule["expr"])
        selectors = re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*\{([^}]*)\}", text)
        assert selectors or rule["expr"].startswith("vector("), rule["expr"]
        for inner in selectors:
            assert 'cluster="eu-1"' in inner and 'namespace="llm"' in inner, rule["expr"]
            assert 'service="payments-llm"' in inner, rule["expr"]


def test_selector_may_pin_the_service_label_itself() -> None:
    """A selector that sets ``service`` is used as given, never matched twice."""
    spec = _spec(selector={"service": "gw-prod"})
    for rule in _rules(spec):
        assert 'service="chat-gateway"' not in rule["expr"]
        assert rule["expr"].count('service="gw-prod"') >= 1 or "vector(" in rule["expr"]


def test_latency_sli_uses_the_bucket_le_prometheus_client_writes() -> None:
    """The latency SLI selects le="2500.0" (prometheus_client's format), never le="2500"."""
    exprs = " ".join(r["expr"] for r in _rules(ss.default_spec("chat-gateway")))
    assert 'le="2500.0"' in exprs and 'le="8000.0"' in exprs
    assert 'le="2500"' not in exprs
    assert c.le_label(2500) == "2500.0"


def test_sli_records_counts_and_ratios_of_sums_for_every_window() -> None:
    """Each SLO records 5m increases, its objective, then per window a ratio of sums, then the
    budget left: 12 recording rules, and with its outage path and four burn tiers 17 rules,
    Sloth's count. Burn rates and guard event counts are computed by the alerts."""
    spec = ss.default_spec("chat-gateway")
    assert [format_duration(w) for w in windows(spec)] == [
        "5m",
        "30m",
        "1h",
        "2h",
        "6h",
        "1d",
        "3d",
        "28d",
    ]
    group = rule_groups(spec)[0]
    assert group["interval"] == "1m"  # the event counts divide by the samples per 5 m
    by_name = {r["record"]: r for r in group["rules"]}
    assert list(by_name) == [
        names.SLO_BAD_5M,
        names.SLO_TOTAL_5M,
        names.SLO_OBJECTIVE,
        *(names.slo_error_ratio(w) for w in windows(spec)),
        names.SLO_BUDGET_REMAINING,
    ]
    per_slo_alerts = [a for a in _alerts(spec) if a["labels"].get("slo") == "time-to-first-token"]
    assert len(by_name) + len(per_slo_alerts) == 17
    # Windows up to 6h read the raw counters: exact, and no lag behind the 5 m increases.
    ratio_1h = by_name[names.slo_error_ratio(3600)]["expr"]
    assert ratio_1h.startswith("(clamp_min(sum(increase(stream_first_token_latency_ms_count{")
    assert ratio_1h.endswith("[1h])) > 0)")  # no traffic: no sample, never a division by 0
    assert by_name[names.slo_error_ratio(21600)]["expr"].endswith("[6h])) > 0)")
    # Longer windows sum the recorded 5 m increases: one series per SLO over days.
    ratio_1d = by_name[names.slo_error_ratio(86400)]["expr"]
    assert ratio_1d.startswith(f"sum_over_time({names.SLO_BAD_5M}{{")
    assert f"sum_over_time({names.SLO_TOTAL_5M}" in ratio_1d and "[1d]) > 0)" in ratio_1d
    assert by_name[names.SLO_BUDGET_REMAINING]["expr"].startswith("1 - steadystream:")
    assert by_name[names.SLO_BUDGET_REMAINING]["expr"].endswith("} / 0.05")


def test_errors_sli_is_zero_not_missing_when_no_error_ever_happened() -> None:
    """The bad-events rule of an errors SLO falls back to 0 x total when the errors counter
    has no series, so quiet-but-healthy windows still count their traffic."""
    group = rule_groups(ss.default_spec("chat-gateway"))[2]
    bad = group["rules"][0]
    assert bad["record"] == names.SLO_BAD_5M
    assert " or 0 * sum(increase(stream_requests_total{" in bad["expr"]


@pytest.mark.parametrize(
    ("period", "factors"),
    [("28d", ["13.44", "5.6", "2.8", "0.9333"]), ("30d", ["14.4", "6", "3", "1"])],
)
def test_burn_rate_factors_are_clean_decimals(period: str, factors: list[str]) -> None:
    """Factor = budget share x period / long window, printed as a clean decimal."""
    spec = _spec(period=period)
    got = [str(tier_factor(t, spec.period)).removesuffix(".0") for t in spec.alerting.tiers]
    assert got == factors
    alerts = [a for a in _alerts(spec) if a["alert"] == names.ALERT_SLO_BURN]
    assert len(alerts) == 3 * 4
    for alert, factor in zip(alerts[:4], factors, strict=True):
        assert alert["expr"].endswith(f") > {factor}")
        assert f" > {factor}) and " in alert["expr"]


def test_burn_alert_labels_annotations_and_low_traffic_guard() -> None:
    """A burn alert names SLO, windows and severity, guards on min_events in the long
    window, and links the SLO runbook and the overview board."""
    spec = _spec(selector={"job": "gw"}, alerting={"min_events": 50})
    alert = next(a for a in _alerts(spec) if a["alert"] == names.ALERT_SLO_BURN)
    assert alert["labels"] == {
        "failure_class": names.BURN_FAILURE_CLASS,
        "job": "gw",
        "long": "1h",
        "service": "chat-gateway",
        "severity": "critical",
        "short": "5m",
        "slo": "time-to-first-token",
    }
    assert "for" not in alert  # the short window rides out a bad scrape; `for` only delays
    # The guard counts the long window's events from the recorded 5 m totals.
    assert f"(sum_over_time({names.SLO_TOTAL_5M}{{" in alert["expr"]
    assert "[1h]) / 5 >= 50)" in alert["expr"]
    # The burn rates are the recorded ratios over the budget, long and short window.
    assert alert["expr"].startswith(f"({names.slo_error_ratio(3600)}{{")
    assert f"{names.slo_error_ratio(300)}{{" in alert["expr"]
    ann = alert["annotations"]
    assert ann["runbook_url"] == c.slo_runbook("time-to-first-token")
    assert ann["dashboard_url"].startswith(
        f"/d/{c.dashboard_uid('chat-gateway', c.BOARD_SLO_OVERVIEW)}"
    )
    assert "{{ $value" in ann["description"] and "Budget left" in ann["description"]
    assert "humanizeDuration" in ann["description"]


def test_min_events_zero_drops_the_guard() -> None:
    """With min_events 0 no alert carries a traffic floor."""
    for alert in _alerts(_spec(alerting={"min_events": 0})):
        assert "slo_events_total" not in alert["expr"]
        assert ">= 0" not in alert["expr"]


def test_tiers_can_be_disabled_and_set_severity_and_for() -> None:
    """A disabled tier has no alert; a tier's severity and for are its own."""
    tiers = [
        {"severity": "page", "long": "1h", "short": "5m", "budget": "2%"},
        {"severity": "ticket", "long": "6h", "short": "30m", "budget": "5%", "for": "7m"},
        {"severity": "ticket", "long": "1d", "short": "2h", "budget": "10%", "enabled": False},
    ]
    spec = _spec(alerting={"tiers": tiers})
    burn = [a for a in _alerts(spec) if a["alert"] == names.ALERT_SLO_BURN]
    assert {(a["labels"]["long"], a["labels"]["severity"], a.get("for")) for a in burn} == {
        ("1h", "page", None),
        ("6h", "ticket", "7m"),
    }
    assert [format_duration(w) for w in windows(spec)] == [
        "5m",
        "30m",
        "1h",
        "2h",
        "6h",
        "1d",
        "3d",
        "28d",
    ]


def test_every_alert_has_runbook_severity_and_failure_class() -> None:
    """The cross-cutting pass: runbook_url, dashboard_url, summary, description, severity,
    failure_class and service on every alert."""
    for case in ("minimal", "custom"):
        spec = ss.load_spec(GOLDEN / case / "slo.yaml")
        for alert in _alerts(spec):
            labels, ann = alert["labels"], alert["annotations"]
            assert labels["severity"] and labels["service"] == spec.service
            assert labels["failure_class"] in (*c.FAILURE_CLASSES, names.BURN_FAILURE_CLASS)
            assert set(ann) == {"summary", "description", "runbook_url", "dashboard_url"}
            assert all(ann.values())


def test_runbook_urls_live_under_links_runbooks_when_set() -> None:
    """With links.runbooks, every runbook_url is that base plus the runbook file name."""
    spec = ss.load_spec(GOLDEN / "custom" / "slo.yaml")
    for alert in _alerts(spec):
        url = alert["annotations"]["runbook_url"]
        assert url.startswith("https://wiki.example.com/runbooks/payments-llm/")
        assert "//" not in url.removeprefix("https://")
        assert alert["annotations"]["dashboard_url"].startswith("https://grafana.example.com/d/")


def test_every_failure_class_has_an_alert_by_default() -> None:
    """At least one alert per failure class, each linked to that class's runbook."""
    spec = ss.default_spec("chat-gateway")
    classes: dict[str, set[str]] = {}
    for alert in _alerts(spec):
        fc = alert["labels"]["failure_class"]
        classes.setdefault(fc, set()).add(alert["annotations"]["runbook_url"])
    for fc in c.FAILURE_CLASSES:
        assert classes[fc] == {c.failure_class_runbook(fc)}


def test_failure_class_overrides_threshold_for_severity_enabled() -> None:
    """alerting.failure_classes overrides the primary threshold, for and severity of a
    class, and enabled: false removes its alerts."""
    spec = ss.load_spec(GOLDEN / "custom" / "slo.yaml")
    signals = failure_class_signals(spec)
    assert c.FC_BROKEN_CHUNKS not in signals
    storm = signals[c.FC_RETRY_STORM]
    assert storm[0].threshold == 0.5 and storm[0].severity == "page" and storm[0].for_ == 60
    assert storm[1].threshold == 0  # secondary signal keeps its own threshold
    assert storm[1].severity == "page"  # ... but severity applies to the whole class
    assert signals[c.FC_UPSTREAM_RATE_LIMIT][0].threshold == 2
    # Defaults that follow the runtime policy: idle 20s -> chunk gap p99 alert at 10 s.
    gap = next(s for s in signals[c.FC_IDLE_STALL] if s.name == "chunk-gap-p99")
    assert gap.threshold == 10_000
    cascade = signals[c.FC_TIMEOUT_CASCADE][0]
    # Sums with sums: the cap comes from the processes' own gauge; the spec's is in the text.
    assert "/ (sum(max_over_time(stream_ingress_max_concurrent{" in cascade.expr
    assert "/ 64" not in cascade.expr and "64 per process" in cascade.description
    rules = _alerts(spec)
    assert not [a for a in rules if a["labels"]["failure_class"] == c.FC_BROKEN_CHUNKS]
    storm_rule = next(a for a in rules if a["alert"] == "StreamRetryStorm")
    assert storm_rule["for"] == "1m" and storm_rule["expr"].endswith(" > 0.5")


def test_alerts_are_built_from_the_signals_triage_uses() -> None:
    """Every alert's expr is exactly ``signal.condition``: triage and alerts agree."""
    spec = ss.load_spec(GOLDEN / "minimal" / "slo.yaml")
    signals: list[Signal] = list(slo_outage_signals(spec).values())
    signals += [s for group in slo_burn_signals(spec).values() for s in group]
    signals += [s for group in failure_class_signals(spec).values() for s in group]
    alerts = _alerts(spec)
    assert [a["expr"] for a in alerts] == [s.condition for s in signals]
    for s in signals:
        assert s.condition == f"({s.expr}) {s.op} {s.condition.rsplit(' ', 1)[1]}"
        assert s.breached(s.threshold + 1) is (s.op == ">")
        assert s.description and s.summary and s.runbook
    assert list(failure_class_signals(spec)) == list(c.FAILURE_CLASSES)
    assert list(slo_burn_signals(spec)) == [slo.name for slo in spec.slos]
    assert list(slo_outage_signals(spec)) == [slo.name for slo in spec.slos]


def _burn_inhibits(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rules if f'alertname="{names.ALERT_SLO_BURN}"' in r["source_matchers"]]


def _outage_inhibits(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rules if f'alertname="{names.ALERT_SLO_OUTAGE}"' in r["source_matchers"]]


def test_the_outage_page_silences_every_burn_alert_of_its_slo() -> None:
    """The fast path pages first; the burn pages that follow are the same incident. Turned
    off, it has no alert and no inhibit rule."""
    spec = _spec(selector={"job": "gw"})
    assert _outage_inhibits(inhibit_rules(spec)) == [
        {
            "equal": ["job", "service", "slo"],
            "source_matchers": [f'alertname="{names.ALERT_SLO_OUTAGE}"', 'service="chat-gateway"'],
            "target_matchers": [f'alertname="{names.ALERT_SLO_BURN}"', 'service="chat-gateway"'],
        }
    ]
    off = _spec(alerting={"outage": {"enabled": False}})
    assert not _outage_inhibits(inhibit_rules(off))
    assert not [a for a in _alerts(off) if a["alert"] == names.ALERT_SLO_OUTAGE]


def test_outage_fast_path_reads_the_5m_ratio_with_a_guard_no_single_failure_meets() -> None:
    """One outage alert per SLO on the 5 m bad share, guarded by its events; the guard is
    min_events, raised so that one bad event alone never exceeds the threshold."""
    outage = [a for a in _alerts(_spec()) if a["alert"] == names.ALERT_SLO_OUTAGE]
    assert [a["labels"]["slo"] for a in outage] == [
        "time-to-first-token",
        "recovery-time",
        "stream-errors",
    ]
    assert outage[0]["expr"].startswith("(steadystream:slo_error_ratio:5m{")
    assert f"({names.SLO_TOTAL_5M}{{" in outage[0]["expr"]
    assert outage[0]["expr"].endswith(">= 20)) > 0.5") and "for" not in outage[0]
    assert outage[0]["labels"]["severity"] == "critical"
    custom = _spec(alerting={"outage": {"ratio": "90%", "for": "1m", "severity": "page"}})
    rule = next(a for a in _alerts(custom) if a["alert"] == names.ALERT_SLO_OUTAGE)
    assert rule["expr"].endswith(") > 0.9") and rule["for"] == "1m"
    assert rule["labels"]["severity"] == "page"


def test_each_burn_tier_guard_keeps_one_bad_event_under_its_threshold() -> None:
    """A 99.9% SLO's 1h tier fires above 1.44% bad: 20 events would let one failure (5%)
    page, so its floor is 70; the 3d ticket's (0.1%) is 1001."""
    spec = _spec(
        period="30d",
        slos=[
            {
                "name": "errors",
                "objective": "99.9%",
                "indicator": {
                    "errors": {"errors": "stream_errors_total", "total": "stream_requests_total"}
                },
            }
        ],
    )
    burn = [a for a in _alerts(spec) if a["alert"] == names.ALERT_SLO_BURN]
    floors = [a["expr"].split(">= ")[1].split(")")[0] for a in burn]
    assert floors == ["70", "167", "334", "1001"]


def test_inhibit_rules_let_a_page_silence_the_ticket_of_the_same_slo() -> None:
    """critical burn alerts inhibit warning ones with equal service, slo and selector; within
    one severity the shorter long window silences the longer one."""
    common = [f'alertname="{names.ALERT_SLO_BURN}"', 'service="chat-gateway"']
    assert _burn_inhibits(inhibit_rules(_spec(selector={"job": "gw"}))) == [
        {
            "equal": ["job", "service", "slo"],
            "source_matchers": [*common, 'severity="critical"'],
            "target_matchers": [*common, 'severity="warning"'],
        },
        {
            "equal": ["job", "service", "slo"],
            "source_matchers": [*common, 'severity="critical"', 'long="1h"'],
            "target_matchers": [*common, 'severity="critical"', 'long="6h"'],
        },
        {
            "equal": ["job", "service", "slo"],
            "source_matchers": [*common, 'severity="warning"', 'long="1d"'],
            "target_matchers": [*common, 'severity="warning"', 'long="3d"'],
        },
    ]
    three = _spec(
        alerting={
            "tiers": [
                {"severity": "page", "long": "1h", "short": "5m", "budget": "2%"},
                {"severity": "ticket", "long": "1d", "short": "2h", "budget": "10%"},
                {"severity": "info", "long": "3d", "short": "6h", "budget": "10%"},
            ]
        }
    )
    pairs = [
        (r["source_matchers"][-1], r["target_matchers"][-1])
        for r in _burn_inhibits(inhibit_rules(three))
    ]
    assert pairs == [
        ('severity="page"', 'severity="ticket"'),
        ('severity="page"', 'severity="info"'),
        ('severity="ticket"', 'severity="info"'),
    ]


def test_inhibit_rules_silence_each_failure_class_under_the_classes_that_explain_it() -> None:
    """One rule per (cause, symptom) pair of the registry's ``explained_by``, for enabled
    classes only, matching this service and requiring the selector labels to be equal."""
    from steadystream.catalog.classes import failure_classes

    spec = _spec(selector={"job": "gw"})
    got = {
        (r["source_matchers"][0], r["target_matchers"][0])
        for r in inhibit_rules(spec)
        if r not in _burn_inhibits(inhibit_rules(spec)) + _outage_inhibits(inhibit_rules(spec))
    }
    want = {
        (f'failure_class="{cause}"', f'failure_class="{fc.id}"')
        for fc in failure_classes()
        for cause in fc.explained_by
    }
    assert want and got == want
    for rule in inhibit_rules(spec):
        assert 'service="chat-gateway"' in rule["source_matchers"]
        assert 'service="chat-gateway"' in rule["target_matchers"]
        assert {"job", "service"} <= set(rule["equal"])
    # A disabled cause (or symptom) has no alert: no rule names it.
    off = _spec(alerting={"failure_classes": {c.FC_UPSTREAM_ERRORS: {"enabled": False}}})
    assert not any(
        f'failure_class="{c.FC_UPSTREAM_ERRORS}"' in r["source_matchers"] + r["target_matchers"]
        for r in inhibit_rules(off)
    )


def test_render_rules_files_headers_and_byte_stability() -> None:
    """Three files in three directories (so ``alerts/*.yaml`` holds only rules), each
    starting with the generated header, ending in one newline, and identical on every render."""
    spec = ss.default_spec("chat-gateway")
    source = Source.from_bytes("slo.yaml", b"version: 1\nservice: chat-gateway\n")
    files = render_rules(spec, source)
    assert sorted(files) == [
        "alertmanager/chat-gateway.yaml",
        "alerts/chat-gateway.rules.yaml",
        "rule-tests/chat-gateway.rules.test.yaml",
    ]
    assert rules_paths("chat-gateway") == (
        f"{c.ALERTS_DIR}/chat-gateway.rules.yaml",
        f"{c.ALERTMANAGER_DIR}/chat-gateway.yaml",
        f"{c.RULE_TESTS_DIR}/chat-gateway.rules.test.yaml",
    )
    header = "# " + c.generated_header("slo.yaml", source.sha256) + "\n"
    for text in files.values():
        assert text.startswith(header)
        assert text.endswith("\n") and not text.endswith("\n\n")
        assert "&id" not in text and "*id" not in text  # no YAML anchors
    assert render_rules(spec, source) == files
    tests = yaml.safe_load(files["rule-tests/chat-gateway.rules.test.yaml"])
    assert tests["rule_files"] == ["../alerts/chat-gateway.rules.yaml"]
    assert tests["group_eval_order"] == [g["name"] for g in rule_groups(spec)]


def test_generated_promtool_tests_cover_every_alert_firing_and_silent() -> None:
    """Each alert rule appears in a test where it fires and in one where it must not."""
    spec = ss.load_spec(GOLDEN / "minimal" / "slo.yaml")
    tests = yaml.safe_load(render_rules(spec, SOURCE)["rule-tests/chat-gateway.rules.test.yaml"])
    fired: set[tuple[str, ...]] = set()
    silent: set[str] = set()
    for group in tests["tests"]:
        for check in group["alert_rule_test"]:
            if not check["exp_alerts"]:
                silent.add(check["alertname"])
            for alert in check["exp_alerts"]:
                labels = alert["exp_labels"]
                fired.add((check["alertname"], labels.get("slo", ""), labels.get("long", "")))
                assert set(alert["exp_annotations"]) == {
                    "summary",
                    "description",
                    "runbook_url",
                    "dashboard_url",
                }
    for rule in _alerts(spec):
        key = (rule["alert"], rule["labels"].get("slo", ""), rule["labels"].get("long", ""))
        assert key in fired, f"no test fires {key}"
        assert rule["alert"] in silent, f"no test checks {rule['alert']} stays silent"
    names_ = [g["name"] for g in tests["tests"]]
    assert any("low traffic" in n for n in names_)
    assert any("healthy" in n for n in names_)


def test_signal_thresholds_format_for_people() -> None:
    """format_threshold prints ratios as percentages and keeps units."""
    from steadystream.alerts import format_threshold

    assert format_threshold(0.2, "ratio") == "20%"
    assert format_threshold(0.1, "per_second") == "0.1/s"
    assert format_threshold(4000.0, "ms") == "4000 ms"
    assert format_threshold(13.44, "burn_rate") == "13.44x"


@pytest.mark.parametrize("case", sorted(p.name for p in GOLDEN.iterdir() if p.is_dir()))
def test_golden_render_rules(case: str) -> None:
    """render_rules output matches the reviewed golden files byte for byte
    (UPDATE_GOLDEN=1 rewrites them)."""
    spec_path = GOLDEN / case / "slo.yaml"
    spec = ss.load_spec(spec_path)
    files = render_rules(spec, Source.from_bytes("slo.yaml", spec_path.read_bytes()))
    dirs = (c.ALERTS_DIR, c.RULE_TESTS_DIR, c.ALERTMANAGER_DIR)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        for sub in dirs:
            for old in (GOLDEN / case / sub).glob("*"):
                old.unlink()
        for path, text in files.items():
            target = GOLDEN / case / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    expected = {
        p.relative_to(GOLDEN / case).as_posix(): p.read_text(encoding="utf-8")
        for sub in dirs
        for p in sorted((GOLDEN / case / sub).glob("*"))
    }
    assert files == expected, "golden mismatch: review, then UPDATE_GOLDEN=1 to accept"


@pytest.mark.parametrize(
    ("max_buffer", "policy", "says", "never"),
    [
        (
            "1MiB",
            "terminate",
            "streams cut with ClientTooSlow because the consumer fell behind the 1MiB buffer cap",
            "1024KiB",
        ),
        ("1536KiB", "pause", "the reader paused the upstream", "cut"),
        ("256KiB", "drop", "keep-alives and progress events shed", "cut"),
    ],
)
def test_slow_consumer_description_names_the_cap_and_what_the_policy_does(
    max_buffer: str, policy: str, says: str, never: str
) -> None:
    """The slow-consumer alert prints the buffer cap as the spec would (1MiB, not 1024KiB)
    and says what a breach does under the configured overflow policy."""
    spec = _spec(stream={"flow_control": {"max_buffer": max_buffer, "on_overflow": policy}})
    alert = next(a for a in _alerts(spec) if a["alert"] == "StreamSlowConsumerAborts")
    description = alert["annotations"]["description"]
    assert says in description
    assert never not in description
    assert ss.spec.format_size(spec.stream.flow_control.max_buffer) in description


def test_metrics_absent_description_names_the_missing_series_not_a_threshold() -> None:
    """The absent-metrics alert says which series is missing under which matchers, with no
    meaningless "alert above 0" clause; the cascade alert says its ratio is over every process."""
    spec = ss.load_spec(GOLDEN / "minimal" / "slo.yaml")
    alerts = {a["alert"]: a for a in _alerts(spec)}
    absent = alerts["StreamMetricsAbsent"]["annotations"]["description"]
    matchers = ",".join(f'{k}="{v}"' for k, v in sorted(ss.alerts.matcher_labels(spec).items()))
    assert f"no {c.REQUESTS_TOTAL} series matches {{{matchers}}}" in absent
    assert "alert above" not in absent and "whether" not in absent
    cascade = alerts["StreamTimeoutCascade"]["annotations"]["description"]
    assert cascade.startswith(
        "In-flight streams at their peak over 150s as a share of the ingress capacity, summed over"
    )


def test_quantile_alerts_stay_below_the_top_bucket_so_they_can_fire() -> None:
    """histogram_quantile never reads above the highest finite bucket, so a p99 threshold
    past it (half of a 45s stream_idle is 22.5 s, above the 15 s top gap bucket) moves to the
    largest bound below the top; thresholds the buckets can show stay as they are."""
    long = _spec(stream={"timeouts": {"stream_idle": "45s", "first_token": "90s", "total": "2m"}})
    buckets = long.histogram_buckets()
    signals = {s.name: s for group in failure_class_signals(long).values() for s in group}
    gap, ttft = signals["chunk-gap-p99"], signals["first-token-p99"]
    assert gap.threshold == buckets[c.CHUNK_GAP][-2] < buckets[c.CHUNK_GAP][-1]
    assert ttft.threshold == buckets[c.FIRST_TOKEN_LATENCY][-2]
    default = {s.name: s for g in failure_class_signals(_spec()).values() for s in g}
    assert default["chunk-gap-p99"].threshold == 4000
    assert default["first-token-p99"].threshold == 2400
    assert default["recovery-p99"].threshold == 8000


def test_burn_description_says_the_short_window_is_above_the_threshold() -> None:
    """The burn alert's description states both windows' condition as the rule checks it:
    the value over the long window, and the short window above the same factor."""
    alert = next(a for a in _alerts(_spec()) if a["labels"].get("long") == "1h")
    text = alert["annotations"]["description"]
    assert "x as fast as sustainable over 1h, and above 13.44x over 5m too" in text
    assert "(alert above 13.44x, which spends 2% of the budget in 1h)" in text
