"""Runbooks: golden files, StrictUndefined, the spec's numbers, PromQL, links, package data.

Golden files live in tests/golden/runbooks/<service>/. After an intended change to a template
or the context, regenerate them with ``UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_runbooks.py``
and review the diff before committing it.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

import steadystream as ss
from steadystream import conventions as c
from steadystream.alerts import failure_class_signals, names, render_rules, slo_burn_signals
from steadystream.dashboards import panel_index, render_dashboards
from steadystream.generate import Source
from steadystream.runbooks import INDEX, render_runbooks, runbook_paths, runbook_url
from steadystream.runbooks._context import base_context, class_context
from steadystream.runbooks._render import environment
from steadystream.simulate import PROFILES

GOLDEN = Path(__file__).parent / "golden" / "runbooks"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
SOURCE = Source(name="examples/chat-gateway/slo.yaml", sha256="0" * 64)
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMQL_BLOCK = re.compile(r"```promql\n(.*?)\n```", re.S)
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _custom_spec() -> ss.Spec:
    return ss.load_spec(GOLDEN / "in-search-api.yaml")


def _default_spec() -> ss.Spec:
    return ss.default_spec("chat-gateway")


SPECS = [("chat-gateway", _default_spec), ("search-api", _custom_spec)]


@pytest.mark.parametrize(("name", "spec_factory"), SPECS)
def test_golden(name: str, spec_factory: Any) -> None:
    """Rendered runbooks equal the reviewed golden files byte for byte, and no golden is stale."""
    files = render_runbooks(spec_factory(), SOURCE)
    directory = GOLDEN / name
    if UPDATE:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.md"):
            stale.unlink()
        for path, text in files.items():
            (directory / Path(path).name).write_text(text, encoding="utf-8")
    assert sorted(p.name for p in directory.glob("*.md")) == sorted(Path(p).name for p in files)
    for path, text in files.items():
        assert text == (directory / Path(path).name).read_text(encoding="utf-8"), (
            f"{path} differs from its golden file; if intended, rerun with UPDATE_GOLDEN=1"
        )


@pytest.mark.parametrize(("name", "spec_factory"), SPECS)
def test_every_failure_class_and_slo_has_a_runbook(name: str, spec_factory: Any) -> None:
    """One runbook per failure class, one per SLO, and the index; nothing else."""
    spec = spec_factory()
    files = render_runbooks(spec, SOURCE)
    expected = (
        {c.failure_class_runbook(fc) for fc in c.FAILURE_CLASSES}
        | {c.slo_runbook(s.name) for s in spec.slos}
        | {INDEX}
    )
    assert set(files) == expected == set(runbook_paths(spec))
    index = files[INDEX]
    for path in expected - {INDEX}:
        assert f"]({Path(path).name})" in index, f"the index does not link {path}"


@pytest.mark.parametrize(("name", "spec_factory"), SPECS)
def test_header_is_an_html_comment_on_the_first_line(name: str, spec_factory: Any) -> None:
    """Every runbook starts with the generated-file header as an HTML comment."""
    header = c.generated_header(SOURCE.name, SOURCE.sha256)
    for path, text in render_runbooks(spec_factory(), SOURCE).items():
        assert text.splitlines()[0] == f"<!-- {header} -->", path
        assert text.endswith("\n") and not text.endswith("\n\n"), path


@pytest.mark.parametrize(("name", "spec_factory"), SPECS)
def test_runbooks_have_the_four_sections(name: str, spec_factory: Any) -> None:
    """Failure-class runbooks have Meaning, Impact, Diagnosis, Mitigation and Reproduce it,
    in that order; SLO runbooks map tiers to urgency."""
    spec = spec_factory()
    files = render_runbooks(spec, SOURCE)
    order = ["## Meaning", "## Impact", "## Diagnosis", "## Mitigation", "## Reproduce it"]
    for fc in c.FAILURE_CLASSES:
        text = files[c.failure_class_runbook(fc)]
        positions = [text.index(h) for h in order]
        assert positions == sorted(positions), fc
        # No section is empty: each heading is followed by text before the next heading.
        for heading in order:
            body = text.split(heading + "\n", 1)[1].split("\n## ", 1)[0]
            assert body.strip(), f"{fc}: empty {heading}"
    for slo in spec.slos:
        text = files[c.slo_runbook(slo.name)]
        for heading in ("## Meaning", "## Impact and urgency by tier", "## Diagnosis"):
            assert heading in text
        assert "page: act now" in text


# ----------------------------------------------------------------------------- StrictUndefined
def test_environment_is_strict_and_loads_packaged_templates() -> None:
    """The environment uses StrictUndefined and reads templates from the package."""
    env = environment()
    assert env.undefined is jinja2.StrictUndefined
    assert isinstance(env.loader, jinja2.PackageLoader)
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("threshold: {{ policy.nope }}").render(policy={"idle": "8s"})


def test_a_missing_context_value_fails_the_render_instead_of_leaving_a_blank() -> None:
    """Dropping one value a template uses raises UndefinedError naming it."""
    spec = _default_spec()
    header = c.generated_header(SOURCE.name, SOURCE.sha256)
    context = class_context(base_context(spec, header, SOURCE.name), c.FC_IDLE_STALL)
    template = environment().get_template(f"fc-{c.FC_IDLE_STALL}.md.j2")
    assert "8s" in template.render(context)  # the full context renders
    policy = dict(context["policy"])
    del policy["idle"]
    with pytest.raises(jinja2.UndefinedError, match="idle"):
        template.render({**context, "policy": policy})
    queries = dict(context["q"])
    del queries["gap_p99_by_model"]
    with pytest.raises(jinja2.UndefinedError, match="gap_p99_by_model"):
        template.render({**context, "q": queries})


def test_templates_ship_as_package_data() -> None:
    """Every template in the source tree is readable from the installed package's resources
    (under `make test` the package is installed non-editable, so this checks the wheel)."""
    source = Path(__file__).parents[1] / "src" / "steadystream" / "runbooks" / "templates"
    packaged = importlib.resources.files("steadystream.runbooks") / "templates"
    names = sorted(p.name for p in source.glob("*.j2"))
    assert names, "no templates found in the source tree"
    for name in names:
        assert (packaged / name).read_text(encoding="utf-8") == (source / name).read_text(
            encoding="utf-8"
        ), name
    for fc in c.FAILURE_CLASSES:
        assert f"fc-{fc}.md.j2" in names


# ------------------------------------------------------------------------- numbers from the spec
def test_runbooks_print_the_specs_own_numbers() -> None:
    """Changing the spec changes the numbers in the runbooks: timeouts, budgets, buffer, tiers."""
    default = render_runbooks(_default_spec(), SOURCE)
    custom = render_runbooks(_custom_spec(), SOURCE)
    expectations = {
        c.FC_IDLE_STALL: ("budget of\n8s", "budget of\n20s"),
        c.FC_FIRST_TOKEN_TIMEOUT: ("first_token budget of\n3s", "first_token budget of\n5s"),
        c.FC_RETRY_STORM: ("(20% of requests plus 1/s)", "(10% of requests plus 1/s)"),
        c.FC_SLOW_CONSUMER: ("the 512KiB cap", "the 1MiB cap"),
        c.FC_TIMEOUT_CASCADE: ("`,\n256 per process", "`,\n64 per process"),
        c.FC_UPSTREAM_RATE_LIMIT: ("(now 50/s", "(now 20/s"),
    }
    for fc, (old, new) in expectations.items():
        path = c.failure_class_runbook(fc)
        assert old in default[path], (fc, old)
        assert new in custom[path], (fc, new)
        assert new not in default[path], (fc, new)
    assert "`pause`" in custom[c.failure_class_runbook(c.FC_SLOW_CONSUMER)]
    # 28d period: 2% in 1h is 13.44x; 30d: 14.4x. The disabled tier is marked.
    assert "| 13.44x |" in default[c.slo_runbook("time-to-first-token")]
    ttft = custom[c.slo_runbook("ttft")]
    assert "| 14.4x |" in ttft and "| 3x |" in ttft
    assert "ticket (disabled)" in ttft
    assert 'le="2000.0"' in ttft
    assert "99.5%" in custom[c.slo_runbook("errors")]


def test_runbook_numbers_follow_a_single_field_change() -> None:
    """Raising only stream_idle moves that number in the idle-stall runbook, and only there."""
    base = ss.default_spec("svc")
    raised = ss.Spec.model_validate(
        {"version": 1, "service": "svc", "stream": {"timeouts": {"stream_idle": "13s"}}}
    )
    before = render_runbooks(base, SOURCE)[c.failure_class_runbook(c.FC_IDLE_STALL)]
    after = render_runbooks(raised, SOURCE)[c.failure_class_runbook(c.FC_IDLE_STALL)]
    assert "13s" in after and "13s" not in before
    assert "13000 ms budget" in after


# ----------------------------------------------------------------------------- PromQL and links
@pytest.mark.parametrize(("name", "spec_factory"), SPECS)
def test_runbook_promql_parses_and_carries_the_selector(
    name: str, spec_factory: Any, tmp_path: Path
) -> None:
    """Every ```promql block parses with promtool and selects the service's series only."""
    spec = spec_factory()
    exprs: list[str] = []
    for path, text in render_runbooks(spec, SOURCE).items():
        for expr in PROMQL_BLOCK.findall(text):
            exprs.append(expr)
            for matchers in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*\{([^}]*)\}", expr):
                for key, value in spec.selector.items():
                    assert f'{key}="{value}"' in matchers, (path, expr)
                assert f'service="{spec.service}"' in matchers, (path, expr)
            assert "$" not in expr, f"{path}: a Grafana variable in a paste-ready query"
    assert len(exprs) >= 40
    rules = [{"record": f"runbook:q{i}", "expr": e} for i, e in enumerate(sorted(set(exprs)))]
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"groups": [{"name": "rb", "rules": rules}]}))
    assert Path(PROMTOOL).exists(), "promtool is required (Debian package 'prometheus')"
    result = subprocess.run(
        [PROMTOOL, "check", "rules", "r.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("name", "spec_factory"), SPECS)
def test_links_between_runbooks_resolve(name: str, spec_factory: Any) -> None:
    """Every relative Markdown link in a runbook names another generated runbook."""
    files = render_runbooks(spec_factory(), SOURCE)
    names = {Path(p).name for p in files}
    for path, text in files.items():
        for target in MD_LINK.findall(text):
            if target.startswith(("http://", "https://", "/")):
                continue
            assert target in names, f"{path} links to missing {target}"


def test_panel_links_match_the_dashboards() -> None:
    """Runbooks link panels by the ids and uids the rendered dashboards really have."""
    spec = _custom_spec()  # has links.grafana: panel links are absolute Markdown links
    files = render_runbooks(spec, SOURCE)
    refs = panel_index(spec)
    boards = {
        json.loads(text)["uid"]: {p["id"]: p["title"] for p in json.loads(text)["panels"]}
        for text in render_dashboards(spec, SOURCE).values()
    }
    seen = 0
    for text in files.values():
        for url in MD_LINK.findall(text):
            if not url.startswith("https://grafana.example.com/d/"):
                continue
            uid = url.split("/d/")[1].split("?")[0]
            panel_id = int(url.rsplit("viewPanel=", 1)[1])
            assert panel_id in boards[uid], url
            assert any(r.url == url for r in refs.values())
            seen += 1
    assert seen >= len(c.FAILURE_CLASSES) + 3 * len(spec.slos)
    default = render_runbooks(_default_spec(), SOURCE)
    assert "dashboard uid `ss-" in default[c.failure_class_runbook(c.FC_RETRY_STORM)]


def test_dashboard_runbook_links_resolve_to_generated_runbooks() -> None:
    """Every runbook a dashboard panel links to is generated, relative or under links.runbooks."""
    for spec in (_default_spec(), _custom_spec()):
        urls = {runbook_url(spec, p) for p in render_runbooks(spec, SOURCE)}
        for text in render_dashboards(spec, SOURCE).values():
            for panel in json.loads(text)["panels"]:
                for link in panel.get("links", []):
                    assert link["url"] in urls, link["url"]


def test_each_failure_class_says_how_to_reproduce_it() -> None:
    """Runbooks name real simulator profiles (`steadystream simulate --faults <profile>`)."""
    files = render_runbooks(_default_spec(), SOURCE)
    for fc in c.FAILURE_CLASSES:
        text = files[c.failure_class_runbook(fc)]
        reproduce = text.split("## Reproduce it\n", 1)[1].split("\n## ", 1)[0]
        profiles = re.findall(r"--faults ([\w-]+)", reproduce)
        if fc != c.FC_SLOW_CONSUMER:  # the demo runs under the runbook's own spec
            assert f"steadystream demo --spec {SOURCE.name} " in reproduce, fc
        if fc == c.FC_NO_TRAFFIC:
            continue
        assert profiles, fc
        for profile in profiles:
            assert profile in PROFILES, f"{fc}: unknown profile {profile}"


def test_slo_runbooks_list_likely_classes_most_likely_first() -> None:
    """Latency SLOs start with first-token-timeout, recovery with resume-failure, errors with
    upstream-errors."""
    files = render_runbooks(_default_spec(), SOURCE)

    def first_class(slo: str) -> str:
        text = files[c.slo_runbook(slo)]
        return re.search(r"^1\. \[[^\]]+\]\(([\w-]+)\.md\)", text, re.M).group(1)  # type: ignore[union-attr]

    assert first_class("time-to-first-token") == c.FC_FIRST_TOKEN_TIMEOUT
    assert first_class("recovery-time") == c.FC_RESUME_FAILURE
    assert first_class("stream-errors") == c.FC_UPSTREAM_ERRORS


def test_failure_class_runbooks_show_their_alerts_with_spec_overrides() -> None:
    """Each runbook lists its class's alerts with the deployed threshold, severity and for:,
    including spec overrides, and pastes the alerts' own expressions (PromQL written once)."""
    spec = _custom_spec()
    files = render_runbooks(spec, SOURCE)
    signals = failure_class_signals(spec)
    for fc, sigs in signals.items():
        text = files[c.failure_class_runbook(fc)]
        for sig in sigs:
            assert f"| `{sig.alert}` |" in text, (fc, sig.alert)
            assert f"```promql\n{sig.expr}\n```" in text, (fc, sig.alert)
    slow = files[c.failure_class_runbook(c.FC_SLOW_CONSUMER)]
    assert "> 5% | critical | 2m |" in slow  # threshold 0.05, severity and for overridden
    default_slow = render_runbooks(_default_spec(), SOURCE)[
        c.failure_class_runbook(c.FC_SLOW_CONSUMER)
    ]
    assert "> 1% | warning | 10m |" in default_slow
    broken = files[c.failure_class_runbook(c.FC_BROKEN_CHUNKS)]
    assert c.FC_BROKEN_CHUNKS not in signals
    assert "Alerting for this class is disabled in the spec" in broken


def test_slo_runbooks_show_each_enabled_tiers_alert_expression() -> None:
    """SLO runbooks name the burn alert and paste each enabled tier's expression."""
    spec = _custom_spec()
    files = render_runbooks(spec, SOURCE)
    for slo in spec.slos:
        text = files[c.slo_runbook(slo.name)]
        assert f"Alert `{names.ALERT_SLO_BURN}`" in text
        burn = slo_burn_signals(spec)[slo.name]
        assert len(burn) == 2  # the third tier is disabled
        for sig in burn:
            assert f"```promql\n{sig.expr}\n```" in text


def test_every_alert_runbook_url_resolves_and_every_runbook_is_reached() -> None:
    """Both directions: each alert's runbook_url is a generated runbook, and each generated
    runbook (index aside) is the runbook_url of at least one alert."""
    for spec in (
        _default_spec(),
        ss.load_spec(GOLDEN.parent / "dashboards" / "in-search-api.yaml"),
    ):
        runbooks = render_runbooks(spec, SOURCE)
        urls = {runbook_url(spec, path): path for path in runbooks}
        rules_text = next(
            text
            for path, text in render_rules(spec, SOURCE).items()
            if path.endswith(".rules.yaml")
        )
        reached: set[str] = set()
        for group in yaml.safe_load(rules_text)["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                url = rule["annotations"]["runbook_url"]
                assert url in urls, f"{rule['alert']}: {url} is not a generated runbook"
                reached.add(urls[url])
        assert reached == set(runbooks) - {INDEX}, set(runbooks) - {INDEX} - reached


def test_render_is_deterministic() -> None:
    """Two renders of the same spec are identical."""
    assert render_runbooks(_default_spec(), SOURCE) == render_runbooks(_default_spec(), SOURCE)


@pytest.mark.parametrize(
    "module",
    [
        "steadystream.runbooks",
        "steadystream.dashboards",
        "steadystream.alerts",
        "steadystream.catalog.links",
        "steadystream.catalog.alerting",
        "steadystream.catalog.classes",
    ],
)
def test_imports_in_any_order(module: str) -> None:
    """The generators and the catalog they share can be imported in any order."""
    code = (
        f"import {module}\n"
        "from steadystream.runbooks import render_runbooks\n"
        "from steadystream.dashboards import render_dashboards\n"
        "from steadystream.alerts import failure_class_signals\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


def _cells(row: str) -> int:
    """Columns of a Markdown table row (escaped pipes do not split cells)."""
    return len(re.split(r"(?<!\\)\|", row.strip().strip("|")))


@pytest.mark.parametrize(("name", "spec_factory"), SPECS)
def test_markdown_tables_are_well_formed(name: str, spec_factory: Any) -> None:
    """Every table row has as many cells as its header, so no value breaks a table."""
    for path, text in render_runbooks(spec_factory(), SOURCE).items():
        header: int | None = None
        for line in text.splitlines():
            if not line.startswith("|"):
                header = None
                continue
            if header is None:
                header = _cells(line)
            assert _cells(line) == header, f"{path}: {line}"


def test_table_cells_escape_pipes() -> None:
    """The `cell` filter escapes a pipe and folds newlines, keeping a row one row."""
    env = environment()
    assert env.from_string("| {{ v|cell }} |").render(v="a|b\nc") == "| a\\|b c |"


def test_alert_tables_state_each_condition_as_the_rules_compare_it() -> None:
    """A yes/no alert (absent metrics) is listed without a meaningless "> 0", and the SLO
    table's error-ratio column is the printed burn factor times the budget (0.9333%, not
    0.933333%), so the two columns agree with the rule digit for digit."""
    spec = _default_spec()
    files = render_runbooks(spec, SOURCE)
    no_traffic = files[c.failure_class_runbook(c.FC_NO_TRAFFIC)]
    row = next(
        line for line in no_traffic.splitlines() if line.startswith("| `StreamMetricsAbsent`")
    )
    assert "> 0" not in row and f"no {c.REQUESTS_TOTAL} series matches" in row
    assert "`StreamMetricsAbsent`:" in no_traffic
    errors = files[c.slo_runbook("stream-errors")]
    row = next(line for line in errors.splitlines() if line.startswith("| warning | 3d / 6h"))
    assert "| 0.9333x | 0.9333% |" in row


def test_slo_runbooks_define_a_good_event_in_a_sentence() -> None:
    """Each SLO runbook says what one good event is: a histogram observation within the
    threshold, or an event of the total counter that the errors counter did not count."""
    files = render_runbooks(_default_spec(), SOURCE)
    text = " ".join(files[c.slo_runbook("time-to-first-token")].split())
    assert (
        f"a good event is an observation of {c.FIRST_TOKEN_LATENCY} at or below 2500ms "
        '(bucket le="2500.0")' in text
    )
    text = " ".join(files[c.slo_runbook("stream-errors")].split())
    assert (
        f"a good event is an event counted in {c.REQUESTS_TOTAL} but not in {c.ERRORS_TOTAL}."
        in text
    )


def test_failure_class_runbooks_name_the_labels_the_alerts_really_carry() -> None:
    """With a selector that pins `service` to a scrape-side value, the runbooks name that
    value (what the alerts carry), not the spec's service name."""
    spec = ss.Spec.model_validate(
        {"version": 1, "service": "chat-gateway", "selector": {"job": "gw", "service": "gw-prod"}}
    )
    text = " ".join(
        render_runbooks(spec, SOURCE)[c.failure_class_runbook(c.FC_RETRY_STORM)].split()
    )
    labels = {k: v for k, v in ss.alerts.matcher_labels(spec).items()}
    assert labels == {"job": "gw", "service": "gw-prod"}
    assert (
        'Alerts for this class carry the labels `failure_class="retry-storm"` and '
        '`job="gw",service="gw-prod"`.' in text
    )
    assert 'service="chat-gateway"' not in text
