"""The SLO spec: defaults, units, located errors (file:line:col), the JSON Schema and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

import steadystream as ss
from steadystream.spec import (
    Problem,
    format_duration,
    format_percent,
    format_size,
    json_schema,
    parse_spec,
)

MINIMAL = "version: 1\nservice: chat-gateway\n"


def problems(text: str) -> list[Problem]:
    with pytest.raises(ss.SpecError) as info:
        parse_spec(textwrap.dedent(text), "slo.yaml")
    return info.value.problems


def one(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


# ----------------------------------------------------------------------------------- defaults


def test_default_spec_is_the_baseline() -> None:
    """default_spec carries the production baseline from the design."""
    spec = ss.default_spec("chat-gateway")
    assert spec.service == "chat-gateway"
    assert spec.period == 28 * 86400
    ttft, recovery, errors = spec.slos
    assert (ttft.name, ttft.objective, ttft.indicator.latency.threshold) == (
        "time-to-first-token",
        0.95,
        2.5,
    )
    assert ttft.indicator.latency.metric == "stream_first_token_latency_ms"
    assert (recovery.objective, recovery.indicator.latency.threshold) == (0.99, 8.0)
    assert recovery.indicator.latency.metric == "stream_recovery_latency_ms"
    assert errors.objective == 0.99
    assert errors.indicator.errors.errors == "stream_errors_total"
    assert errors.indicator.errors.total == "stream_requests_total"
    t = spec.stream.timeouts
    assert (t.dial, t.tls_handshake, t.first_token, t.stream_idle, t.total) == (
        1.0,
        1.0,
        3.0,
        8.0,
        45.0,
    )
    r = spec.stream.retry
    assert (r.max_retries, r.base_backoff, r.jitter, r.budget) == (3, 0.3, 0.25, 0.2)
    assert spec.stream.flow_control.max_buffer == 512 * 1024
    assert spec.stream.flow_control.on_overflow == "terminate"
    assert spec.stream.checkpoint.every == 16
    assert [(tier.long, tier.short, tier.budget) for tier in spec.alerting.tiers] == [
        (3600, 300, 0.02),
        (6 * 3600, 1800, 0.05),
        (86400, 7200, 0.10),
        (3 * 86400, 6 * 3600, 0.10),
    ]


def test_minimal_file_equals_default_spec() -> None:
    """A file with only version and service is the default spec for that service."""
    assert parse_spec(MINIMAL) == ss.default_spec("chat-gateway")


def test_spec_is_frozen() -> None:
    """The model cannot be changed after validation."""
    spec = ss.default_spec("a")
    with pytest.raises(Exception, match="frozen"):
        spec.service = "b"  # type: ignore[misc]


def test_units_are_parsed() -> None:
    """Durations, sizes, percentages and rates accept their documented forms."""
    spec = parse_spec(
        MINIMAL
        + textwrap.dedent(
            """\
            period: 30d
            stream:
              timeouts:
                {dial: 250ms, tls_handshake: 0.5s, first_token: 2s, stream_idle: 1m, total: 2m}
              retry: {base_backoff: 100ms, max_backoff: 2s, jitter: 0.2, budget: 10%}
              flow_control: {max_buffer: 1MiB, on_overflow: pause}
              ingress: {max_concurrent: 10, rate: 600/m}
            """
        )
    )
    assert spec.period == 30 * 86400
    t = spec.stream.timeouts
    assert (t.dial, t.tls_handshake, t.stream_idle, t.total) == (0.25, 0.5, 60.0, 120.0)
    assert spec.stream.retry.jitter == 0.2 and spec.stream.retry.budget == pytest.approx(0.1)
    assert spec.stream.flow_control.max_buffer == 1024 * 1024
    assert spec.stream.ingress.rate == 10.0


def test_formatters_round_trip() -> None:
    """Formatted values are the shortest exact spelling Prometheus accepts."""
    assert format_duration(28 * 86400) == "28d"
    assert format_duration(3600) == "1h"
    assert format_duration(2.5) == "2500ms"
    assert format_duration(300) == "5m"
    assert format_percent(0.95) == "95%"
    assert format_percent(0.999) == "99.9%"
    assert format_size(512 * 1024) == "512KiB"


def test_latency_thresholds_per_metric() -> None:
    """The instrumentation can ask which thresholds its histograms must have as buckets."""
    spec = ss.default_spec("a")
    assert spec.latency_thresholds_ms("stream_first_token_latency_ms") == (2500.0,)
    assert spec.latency_thresholds_ms("stream_recovery_latency_ms") == (8000.0,)
    assert spec.latency_thresholds_ms("stream_chunk_gap_ms") == ()


# ------------------------------------------------------------------------------ error paths


def test_unknown_key_points_at_the_key() -> None:
    """An unknown field is an error at the key's own line and column."""
    p = one(MINIMAL + "stream:\n  timeouts:\n    frist_token: 3s\n")
    assert (p.line, p.column, p.path) == (5, 5, "stream.timeouts.frist_token")
    assert "unknown field" in p.message
    assert str(p).startswith("slo.yaml:5:5: stream.timeouts.frist_token: unknown field")


def test_unknown_top_level_key() -> None:
    """Typos at the top level are caught too."""
    p = one(MINIMAL + "slo: []\n")
    assert (p.line, p.column, p.path) == (3, 1, "slo")


def test_missing_required_fields() -> None:
    """Missing version and service are both reported, at the document start."""
    found = problems("period: 28d\n")
    assert {p.path for p in found} == {"version", "service"}
    assert all("required" in p.message for p in found)


def test_bare_percentage_is_ambiguous_with_hint() -> None:
    """objective: 95 is rejected with a hint to write 95% or 0.95."""
    p = one(
        MINIMAL
        + textwrap.dedent(
            """\
            slos:
              - name: ttft
                objective: 95
                indicator: {latency: {metric: stream_first_token_latency_ms, threshold: 2.5s}}
            """
        )
    )
    assert (p.line, p.column, p.path) == (5, 16, "slos[0].objective")
    assert "'95%'" in p.message and "0.95" in p.message


@pytest.mark.parametrize(
    ("value", "needle"),
    [("100%", "below 100%"), ("0%", "above 0%"), ("120%", "above 100%"), ("abc", "invalid")],
)
def test_objective_range(value: str, needle: str) -> None:
    """Objectives must leave an error budget and be a real percentage."""
    p = one(
        MINIMAL + "slos:\n  - name: e\n    objective: " + value + "\n    indicator: {errors: {}}\n"
    )
    assert p.path == "slos[0].objective" and needle in p.message


@pytest.mark.parametrize(
    ("text", "path", "needle"),
    [
        ("period: 28\n", "period", "ambiguous"),
        ("period: 28x\n", "period", "invalid duration"),
        ("period: 0d\n", "period", "greater than zero"),
        (
            "stream:\n  flow_control: {max_buffer: 12 kb}\n",
            "stream.flow_control.max_buffer",
            "size",
        ),
        ("stream:\n  flow_control: {max_buffer: 100B}\n", "stream.flow_control.max_buffer", "1KiB"),
        (
            "stream:\n  flow_control: {on_overflow: block}\n",
            "stream.flow_control.on_overflow",
            "pause",
        ),
        ("stream:\n  ingress: {rate: 50}\n", "stream.ingress.rate", "50/s"),
        ("stream:\n  retry: {max_retries: 99}\n", "stream.retry.max_retries", "10"),
        ("stream:\n  checkpoint: {every: 0}\n", "stream.checkpoint.every", "1"),
        ("selector: {'bad-label': x}\n", "selector.bad-label", "label name"),
        ("version: 2\n", "version", "1"),
    ],
)
def test_field_errors(text: str, path: str, needle: str) -> None:
    """Each invalid field is reported at its own path with a message that says why."""
    base = MINIMAL if not text.startswith("version") else "service: s\n"
    p = one(base + text)
    assert p.path == path, str(p)
    assert needle in p.message, str(p)
    assert p.line > 1 if not text.startswith("version") else p.line == 2


def test_timeouts_cross_checks_point_at_the_field() -> None:
    """first_token and stream_idle may not exceed total; each is reported at its own field."""
    found = problems(
        MINIMAL
        + "stream:\n  timeouts:\n    first_token: 50s\n    stream_idle: 60s\n    total: 45s\n"
    )
    assert [(p.line, p.path) for p in found] == [
        (5, "stream.timeouts.first_token"),
        (6, "stream.timeouts.stream_idle"),
    ]
    assert "must not exceed total (45s)" in found[0].message


def test_backoff_order() -> None:
    """base_backoff above max_backoff is an error."""
    p = one(MINIMAL + "stream:\n  retry: {base_backoff: 10s, max_backoff: 1s}\n")
    assert p.path == "stream.retry.base_backoff"


def test_indicator_needs_exactly_one_kind() -> None:
    """An SLO indicator is latency or errors, not both and not neither."""
    p = one(MINIMAL + "slos:\n  - name: x\n    objective: 99%\n    indicator: {}\n")
    assert p.path == "slos[0].indicator" and "exactly one" in p.message


def test_duplicate_and_invalid_slo_names() -> None:
    """SLO names are checked for form and uniqueness, all at once."""
    found = problems(
        MINIMAL
        + textwrap.dedent(
            """\
            slos:
              - {name: errors, objective: 99%, indicator: {errors: {}}}
              - {name: errors, objective: 99%, indicator: {errors: {}}}
              - {name: Bad_Name, objective: 99%, indicator: {errors: {}}}
            """
        )
    )
    assert [(p.line, p.path) for p in found] == [(5, "slos[1].name"), (6, "slos[2].name")]
    assert "duplicate" in found[0].message and "slos[0]" in found[0].message
    assert "invalid name" in found[1].message


def test_threshold_must_be_a_bucket_boundary() -> None:
    """A threshold between whole milliseconds cannot be an le bucket of our histograms."""
    p = one(
        MINIMAL
        + "slos:\n  - name: t\n    objective: 95%\n"
        + "    indicator: {latency: {metric: stream_first_token_latency_ms, threshold: 2.5005s}}\n"
    )
    assert p.path == "slos[0].indicator.latency.threshold" and "bucket" in p.message


def test_foreign_histogram_needs_its_buckets() -> None:
    """A histogram steadystream does not emit must list buckets containing the threshold."""
    head = MINIMAL + "slos:\n  - name: t\n    objective: 95%\n"
    p = one(head + "    indicator: {latency: {metric: my_latency_ms, threshold: 2s}}\n")
    assert p.path == "slos[0].indicator.latency.metric" and "buckets" in p.message
    p = one(
        head
        + "    indicator: {latency: {metric: my_latency_ms, threshold: 2s, buckets: [1s, 3s]}}\n"
    )
    assert p.path == "slos[0].indicator.latency.threshold"
    spec = parse_spec(
        head
        + "    indicator: {latency: {metric: my_latency_ms, threshold: 2s, buckets: [1s, 2s]}}\n"
    )
    assert spec.slos[0].indicator.latency.threshold_ms == 2000


def test_unreachable_burn_rate_tier() -> None:
    """A tier whose factor x error budget exceeds 1 can never fire and is an error."""
    p = one(
        MINIMAL
        + textwrap.dedent(
            """\
            slos:
              - {name: e, objective: 90%, indicator: {errors: {}}}
            alerting:
              tiers:
                - {severity: critical, long: 1h, short: 5m, budget: 2%}
            """
        )
    )
    # 0.02 * 28d / 1h = 13.44; 13.44 * 0.10 > 1.
    assert (p.line, p.path) == (7, "alerting.tiers[0].budget")
    assert "can never fire" in p.message and "13.44" in p.message


def test_disabled_unreachable_tier_is_fine() -> None:
    """A disabled tier is not checked for reachability."""
    spec = parse_spec(
        MINIMAL
        + "slos:\n  - {name: e, objective: 90%, indicator: {errors: {}}}\n"
        + "alerting:\n  tiers:\n    - {severity: critical, long: 1h, short: 5m, budget: 2%, "
        + "enabled: false}\n"
        + "    - {severity: warning, long: 1d, short: 2h, budget: 10%}\n"
    )
    assert spec.alerting.tiers[0].enabled is False


def test_tier_windows() -> None:
    """The short window must be shorter than the long one, which fits in the period."""
    found = problems(
        MINIMAL
        + "period: 7d\nalerting:\n  tiers:\n"
        + "    - {severity: warning, long: 1h, short: 2h, budget: 1%}\n"
        + "    - {severity: warning, long: 8d, short: 1h, budget: 50%}\n"
    )
    assert [p.path for p in found] == ["alerting.tiers[0].short", "alerting.tiers[1].long"]


def test_all_problems_reported_at_once_in_file_order() -> None:
    """Field errors and cross-field errors from different sections come together, sorted."""
    found = problems(
        textwrap.dedent(
            """\
            version: 1
            service: x
            slos:
              - {name: a, objective: 95, indicator: {errors: {}}}
              - {name: b, objective: 95%, indicator: {latency: {metric: m_ms, threshold: 1s}}}
            stream:
              timeouts: {first_token: 99s}
              bogus: true
            """
        )
    )
    assert [p.line for p in found] == sorted(p.line for p in found)
    assert {p.path for p in found} == {
        "slos[0].objective",
        "slos[1].indicator.latency.metric",
        "stream.timeouts.first_token",
        "stream.bogus",
    }


def test_duplicate_yaml_keys_are_errors() -> None:
    """YAML silently keeps the last duplicate key; the spec loader refuses it."""
    p = one(MINIMAL + "period: 28d\nperiod: 30d\n")
    assert (p.line, p.path) == (4, "period") and "line 3" in p.message


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("version: 1\nservice: [\n", "YAML syntax error"),
        ("- 1\n- 2\n", "mapping"),
        ("version: 1\n\tservice: x\n", "YAML"),
    ],
)
def test_unreadable_documents_get_one_line(text: str, needle: str) -> None:
    """Empty files, syntax errors and non-mappings give a single clear line."""
    p = one(text)
    assert needle in str(p)
    assert "\n" not in str(p)


def test_load_spec_file_errors(tmp_path: Path) -> None:
    """A missing file, a directory and invalid UTF-8 each get one clear line naming the path."""
    with pytest.raises(ss.SpecError, match=r"missing\.yaml:1:1: no such file"):
        ss.load_spec(tmp_path / "missing.yaml")
    with pytest.raises(ss.SpecError, match="is a directory"):
        ss.load_spec(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"version: 1\nservice: \xff\n")
    with pytest.raises(ss.SpecError, match=r"bad\.yaml:2:1: the file is not valid UTF-8"):
        ss.load_spec(bad)


def test_direct_construction_runs_cross_checks() -> None:
    """Building a Spec in code applies the same cross-field rules as loading a file."""
    with pytest.raises(ValueError, match="must not exceed total"):
        ss.Spec.model_validate(
            {"version": 1, "service": "s", "stream": {"timeouts": {"first_token": "1m"}}}
        )
    with pytest.raises(ValueError, match="duplicate SLO name"):
        ss.Spec.model_validate(
            {
                "version": 1,
                "service": "s",
                "slos": [
                    {"name": "a", "objective": "99%", "indicator": {"errors": {}}},
                    {"name": "a", "objective": "99%", "indicator": {"errors": {}}},
                ],
            }
        )


# ------------------------------------------------------------------------------ JSON Schema

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "slo.yaml"


def test_json_schema_accepts_the_example_and_rejects_typos() -> None:
    """The JSON Schema agrees with the loader on the example and on an unknown key."""
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    example = yaml.safe_load(EXAMPLE.read_text())
    assert list(validator.iter_errors(example)) == []
    ss.load_spec(EXAMPLE)
    broken = {**example, "stream": {"timeouts": {"frist_token": "3s"}}}
    assert [e.message for e in validator.iter_errors(broken)]
    bad_duration = {**example, "period": "28"}
    assert list(validator.iter_errors(bad_duration))


def test_schema_documents_fields() -> None:
    """Editors get descriptions and examples for completion."""
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"version", "service"}
    timeouts = schema["$defs"]["Timeouts"]["properties"]
    assert timeouts["first_token"]["default"] == "3s"
    assert timeouts["first_token"]["description"]


# ------------------------------------------------------------------------------------- CLI


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steadystream", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_validate_ok() -> None:
    """validate exits 0 on the example spec."""
    result = run_cli("validate", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_cli_validate_prints_one_line_per_problem(tmp_path: Path) -> None:
    """validate exits 1 and prints file:line:col: path: message lines, no traceback."""
    spec = tmp_path / "slo.yaml"
    spec.write_text(MINIMAL + "period: 28\nstream:\n  timeouts: {first_token: 99s}\n")
    result = run_cli("validate", str(spec))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"{spec}:3:9: period: a bare number (28) is ambiguous as a duration; "
        "write it with a unit, e.g. '28s' or '28ms'",
        f"{spec}:5:27: stream.timeouts.first_token: first_token (99s) must not exceed total (45s)",
    ]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("target", ["missing.yaml", "."])
def test_cli_validate_bad_paths(tmp_path: Path, target: str) -> None:
    """A missing file or a directory is one line and exit 1."""
    result = run_cli("validate", str(tmp_path / target))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_cli_schema_prints_json() -> None:
    """schema prints the JSON Schema, stable and parseable."""
    result = run_cli("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == json_schema()
    assert result.stdout == run_cli("schema").stdout


def test_tier_budget_must_be_above_zero() -> None:
    """A 0% budget share (a burn-rate threshold of 0, so the first failed event would fire)
    is an error at the tier's budget field."""
    p = one(
        MINIMAL
        + "alerting:\n  tiers:\n    - {severity: critical, long: 1h, short: 5m, budget: 0%}\n"
    )
    assert (p.line, p.path) == (5, "alerting.tiers[0].budget")
    assert "above 0%" in p.message


def test_durations_are_whole_milliseconds() -> None:
    """A duration below Prometheus's millisecond resolution is an error, not a silent
    rounding in the generated rules."""
    found = problems(MINIMAL + "stream:\n  timeouts:\n    dial: 0.5ms\n    first_token: 1.0005s\n")
    assert [p.path for p in found] == ["stream.timeouts.dial", "stream.timeouts.first_token"]
    assert all("whole number of milliseconds" in p.message for p in found)


def test_cross_check_messages_print_durations_as_written() -> None:
    """Timeout and backoff cross-checks print durations in the spec's units (2h, not 7200s)."""
    found = problems(
        MINIMAL
        + "stream:\n  timeouts: {stream_idle: 2h}\n  retry: {base_backoff: 2m, max_backoff: 5s}\n"
    )
    assert [p.message for p in found] == [
        "stream_idle (2h) must not exceed total (45s)",
        "base_backoff (2m) must not exceed max_backoff (5s)",
    ]


def test_selector_values_that_break_alert_templates_are_located_errors() -> None:
    """Selector values with '{{', '}}' or a backquote (which would break the generated alert
    templates) are reported at their own key, with the other selector problems."""
    found = problems(MINIMAL + 'selector:\n  job: "a`b"\n  env: "{{ x }}"\n  ok: fine\n')
    assert [(p.line, p.path) for p in found] == [(4, "selector.job"), (5, "selector.env")]
    assert "'`'" in found[0].message and "'{{' and '}}'" in found[1].message


def test_duplicate_slo_name_is_reported_even_when_the_first_slo_is_invalid() -> None:
    """A repeated SLO name is reported alongside the first SLO's own error, and pydantic's
    messages read like ours (lower case)."""
    found = problems(
        MINIMAL
        + "slos:\n"
        + "  - {name: ttft, objective: 95, indicator: {errors: {}}}\n"
        + "  - {name: ttft, objective: 99%, indicator: {errors: {}}}\n"
        + "alerting:\n  failure_classes:\n    retry-storm: {threshold: -1}\n"
    )
    assert [p.path for p in found] == [
        "slos[0].objective",
        "slos[1].name",
        "alerting.failure_classes.retry-storm.threshold",
    ]
    assert "duplicate SLO name 'ttft' (first used by slos[0])" in found[1].message
    assert found[2].message == "input should be greater than or equal to 0"


def test_links_must_be_absolute_urls_alert_templates_accept() -> None:
    """links.runbooks and links.grafana must be absolute http(s) URLs without template
    braces; each problem is reported at its own field."""
    found = problems(
        MINIMAL + "links:\n  runbooks: runbooks.example.com/x\n  grafana: 'https://g/{{x}}'\n"
    )
    assert [(p.line, p.path) for p in found] == [(4, "links.runbooks"), (5, "links.grafana")]
    assert "absolute http(s) URL" in found[0].message
    assert "alert templates reject" in found[1].message
    ok = parse_spec(MINIMAL + "links: {runbooks: 'https://wiki.example.com/rb/'}\n", "s.yaml")
    assert ok.links.runbooks == "https://wiki.example.com/rb/"


@pytest.mark.parametrize(
    "tiers",
    ["[]", "[{severity: warning, long: 1h, short: 5m, budget: 2%, enabled: false}]"],
)
def test_at_least_one_burn_rate_tier_must_be_enabled(tiers: str) -> None:
    """No enabled tier would leave every SLO without an alert (and its runbook unreachable):
    an error at alerting.tiers."""
    p = one(MINIMAL + f"alerting:\n  tiers: {tiers}\n")
    assert (p.line, p.path) == (4, "alerting.tiers")
    assert "at least one burn-rate tier must be enabled" in p.message


def test_enabled_tiers_need_distinct_windows() -> None:
    """Two enabled tiers on the same long/short windows (however written) are an error at the
    second one; a disabled duplicate is fine."""
    p = one(
        MINIMAL
        + "alerting:\n  tiers:\n"
        + "    - {severity: critical, long: 1h, short: 5m, budget: 2%}\n"
        + "    - {severity: info, long: 60m, short: 300s, budget: 1%, enabled: false}\n"
        + "    - {severity: warning, long: 60m, short: 300s, budget: 1%}\n"
    )
    assert (p.line, p.path) == (7, "alerting.tiers[2].long")
    assert "tiers[0] already alerts on the windows 1h/5m" in p.message
