"""Sloth and OpenSLO specs in: `steadystream import`, and validate/generate reading them directly.

The inputs are the real example files of the Sloth and OpenSLO repositories (tests/data/*/NOTICE),
and the generated rules go through the real promtool.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from steadystream.generate import render_all, source_for
from steadystream.importer import import_text, load_any, to_yaml
from steadystream.spec import SpecError, json_schema, parse_spec, spec_digest

DATA = Path(__file__).parent / "data"
SLOTH = DATA / "sloth"
OPENSLO = DATA / "openslo"

#: Sloth's page and ticket tiers over its 30 day period: (long, short) -> burn-rate factor.
SLOTH_TIERS = {("1h", "5m"): 14.4, ("6h", "30m"): 6.0, ("1d", "2h"): 3.0, ("3d", "6h"): 1.0}

IMPORTABLE = [
    SLOTH / "getting-started.yml",
    SLOTH / "kubernetes-apiserver.yml",
    SLOTH / "home-wifi.yml",
    SLOTH / "no-alerts.yml",
    SLOTH / "openslo-getting-started.yml",
    SLOTH / "openslo-kubernetes-apiserver.yml",
    OPENSLO / "prometheus-v1.yaml",
]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steadystream", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _import(path: Path) -> Any:
    return import_text(path.read_text(), str(path))


def _source_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _generate(path: Path, out: Path) -> dict[str, str]:
    spec, _ = load_any(path)
    files = render_all(spec, source_for(path, out, spec))
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    return files


def _burn_alerts(files: dict[str, str]) -> list[dict[str, Any]]:
    rules = yaml.safe_load(next(t for p, t in files.items() if p.startswith("alerts/")))
    return [
        r
        for g in rules["groups"]
        for r in g["rules"]
        if "alert" in r
        and r["labels"].get("failure_class") == "error-budget-burn"
        and "long" in r["labels"]
    ]


def _recorded(files: dict[str, str], record: str, slo: str) -> str:
    rules = yaml.safe_load(next(t for p, t in files.items() if p.startswith("alerts/")))
    for g in rules["groups"]:
        for r in g["rules"]:
            if r.get("record") == record and r["labels"].get("slo") == slo:
                return str(r["expr"])
    raise KeyError((record, slo))


@pytest.mark.parametrize("path", IMPORTABLE, ids=lambda p: p.name)
def test_example_imports_validates_and_promtool_accepts_its_rules(
    path: Path, tmp_path: Path, promtool: str
) -> None:
    """Each mappable example imports; the printed spec validates as the same spec; generate
    on the source file writes rules that `promtool check rules` accepts and tests that
    `promtool test rules` passes."""
    imported = _import(path)
    printed = to_yaml(imported, str(path))
    assert printed.startswith(f"# Imported by `steadystream import` from {path}")
    assert spec_digest(parse_spec(printed)) == spec_digest(imported.spec)
    # The JSON Schema (for editors) knows every field an imported spec uses.
    jsonschema.Draft202012Validator(json_schema()).validate(yaml.safe_load(printed))
    files = _generate(path, tmp_path)
    rules = next(tmp_path.glob("alerts/*.rules.yaml"))
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = next(tmp_path.glob("rule-tests/*.yaml"))
    run = subprocess.run(
        [promtool, "test", "rules", tests.name],
        cwd=tests.parent,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # Generic SLOs are left out of the generated tests, and the file says so.
    names = ", ".join(s.name for s in imported.spec.slos)
    assert (
        f"# Not tested here: the burn and outage alerts of {names}"
        in files[str(tests.relative_to(tmp_path))]
    )


@pytest.mark.parametrize(
    "path",
    [SLOTH / "getting-started.yml", SLOTH / "kubernetes-apiserver.yml", SLOTH / "home-wifi.yml"],
    ids=lambda p: p.name,
)
def test_sloth_alerts_keep_the_windows_objectives_names_and_labels(
    path: Path, tmp_path: Path
) -> None:
    """Every Sloth SLO gets Sloth's four tiers (windows and burn factors of a 30d period), its
    objective, its alert name, and its service, SLO, alerting and page/ticket labels."""
    source = _source_docs(path)[0]
    files = _generate(path, tmp_path)
    alerts = _burn_alerts(files)
    for slo in source["slos"]:
        name = slo["name"]
        mine = [a for a in alerts if a["labels"]["slo"] == name]
        windows = {(a["labels"]["long"], a["labels"]["short"]): a for a in mine}
        assert set(windows) == set(SLOTH_TIERS)
        for key, factor in SLOTH_TIERS.items():
            alert = windows[key]
            assert alert["expr"].endswith(f"> {factor:g}"), alert["expr"]
            assert alert["alert"] == slo["alerting"]["name"]
            page = key in (("1h", "5m"), ("6h", "30m"))
            override = slo["alerting"]["page_alert" if page else "ticket_alert"]
            want = {
                **{k: str(v) for k, v in source.get("labels", {}).items()},
                **slo.get("labels", {}),
                **slo["alerting"].get("labels", {}),
                **override["labels"],
            }
            assert want.items() <= alert["labels"].items()
            for k, v in slo["alerting"].get("annotations", {}).items():
                assert alert["annotations"][k] == v
        objective = slo["objective"] / 100
        assert _recorded(files, "steadystream:slo_objective", name) == f"vector({objective:g})"


def test_openslo_objectives_and_period_carry_over(tmp_path: Path) -> None:
    """OpenSLO: each objective is an SLO with its target, the time window is the period, and
    good/total queries become good_query/total_query."""
    imported = _import(SLOTH / "openslo-kubernetes-apiserver.yml")
    spec = imported.spec
    assert spec.period == 30 * 86400
    targets = {s.name: s.objective for s in spec.slos}
    assert targets == {
        "requests-availability-openslo": 0.999,
        "requests-latency-openslo-0": 0.99,
        "requests-latency-openslo-1": 0.999,
    }
    latency = spec.slo("requests-latency-openslo-1").indicator
    assert latency.good_query is not None and 'le="5"' in latency.good_query
    v1 = _import(OPENSLO / "prometheus-v1.yaml").spec
    assert v1.period == 28 * 86400
    ref = v1.slo("checkout-availability")
    assert ref.objective == 0.995 and ref.alerts.labels == {"team": "payments"}
    assert (
        ref.indicator.good_query == 'sum(rate(checkout_requests_total{code!~"5.."}[{{.window}}]))'
    )
    inline = v1.slo("checkout-latency")
    assert inline.objective == 0.99
    assert inline.indicator.errors_query is not None and inline.indicator.values == "count"


def test_no_alerts_disables_page_and_ticket(tmp_path: Path) -> None:
    """Sloth's page_alert/ticket_alert disable: the SLO keeps its recording rules and has no
    burn or outage alert."""
    files = _generate(SLOTH / "no-alerts.yml", tmp_path)
    rules = yaml.safe_load(files["alerts/myapp.rules.yaml"])
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert not [a for a in alerts if a["labels"].get("slo") == "http-availability"]
    assert _recorded(files, "steadystream:slo_objective", "http-availability") == "vector(0.9999)"


@pytest.mark.parametrize(
    ("path", "where", "needle"),
    [
        (
            SLOTH / "plugin-getting-started.yml",
            (13, 7),
            "slos[0].sli.plugin: cannot map sli.plugin",
        ),
        (SLOTH / "raw-home-wifi.yml", (26, 7), "slos[0].sli.raw: cannot map sli.raw"),
        (SLOTH / "slo-plugin-getting-started.yml", (7, 1), "slo_plugins: cannot map slo_plugins"),
        (
            SLOTH / "slo-plugin-getting-started.yml",
            (21, 5),
            "slos[0].plugins: cannot map plugins",
        ),
        (SLOTH / "multifile.yml", (34, 1), "a second Sloth document"),
        (
            OPENSLO / "budgeting-method-occurences-slo.yaml",
            (15, 7),
            "spec.indicator.spec.thresholdMetric: cannot map thresholdMetric",
        ),
        (
            OPENSLO / "budgeting-method-ratio-timeslices.yaml",
            (18, 19),
            "metricSource.type: cannot map a 'Any' metric source",
        ),
        (
            OPENSLO / "budgeting-method-timeslices-slo.yaml",
            (28, 7),
            "spec.timeWindow[0].isRolling: cannot map a calendar-aligned window",
        ),
        (
            OPENSLO / "treat-low-traffic-as-equally-important-timeslices-slo.yaml",
            (30, 20),
            "spec.budgetingMethod: cannot map budgetingMethod 'Timeslices'",
        ),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else None,
)
def test_what_cannot_be_mapped_is_a_located_error_naming_the_field(
    path: Path, where: tuple[int, int], needle: str
) -> None:
    """Plugin and raw SLIs, several services, threshold metrics, non-Prometheus sources,
    calendar windows and timeslice budgeting are refused at the source field, never dropped."""
    with pytest.raises(SpecError) as info:
        _import(path)
    found = [p for p in info.value.problems if needle in str(p)]
    assert found, str(info.value)
    assert (found[0].file, found[0].line, found[0].column) == (str(path), *where)


def test_unknown_sloth_field_is_refused() -> None:
    """A Sloth field the importer does not know is an error naming it, not dropped."""
    text = (
        (SLOTH / "getting-started.yml")
        .read_text()
        .replace("    alerting:\n", "    info_labels: {a: b}\n    alerting:\n", 1)
    )
    with pytest.raises(SpecError) as info:
        import_text(text, "s.yml")
    assert "s.yml:" in str(info.value)
    assert "slos[0].info_labels: Sloth SLO field 'info_labels' cannot be mapped" in str(info.value)


def test_spec_problems_of_an_imported_file_point_at_the_source() -> None:
    """A value the spec refuses (an SLO name with capitals, a query without the window
    placeholder) is reported at its line in the Sloth file."""
    text = (SLOTH / "getting-started.yml").read_text()
    text = text.replace('name: "requests-availability"', 'name: "Requests"')
    text = text.replace("[{{.window}}]))\n        total_query", "[5m]))\n        total_query")
    with pytest.raises(SpecError) as info:
        import_text(text, "s.yml")
    lines = {(p.line, p.path) for p in info.value.problems}
    assert (9, "slos[0].name") in lines, str(info.value)
    assert (14, "slos[0].indicator.errors_query") in lines, str(info.value)


def test_cli_import_round_trips_through_validate(tmp_path: Path) -> None:
    """`steadystream import` prints a spec that `steadystream validate` accepts; `validate`
    and `generate` take the Sloth file itself."""
    src = SLOTH / "kubernetes-apiserver.yml"
    result = run_cli("import", str(src))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "k8s.yaml"
    out.write_text(result.stdout)
    valid = run_cli("validate", str(out), str(src))
    assert valid.returncode == 0, valid.stderr
    assert f"{src}: ok (k8s-apiserver: 2 SLOs, imported from Sloth prometheus/v1)" in valid.stdout
    gen = run_cli("generate", str(src), "--out", str(tmp_path / "gen"))
    assert gen.returncode == 0, gen.stderr
    assert (tmp_path / "gen" / "alerts" / "k8s-apiserver.rules.yaml").is_file()


def test_cli_import_refusal_is_one_line_per_problem_and_no_output() -> None:
    """A file that cannot be mapped: exit 1, located lines on stderr, nothing on stdout."""
    result = run_cli("import", str(SLOTH / "raw-home-wifi.yml"))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"{SLOTH / 'raw-home-wifi.yml'}:26:7: slos[0].sli.raw:")
    assert "Traceback" not in result.stderr


def test_import_of_a_steadystream_spec_is_refused(tmp_path: Path) -> None:
    """`import` says what it reads when given something else."""
    spec = tmp_path / "s.yaml"
    spec.write_text("version: 1\nservice: x\n")
    result = run_cli("import", str(spec))
    assert result.returncode == 1
    assert "not a Sloth (version: prometheus/v1) or OpenSLO" in result.stderr


_WEIRD: list[Any] = [None, 5, "x", [1, [2]], {"a": [1]}, True, 1.5, [], {}, "{{.window}}"]


def _paths(node: Any, loc: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [loc]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*loc, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*loc, i))
    return out


def test_hostile_foreign_files_give_located_errors_never_a_traceback() -> None:
    """Any field of the example files replaced by a value of another type (a list, a mapping,
    a number, null, a template), a whole document included: an import either succeeds or
    raises SpecError with located problems; nothing else escapes."""
    import random

    rng = random.Random(15)
    sources = sorted(SLOTH.glob("*.yml")) + sorted(OPENSLO.glob("*.yaml"))
    service_doc = {"apiVersion": "openslo/v1", "kind": "Service", "metadata": {"name": "checkout"}}
    for _ in range(300):
        path = rng.choice(sources)
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        if path.name == "prometheus-v1.yaml":
            docs.append(dict(service_doc))
        i = rng.randrange(len(docs))
        for _ in range(rng.randint(1, 2)):
            loc = rng.choice(_paths(docs[i]))
            value = rng.choice(_WEIRD)
            if not loc:
                docs[i] = value
                continue
            node = docs[i]
            for part in loc[:-1]:
                node = node[part]
            node[loc[-1]] = value
        text = yaml.safe_dump_all(docs)
        try:
            import_text(text, "f.yaml")
        except SpecError as exc:
            assert exc.problems and all(p.file == "f.yaml" and p.line >= 1 for p in exc.problems)
