"""Generated rules checked by their real consumer: ``promtool check rules`` and
``promtool test rules`` (Prometheus 2.42 from the Debian ``prometheus`` package).

The generated test files fire every alert on synthetic series; the tests below also prove
those generated tests can fail: rules without the low-traffic guard, or with the wrong ``le``
label, make them red.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import steadystream as ss
from steadystream.alerts import names, render_rules, rules_paths
from steadystream.alerts._promtool import minute_timeline_holds
from steadystream.demo.incident import demo_spec_data
from steadystream.generate import Source
from steadystream.spec import Spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "chat-gateway"
GOLDEN = Path(__file__).parent / "golden" / "alerts"


def _run(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def _write(spec: Spec, out: Path) -> tuple[Path, Path]:
    files = render_rules(spec, Source("slo.yaml", "0" * 64))
    for path, text in files.items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(text, encoding="utf-8")
    rules, _, tests = rules_paths(spec.service)
    return out / rules, out / tests


def _assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def _check_and_test(promtool: str, rules: Path, tests: Path) -> None:
    _assert_ok(_run(promtool, "check", "rules", rules.name, cwd=rules.parent))
    _assert_ok(_run(promtool, "test", "rules", tests.name, cwd=tests.parent))


def test_default_spec_rules_pass_promtool(promtool: str, tmp_path: Path) -> None:
    """The default spec's rules load and every generated alert test passes in promtool."""
    rules, tests = _write(ss.default_spec("chat-gateway"), tmp_path)
    _check_and_test(promtool, rules, tests)


def test_committed_example_rules_pass_promtool(promtool: str) -> None:
    """examples/chat-gateway/alerts and its rule-tests (as committed) pass promtool check
    and test."""
    rules, _, tests = rules_paths("chat-gateway")
    _check_and_test(promtool, EXAMPLE / rules, EXAMPLE / tests)


def test_30d_spec_has_sre_workbook_factors_and_passes_promtool(
    promtool: str, tmp_path: Path
) -> None:
    """A 30d period gives factors 14.4 / 6 / 1 (the 1d tier is disabled) and passes."""
    spec = ss.load_spec(GOLDEN / "custom" / "slo.yaml")
    rules, tests = _write(spec, tmp_path)
    data = yaml.safe_load(rules.read_text())
    burn = [r for g in data["groups"] for r in g["rules"] if r.get("alert") == names.ALERT_SLO_BURN]
    assert sorted({r["expr"].rsplit(" > ", 1)[1] for r in burn}) == ["1", "14.4", "6"]
    _check_and_test(promtool, rules, tests)


def test_odd_spec_passes_promtool(promtool: str, tmp_path: Path) -> None:
    """Quotes and backslashes in selector values, a foreign histogram, a 7d period, a 90s
    ``for`` and min_events 3 still give rules and tests promtool accepts."""
    rules, tests = _write(ss.load_spec(GOLDEN / "edge" / "slo.yaml"), tmp_path)
    assert r'job="we\"ird\\job"' in rules.read_text()
    _check_and_test(promtool, rules, tests)


def _compressed(window: str, tiers: bool) -> Spec:
    """The demo's compressed-time spec, with the failure-class window given and, unless
    ``tiers``, the default burn tiers (whole minutes) instead of its tiers of seconds."""
    data = demo_spec_data("gw")
    data["alerting"]["window"] = window
    if not tiers:
        data["alerting"].pop("tiers")
        data["period"] = "28d"
    return Spec.model_validate(data)


@pytest.mark.parametrize(
    ("window", "tiers", "burn", "fc"),
    [
        ("10s", True, False, False),  # steadystream demo's own spec
        ("10m", False, True, False),
        ("5m", True, False, True),
    ],
)
def test_compressed_time_specs_get_only_tests_that_hold(
    promtool: str, tmp_path: Path, window: str, tiers: bool, burn: bool, fc: bool
) -> None:
    """Windows the one-sample-a-minute tests cannot play (a failure-class window other than
    5 m, burn tiers of seconds) leave those alerts' tests out; what is generated passes."""
    spec = _compressed(window, tiers)
    assert minute_timeline_holds(spec) == (burn, fc)
    rules, tests = _write(spec, tmp_path)
    names_tested = {
        a["alertname"]
        for t in yaml.safe_load(tests.read_text())["tests"]
        for a in t.get("alert_rule_test", [])
    }
    assert (names.ALERT_SLO_BURN in names_tested) == burn
    assert any(n != names.ALERT_SLO_BURN for n in names_tested) == fc
    _check_and_test(promtool, rules, tests)


def _only(tests: Path, keep: str) -> None:
    """Keep only the test groups whose name contains ``keep``."""
    data: dict[str, Any] = yaml.safe_load(tests.read_text())
    data["tests"] = [t for t in data["tests"] if keep in t["name"]]
    assert data["tests"], f"no generated test group named like {keep!r}"
    tests.write_text(yaml.safe_dump(data, sort_keys=False))


def test_low_traffic_tests_fail_against_rules_without_the_guard(
    promtool: str, tmp_path: Path
) -> None:
    """The generated low-traffic tests pass with min_events and fail on rules without it."""
    guarded = Spec.model_validate({"version": 1, "service": "chat-gateway"})
    unguarded = Spec.model_validate(
        {"version": 1, "service": "chat-gateway", "alerting": {"min_events": 0}}
    )
    rules, tests = _write(guarded, tmp_path)
    _only(tests, "low")  # "low traffic" (failure classes), "low-traffic floor" (SLOs)
    _assert_ok(_run(promtool, "test", "rules", tests.name, cwd=tests.parent))

    rules.write_text(render_rules(unguarded, Source("slo.yaml", "0" * 64))[f"alerts/{rules.name}"])
    proc = _run(promtool, "test", "rules", tests.name, cwd=tests.parent)
    assert proc.returncode != 0
    assert "low traffic" in proc.stdout + proc.stderr
    assert "low-traffic floor" in proc.stdout + proc.stderr
    assert names.ALERT_SLO_BURN in proc.stdout + proc.stderr
    assert names.ALERT_SLO_OUTAGE in proc.stdout + proc.stderr


def test_generated_tests_catch_a_latency_sli_on_the_wrong_bucket(
    promtool: str, tmp_path: Path
) -> None:
    """Selecting le="2500" (not prometheus_client's "2500.0") makes the generated tests fail."""
    rules, tests = _write(ss.default_spec("chat-gateway"), tmp_path)
    _only(tests, "1h/5m")
    _assert_ok(_run(promtool, "test", "rules", tests.name, cwd=tests.parent))
    text = rules.read_text()
    assert 'le="2500.0"' in text
    rules.write_text(text.replace('le="2500.0"', 'le="2500"'))
    proc = _run(promtool, "test", "rules", tests.name, cwd=tests.parent)
    assert proc.returncode != 0
    assert "time-to-first-token" in proc.stdout + proc.stderr


def test_zero_traffic_records_no_data_never_nan(promtool: str, tmp_path: Path) -> None:
    """Without traffic the ratios, burn rates and budget have no sample (never NaN), event
    counts are 0, and an errors SLO with traffic but no error series is at 0, not missing."""
    rules, _ = _write(ss.default_spec("chat-gateway"), tmp_path)
    sel = 'service="chat-gateway",slo="{slo}"'
    quiet = {
        "series": 'stream_first_token_latency_ms_count{model="m",provider="p",'
        'service="chat-gateway"}',
        "values": "7x120",
    }
    quiet_bucket = {
        "series": 'stream_first_token_latency_ms_bucket{le="2500.0",model="m",provider="p",'
        'service="chat-gateway"}',
        "values": "7x120",
    }
    busy_requests = {
        "series": 'stream_requests_total{model="m",outcome="ok",provider="p",'
        'service="chat-gateway"}',
        "values": "0+10x120",
    }
    ttft = sel.format(slo="time-to-first-token")
    errs = sel.format(slo="stream-errors")
    checks = [
        (f"steadystream:slo_error_ratio:1h{{{ttft}}}", []),
        (f"steadystream:slo_error_ratio:28d{{{ttft}}}", []),
        (f"steadystream:slo_error_ratio:5m{{{ttft}}}", []),
        (f"steadystream:slo_error_budget_remaining{{{ttft}}}", []),
        (
            f"steadystream:slo_events_total:increase5m{{{ttft}}}",
            [{"labels": f"steadystream:slo_events_total:increase5m{{{ttft}}}", "value": 0}],
        ),
        (
            f"steadystream:slo_error_ratio:1h{{{errs}}}",
            [{"labels": f"steadystream:slo_error_ratio:1h{{{errs}}}", "value": 0}],
        ),
        (
            f"steadystream:slo_error_budget_remaining{{{errs}}}",
            [{"labels": f"steadystream:slo_error_budget_remaining{{{errs}}}", "value": 1}],
        ),
        # NaN is the only value unequal to itself: no recorded ratio may be NaN.
        ("count(steadystream:slo_error_ratio:1h != steadystream:slo_error_ratio:1h)", []),
    ]
    test = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "group_eval_order": [g["name"] for g in yaml.safe_load(rules.read_text())["groups"]],
        "tests": [
            {
                "name": "zero traffic",
                "interval": "1m",
                "input_series": [quiet, quiet_bucket, busy_requests],
                "promql_expr_test": [
                    {"expr": expr, "eval_time": "2h", "exp_samples": samples}
                    for expr, samples in checks
                ],
            }
        ],
    }
    path = rules.parent / "zero.test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    _assert_ok(_run(promtool, "test", "rules", path.name, cwd=path.parent))


def test_outage_under_ingress_shedding_pages_upstream_errors(promtool: str, tmp_path: Path) -> None:
    """A 503 outage while ingress sheds: 5 admitted streams/s, every one failing upstream,
    and 300 rejected streams/s from callers retrying their rejections. The failure ratios
    count admitted streams only, so the upstream-error share reads 1.0 (not 5/305) and
    StreamUpstreamErrors fires; the rejections do not turn it into a retry storm."""
    from steadystream.catalog.alerting import failure_class_signals

    spec = ss.default_spec("chat-gateway")
    rules, _ = _write(spec, tmp_path)
    base = 'model="m",provider="p",service="chat-gateway"'
    series = [
        {"series": f'stream_requests_total{{{base},outcome="error"}}', "values": "0+300x60"},
        {"series": f'stream_requests_total{{{base},outcome="rejected"}}', "values": "0+18000x60"},
        {
            "series": f'stream_errors_total{{{base},error_class="upstream_5xx"}}',
            "values": "0+300x60",
        },
        {"series": f'stream_retry_total{{{base},reason="5xx"}}', "values": "0+600x60"},
        {"series": f'stream_rejected_total{{{base},reason="rate"}}', "values": "0+18000x60"},
    ]
    signal = next(
        s
        for s in failure_class_signals(spec)["upstream-errors"]
        if s.name == "upstream-error-streams"
    )
    firing = 'ALERTS{alertname="%s",alertstate="firing"}'
    test = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "group_eval_order": [g["name"] for g in yaml.safe_load(rules.read_text())["groups"]],
        "tests": [
            {
                "name": "outage under shedding",
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {"expr": signal.expr, "eval_time": "30m", "exp_samples": [{"value": 1}]},
                    {
                        "expr": f"count({firing % 'StreamUpstreamErrors'})",
                        "eval_time": "30m",
                        "exp_samples": [{"value": 1}],
                    },
                    # retries per admitted stream: 2, above the 20 % budget, but the retry
                    # storm is explained by the outage (triage ranks it second).
                    {
                        "expr": f"count({firing % 'StreamUpstream5xxRetries'})",
                        "eval_time": "30m",
                        "exp_samples": [{"value": 1}],
                    },
                ],
            }
        ],
    }
    path = rules.parent / "shedding.test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    _assert_ok(_run(promtool, "test", "rules", path.name, cwd=path.parent))


def _cascade_group(name: str, shape: str, share: float, signal_expr: str) -> dict[str, Any]:
    """One promtool group: 4 workers of a service with a cap of 100 each, ``share`` of it in
    flight on every worker, timeouts rising in two phases (first_token and idle).

    ``shape`` is how the workers are scraped: ``targets`` (4 scrape targets, one per worker,
    told apart by ``instance``) or ``multiprocess`` (one target serving 4 gunicorn workers in
    prometheus_client multiprocess mode: both gauges are ``livesum``, so the target exposes
    the 4 workers' sums). Only documented metric names are used."""
    base = 'model="m",provider="p",service="chat-gateway"'
    in_flight = round(100 * share)
    if shape == "targets":
        per_target = [(f"worker-{i}", in_flight, 100) for i in range(1, 5)]
    else:
        per_target = [("pod-1", 4 * in_flight, 4 * 100)]
    series = []
    for instance, busy, cap in per_target:
        series += [
            {
                "series": f'stream_in_flight{{{base},instance="{instance}"}}',
                "values": f"{busy}+0x60",
            },
            {
                "series": f'stream_ingress_max_concurrent{{instance="{instance}",'
                'service="chat-gateway"}',
                "values": f"{cap}+0x60",
            },
        ]
    for phase in ("first_token", "idle"):
        series.append(
            {"series": f'stream_timeouts_total{{{base},phase="{phase}"}}', "values": "0+5x60"}
        )
    series.append({"series": f'stream_requests_total{{{base},outcome="ok"}}', "values": "0+600x60"})
    firing = 'count(ALERTS{alertname="StreamTimeoutCascade",alertstate="firing"})'
    return {
        "name": name,
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [
            {"expr": signal_expr, "eval_time": "30m", "exp_samples": [{"value": share}]},
            {
                "expr": firing,
                "eval_time": "30m",
                "exp_samples": [{"value": 1}] if share > 0.8 else [],
            },
        ],
    }


def test_four_workers_at_39_percent_of_their_caps_do_not_cascade(
    promtool: str, tmp_path: Path
) -> None:
    """The cascade signal compares sums with sums: sum(stream_in_flight) over
    sum(stream_ingress_max_concurrent). 4 workers each at 39 % of their cap, with timeouts
    rising in two phases, read 0.39: no StreamTimeoutCascade, whether the workers are 4 scrape
    targets or one multiprocess target. The same 4 workers at 90 % read 0.9 and page.

    (Against the per-process cap, the fleet's in-flight read 1.56 and paged; the fullest
    target's in-flight read 1.56 too under multiprocess mode, where one target sums 4
    workers.)"""
    spec = Spec.model_validate(
        {
            "version": 1,
            "service": "chat-gateway",
            "stream": {"ingress": {"max_concurrent": 100, "rate": "50/s"}},
        }
    )
    from steadystream.catalog.alerting import failure_class_signals

    (signal,) = failure_class_signals(spec)["timeout-cascade"]
    # The signal without its "two phases" guard: the share of capacity in use.
    share_expr = signal.expr.split(" and on() ", 1)[0]
    rules, _ = _write(spec, tmp_path)
    groups = [
        _cascade_group(f"4 workers at {round(share * 100)} % ({shape})", shape, share, share_expr)
        for share in (0.39, 0.9)
        for shape in ("targets", "multiprocess")
    ]
    test = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "group_eval_order": [g["name"] for g in yaml.safe_load(rules.read_text())["groups"]],
        "tests": groups,
    }
    path = rules.parent / "cascade.test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    _assert_ok(_run(promtool, "test", "rules", path.name, cwd=path.parent))


# ------------------------------------------------------------------- incidents, judged on ALERTS
_BASE = 'model="m",provider="p",service="chat-gateway"'
_PAGE = 'ALERTS{alertstate="firing",severity="critical"}'


def _counter(name: str, labels: str, phases: list[tuple[int, float]]) -> dict[str, str]:
    """A counter series over 1 m steps: each (minutes, per-minute increase) phase in turn."""
    values, total = ["0"], 0.0
    for minutes, per_min in phases:
        for _ in range(minutes):
            total += per_min
            values.append(f"{total:g}")
    return {
        "series": f"{name}{{{_BASE}{',' + labels if labels else ''}}}",
        "values": " ".join(values),
    }


def _incident(
    promtool: str, tmp_path: Path, name: str, series: list[dict[str, str]], checks: list[Any]
) -> None:
    rules, _ = _write(ss.default_spec("chat-gateway"), tmp_path)
    test = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "group_eval_order": [g["name"] for g in yaml.safe_load(rules.read_text())["groups"]],
        "tests": [
            {"name": name, "interval": "1m", "input_series": series, "promql_expr_test": checks}
        ],
    }
    path = rules.parent / "incident.test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    _assert_ok(_run(promtool, "test", "rules", path.name, cwd=path.parent))


def test_hard_outage_pages_within_10_minutes(promtool: str, tmp_path: Path) -> None:
    """Two healthy hours at 5 streams/s, then every stream fails upstream after its retries:
    a critical page is firing 10 minutes into the outage, and none before it."""
    healthy, outage = (120, 300), (10, 300)
    series = [
        _counter("stream_requests_total", 'outcome="ok"', [healthy, (10, 0)]),
        _counter("stream_requests_total", 'outcome="error"', [(120, 0), outage]),
        _counter("stream_errors_total", 'error_class="upstream_5xx"', [(120, 0), outage]),
        _counter("stream_retry_total", 'reason="5xx"', [(120, 6), (10, 900)]),
    ]
    checks = [
        {"expr": f"count({_PAGE}) > bool 0", "eval_time": "130m", "exp_samples": [{"value": 1}]},
        {"expr": f"count_over_time({_PAGE}[120m])", "eval_time": "120m", "exp_samples": []},
    ]
    _incident(promtool, tmp_path, "hard outage", series, checks)


def test_healthy_low_traffic_never_pages(promtool: str, tmp_path: Path) -> None:
    """Three hours at 2 streams/s, every stream succeeding, retries at 0.8/s (inside the retry
    budget's 1/s floor): no page, no alert at all."""
    series = [
        _counter("stream_requests_total", 'outcome="ok"', [(180, 120)]),
        _counter("stream_retry_total", 'reason="network"', [(180, 48)]),
    ]
    checks = [
        {
            "expr": 'count_over_time(ALERTS{alertstate="firing"}[180m])',
            "eval_time": "180m",
            "exp_samples": [],
        },
    ]
    _incident(promtool, tmp_path, "healthy low traffic", series, checks)


def test_sudden_silence_pages_within_15_minutes_but_a_quiet_night_does_not(
    promtool: str, tmp_path: Path
) -> None:
    """Steady traffic (5 streams/s) that stops dead, or metrics that vanish, pages within 15
    minutes; a service that was already quiet (1 stream a minute) and stops pages nobody."""
    steady = _counter("stream_requests_total", 'outcome="ok"', [(120, 300), (20, 0)])
    series = [steady]
    checks = [
        {
            "expr": 'count(ALERTS{alertname="StreamTrafficStopped",alertstate="firing",'
            'severity="critical"})',
            "eval_time": "135m",
            "exp_samples": [{"value": 1}],
        },
    ]
    _incident(promtool, tmp_path / "stop", "steady then silent", series, checks)
    quiet = _counter("stream_requests_total", 'outcome="ok"', [(120, 1), (60, 0)])
    checks = [
        {"expr": f"count_over_time({_PAGE}[180m])", "eval_time": "180m", "exp_samples": []},
    ]
    _incident(promtool, tmp_path / "quiet", "quiet then silent", [quiet], checks)
    # The scrape breaks: the series end (stale) instead of staying flat.
    values = steady["values"].split()[:121]
    gone = {"series": steady["series"], "values": " ".join(values) + " " + " ".join(["_"] * 20)}
    checks = [
        {
            "expr": 'count(ALERTS{alertname="StreamTrafficStopped",alertstate="firing"})',
            "eval_time": "135m",
            "exp_samples": [{"value": 1}],
        },
    ]
    _incident(promtool, tmp_path / "gone", "metrics vanish", [gone], checks)
