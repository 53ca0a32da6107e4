"""``generate --format kubernetes``: PrometheusRule objects checked against the real CRD's
OpenAPI schema (tests/data/kubernetes/, from prometheus-operator) and their ``spec.groups``
against the real promtool, dashboard ConfigMaps in the shape Kubernetes accepts, a
kustomization listing them, labels and namespace from the spec's ``kubernetes`` section, and
the same header, ownership and all-or-nothing rules as the files format."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from steadystream import cli
from steadystream import conventions as c
from steadystream.generate import render_all, source_for
from steadystream.kubernetes import CONFIGMAP_MAX_BYTES, KubernetesError, object_name, package
from steadystream.spec import SpecError, load_spec, parse_spec, spec_digest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SPEC = ROOT / "examples" / "chat-gateway" / "slo.yaml"
DATA = Path(__file__).resolve().parent / "data" / "kubernetes"

# ----------------------------------------------------------------------------- the schemas
_CRD = yaml.safe_load((DATA / "monitoring.coreos.com_prometheusrules.yaml").read_text())
(_V1,) = [v for v in _CRD["spec"]["versions"] if v["name"] == "v1"]


def _python_patterns(node: Any) -> Any:
    """The schema with its Go (RE2) patterns as Python patterns: RE2 takes an inline flag
    after ``^`` (``^(?i)(abort|warn)?$``), Python only at the very start (``(?i)^...``)."""
    if isinstance(node, dict):
        out = {k: _python_patterns(v) for k, v in node.items()}
        pattern = out.get("pattern")
        if isinstance(pattern, str) and pattern.startswith("^(?i)"):
            out["pattern"] = "(?i)^" + pattern[len("^(?i)") :]
        return out
    if isinstance(node, list):
        return [_python_patterns(v) for v in node]
    return node


PROMETHEUS_RULE_SCHEMA: dict[str, Any] = _python_patterns(_V1["schema"]["openAPIV3Schema"])

# Kubernetes' own rules for object metadata (apimachinery's validation), as JSON Schema: the
# CRD leaves metadata to the API server, which checks these.
_DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_QUALIFIED_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$"
)
OBJECT_META_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "labels"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": _DNS1123_SUBDOMAIN, "maxLength": 253},
        "namespace": {"type": "string", "pattern": _DNS1123_LABEL, "maxLength": 63},
        "labels": {
            "type": "object",
            "propertyNames": {"pattern": _QUALIFIED_KEY},
            "additionalProperties": {
                "type": "string",
                "maxLength": 63,
                "pattern": r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$",
            },
        },
        "annotations": {
            "type": "object",
            "propertyNames": {"pattern": _QUALIFIED_KEY},
            "additionalProperties": {"type": "string"},
        },
    },
}
CONFIG_MAP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "data"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "v1"},
        "kind": {"const": "ConfigMap"},
        "metadata": OBJECT_META_SCHEMA,
        "data": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": r"^[-._a-zA-Z0-9]+$", "maxLength": 253},
            "additionalProperties": {"type": "string"},
        },
    },
}
KUSTOMIZATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "resources"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "kustomize.config.k8s.io/v1beta1"},
        "kind": {"const": "Kustomization"},
        "namespace": {"type": "string", "pattern": _DNS1123_LABEL, "maxLength": 63},
        "resources": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    },
}


def _validate(doc: Any, schema: dict[str, Any]) -> None:
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def test_the_committed_crd_is_the_prometheus_rule_crd() -> None:
    """The test data is prometheus-operator's PrometheusRule CRD, with its notice."""
    assert _CRD["kind"] == "CustomResourceDefinition"
    assert _CRD["spec"]["group"] == "monitoring.coreos.com"
    assert _CRD["spec"]["names"]["kind"] == "PrometheusRule"
    notice = (DATA / "NOTICE").read_text()
    assert "prometheus-operator/prometheus-operator" in notice and "Apache" in notice
    # The schema does reject a malformed rule (a group without a name, a bad duration).
    bad = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "spec": {}}
    for groups in ([{"rules": []}], [{"name": "g", "interval": "1 minute", "rules": []}]):
        bad["spec"] = {"groups": groups}
        assert list(jsonschema.Draft7Validator(PROMETHEUS_RULE_SCHEMA).iter_errors(bad))


# --------------------------------------------------------------------------------- helpers
def _generate(*args: str) -> int:
    return cli.main(["generate", *args])


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _objects(k8s_dir: Path) -> dict[str, dict[str, Any]]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(k8s_dir.glob("*.yaml"))}


def _check_output_dir(out: Path, files_out: Path, promtool: str, tmp_path: Path) -> None:
    """Every object in ``out/kubernetes`` passes its schema; each PrometheusRule's groups are
    the files format's groups and pass promtool; each ConfigMap holds the dashboard's JSON."""
    objects = _objects(out / "kubernetes")
    kustomization = objects.pop("kustomization.yaml")
    _validate(kustomization, KUSTOMIZATION_SCHEMA)
    assert kustomization["resources"] == sorted(objects)
    rules = [o for o in objects.values() if o["kind"] == "PrometheusRule"]
    maps = [o for o in objects.values() if o["kind"] == "ConfigMap"]
    assert len(rules) + len(maps) == len(objects)
    rule_files = sorted((files_out / "alerts").glob("*.yaml"))
    dashboards = sorted((files_out / "dashboards").glob("*.json"))
    assert len(rules) == len(rule_files) >= 1 and len(maps) == len(dashboards) >= 2
    for obj, rule_file in zip(
        sorted(rules, key=lambda o: o["metadata"]["name"]), rule_files, strict=True
    ):
        _validate(obj, PROMETHEUS_RULE_SCHEMA)
        _validate(obj["metadata"], OBJECT_META_SCHEMA)
        assert obj["apiVersion"] == "monitoring.coreos.com/v1"
        groups = obj["spec"]["groups"]
        # x-kubernetes-list-type: map keyed by name (the API server's check, not JSON Schema's)
        assert len({g["name"] for g in groups}) == len(groups)
        assert groups == yaml.safe_load(rule_file.read_text())["groups"]
        extracted = tmp_path / f"{obj['metadata']['name']}.groups.yaml"
        extracted.write_text(yaml.safe_dump({"groups": groups}))
        run = subprocess.run(
            [promtool, "check", "rules", str(extracted)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "SUCCESS" in run.stdout
    by_key = {key: (cm, text) for cm in maps for key, text in cm["data"].items()}
    assert sorted(by_key) == [d.name for d in dashboards]
    for dashboard in dashboards:
        cm, text = by_key[dashboard.name]
        _validate(cm, CONFIG_MAP_SCHEMA)
        assert text == dashboard.read_text()
        assert json.loads(text)["uid"]
        stem = dashboard.name.removesuffix(".json").lower()
        assert cm["metadata"]["name"] == re.sub(r"[._]", "-", stem)


@pytest.fixture(scope="module")
def example_outputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The example spec generated in both formats."""
    root = tmp_path_factory.mktemp("example")
    k8s, files = root / "k8s", root / "files"
    assert _generate(str(EXAMPLE_SPEC), "--out", str(k8s), "--format", "kubernetes") == 0
    assert _generate(str(EXAMPLE_SPEC), "--out", str(files)) == 0
    return k8s, files


# ----------------------------------------------------------------------------- the example
def test_example_objects_pass_the_crd_schema_and_promtool(
    example_outputs: tuple[Path, Path], promtool: str, tmp_path: Path
) -> None:
    k8s, files = example_outputs
    _check_output_dir(k8s, files, promtool, tmp_path)


def test_example_layout_and_defaults(example_outputs: tuple[Path, Path]) -> None:
    """kubernetes/ holds the objects and kustomization; the Alertmanager config and runbooks
    are the files format's, byte for byte; no promtool tests; the sidecar label by default."""
    k8s, files = example_outputs
    tree, files_tree = _tree(k8s), _tree(files)
    assert sorted(p for p in tree if p.startswith("kubernetes/")) == [
        "kubernetes/chat-gateway-rules.prometheusrule.yaml",
        "kubernetes/chat-gateway-slo-overview.configmap.yaml",
        "kubernetes/chat-gateway-stream-internals.configmap.yaml",
        "kubernetes/kustomization.yaml",
    ]
    kept = {p: b for p, b in tree.items() if not p.startswith("kubernetes/")}
    assert kept == {
        p: b for p, b in files_tree.items() if p.startswith(("alertmanager/", "runbooks/"))
    }
    objects = _objects(k8s / "kubernetes")
    assert "namespace" not in objects["kustomization.yaml"]
    rule = objects["chat-gateway-rules.prometheusrule.yaml"]
    assert rule["metadata"] == {
        "name": "chat-gateway-rules",
        "labels": {
            "app.kubernetes.io/managed-by": "steadystream",
            "app.kubernetes.io/part-of": "chat-gateway",
        },
    }
    board = objects["chat-gateway-slo-overview.configmap.yaml"]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "annotations" not in board["metadata"]


def test_every_file_starts_with_the_header(example_outputs: tuple[Path, Path]) -> None:
    """Kubernetes manifests are YAML: the header is their first line, a comment."""
    k8s, _ = example_outputs
    digest = spec_digest(load_spec(EXAMPLE_SPEC))
    for path in sorted((k8s / "kubernetes").iterdir()):
        first = path.read_text().split("\n", 1)[0]
        assert first.startswith("# generated by steadystream from "), path
        assert f"(sha256 {digest}) — do not edit" in first, path


def test_the_dashboard_configmap_stays_a_readable_block(
    example_outputs: tuple[Path, Path],
) -> None:
    """The dashboard JSON is a literal block in the ConfigMap, so a diff shows JSON lines."""
    k8s, _ = example_outputs
    text = (k8s / "kubernetes" / "chat-gateway-slo-overview.configmap.yaml").read_text()
    assert "  chat-gateway-slo-overview.json: |\n    {\n" in text


# -------------------------------------------------------------- the spec's kubernetes section
LABELLED = """\
version: 1
service: Chat_Gateway
selector: {job: chat-gateway}
kubernetes:
  namespace: monitoring
  rule_labels: {release: kube-prometheus-stack, prometheus: k8s}
  dashboard_labels: {grafana.example.com/dashboard: "yes"}
  dashboard_folder: LLM gateway
  folder_annotation: grafana.example.com/folder
"""


def test_namespace_labels_and_folder_come_from_the_spec(tmp_path: Path, promtool: str) -> None:
    spec = tmp_path / "slo.yaml"
    spec.write_text(LABELLED)
    k8s, files = tmp_path / "k8s", tmp_path / "files"
    assert _generate(str(spec), "--out", str(k8s), "--format", "kubernetes") == 0
    assert _generate(str(spec), "--out", str(files)) == 0
    _check_output_dir(k8s, files, promtool, tmp_path)
    objects = _objects(k8s / "kubernetes")
    assert objects["kustomization.yaml"]["namespace"] == "monitoring"
    # A service name with capitals and '_' becomes a DNS-1123 name.
    rule = objects["chat-gateway-rules.prometheusrule.yaml"]
    assert rule["metadata"]["namespace"] == "monitoring"
    assert rule["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "steadystream",
        "app.kubernetes.io/part-of": "Chat_Gateway",
        "prometheus": "k8s",
        "release": "kube-prometheus-stack",
    }
    for name in ("chat-gateway-slo-overview", "chat-gateway-stream-internals"):
        meta = objects[f"{name}.configmap.yaml"]["metadata"]
        assert meta["name"] == name and meta["namespace"] == "monitoring"
        assert meta["labels"]["grafana.example.com/dashboard"] == "yes"
        assert "grafana_dashboard" not in meta["labels"]
        assert meta["annotations"] == {"grafana.example.com/folder": "LLM gateway"}


def _problems(tmp_path: Path, kubernetes: str) -> list[str]:
    spec = tmp_path / "bad.yaml"
    spec.write_text(f"version: 1\nservice: svc\nkubernetes:\n{kubernetes}")
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    return str(info.value).splitlines()


@pytest.mark.parametrize(
    ("kubernetes", "where", "says"),
    [
        ("  namespace: Monitoring\n", "4:14: kubernetes.namespace", "DNS-1123 label"),
        (f"  namespace: {'n' * 64}\n", "4:14: kubernetes.namespace", "longer than 63"),
        (
            "  rule_labels:\n    release: ok\n    bad key: x\n",
            "6:14: kubernetes.rule_labels.bad key",
            "the name must be",
        ),
        (
            f"  rule_labels:\n    release: {'v' * 64}\n",
            "5:14: kubernetes.rule_labels.release",
            "at most 63 letters",
        ),
        (
            "  dashboard_labels:\n    Example.COM/dashboard: '1'\n",
            "5:28: kubernetes.dashboard_labels.Example.COM/dashboard",
            "prefix before '/' must be a DNS-1123 subdomain",
        ),
        (
            "  dashboard_labels:\n    grafana_dashboard: -1-\n",
            "5:24: kubernetes.dashboard_labels.grafana_dashboard",
            "label value '-1-'",
        ),
        (
            "  dashboard_labels:\n    grafana_dashboard: 1\n",
            "5:24: kubernetes.dashboard_labels.grafana_dashboard",
            "valid string",
        ),
        ("  folder_annotation: /folder\n", "4:22: kubernetes.folder_annotation", "prefix"),
        ("  dashboard_folder: a/b\n", "4:21: kubernetes.dashboard_folder", "without '/'"),
        ("  namespaces: monitoring\n", "4:3: kubernetes.namespaces", ""),
    ],
)
def test_bad_kubernetes_section_is_a_located_error(
    tmp_path: Path, kubernetes: str, where: str, says: str
) -> None:
    """Every field of the section is checked with Kubernetes' own syntax, and the error names
    the file, line, column and field."""
    lines = _problems(tmp_path, kubernetes)
    hits = [line for line in lines if f"bad.yaml:{where}:" in line]
    assert hits, lines
    assert says in hits[0]


def test_the_section_is_optional_and_leaves_the_digest_alone() -> None:
    """A spec without the section, or with its defaults written out, has the digest it had
    before the section existed: nothing generated from it goes stale."""
    plain = "version: 1\nservice: svc\n"
    spelled = plain + "kubernetes: {dashboard_labels: {grafana_dashboard: '1'}}\n"
    assert spec_digest(plain) == spec_digest(spelled)
    assert spec_digest(plain + "kubernetes: {namespace: ns}\n") != spec_digest(plain)


# ---------------------------------------------------------------------- names and limits
def test_object_names_are_made_valid_or_refused() -> None:
    assert object_name("chat-gateway.rules.yaml") == "chat-gateway-rules"
    assert object_name("Chat_Gateway-slo-overview.json") == "chat-gateway-slo-overview"
    for bad in ("-svc.rules.yaml", "svc-.json", "a" * 254 + ".json", "é.json"):
        with pytest.raises(KubernetesError, match=re.escape(bad)):
            object_name(bad)


def test_a_file_whose_name_cannot_be_an_object_name_fails_the_whole_package() -> None:
    """package() names the file it cannot turn into an object and returns nothing."""
    spec = parse_spec("version: 1\nservice: svc\n")
    source = source_for("slo.yaml", ".", spec)
    files = render_all(spec, source)
    files["dashboards/-extra.json"] = files["dashboards/svc-slo-overview.json"]
    with pytest.raises(KubernetesError, match=r"-extra\.json.*DNS-1123"):
        package(spec, source, files)


def _many_slos(count: int) -> str:
    slos = "".join(
        f"  - name: errors-{i}\n    objective: 99%\n"
        "    indicator: {errors: {errors: stream_errors_total, total: stream_requests_total}}\n"
        for i in range(count)
    )
    return f"version: 1\nservice: big\nselector: {{job: big}}\nslos:\n{slos}"


def test_a_dashboard_over_one_mib_is_an_error_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """80 SLOs make an SLO overview over the 1 MiB a ConfigMap holds: generate names the
    dashboard and the limit, exits 1, and leaves the earlier output exactly as it was."""
    spec, out = tmp_path / "slo.yaml", tmp_path / "out"
    spec.write_text(_many_slos(3))
    assert _generate(str(spec), "--out", str(out), "--format", "kubernetes") == 0
    before = _tree(out)
    spec.write_text(_many_slos(80))
    capsys.readouterr()
    assert _generate(str(spec), "--out", str(out), "--format", "kubernetes") == 1
    err = capsys.readouterr().err
    assert "dashboards/big-slo-overview.json: dashboard 'big · SLO overview'" in err
    assert f"more than the {CONFIGMAP_MAX_BYTES} bytes (1 MiB)" in err
    assert err.rstrip().endswith("nothing written") and len(err.strip().splitlines()) == 1
    assert _tree(out) == before
    # The files format has no such limit: the same spec generates there.
    assert _generate(str(spec), "--out", str(tmp_path / "files")) == 0


# ------------------------------------------------------------ ownership, --check, layout
def test_check_and_ownership_in_kubernetes_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--check is up to date right after generate and stale after a change of meaning; a
    hand-written file in kubernetes/ is kept, one where kustomization.yaml goes is refused."""
    spec, out = tmp_path / "slo.yaml", tmp_path / "out"
    spec.write_text("version: 1\nservice: svc\n")
    fmt = ("--format", "kubernetes")
    assert _generate(str(spec), "--out", str(out), *fmt) == 0
    assert _generate(str(spec), "--out", str(out), *fmt, "--check") == 0
    mine = out / "kubernetes" / "patch.yaml"
    mine.write_text("# our own kustomize patch\n")
    spec.write_text("version: 1\nservice: svc\nkubernetes: {namespace: obs}\n")
    capsys.readouterr()
    assert _generate(str(spec), "--out", str(out), *fmt, "--check") == 1
    captured = capsys.readouterr()
    assert "+namespace: obs" in captured.out and "is stale" in captured.err
    assert _generate(str(spec), "--out", str(out), *fmt) == 0
    assert mine.read_text() == "# our own kustomize patch\n"
    assert _generate(str(spec), "--out", str(out), *fmt, "--check") == 0
    # A renamed service: the old objects are generate's and go; the hand-written file stays.
    spec.write_text("version: 1\nservice: other\n")
    assert _generate(str(spec), "--out", str(out), *fmt) == 0
    names = sorted(p.name for p in (out / "kubernetes").iterdir())
    assert names == [
        "kustomization.yaml",
        "other-rules.prometheusrule.yaml",
        "other-slo-overview.configmap.yaml",
        "other-stream-internals.configmap.yaml",
        "patch.yaml",
    ]
    # Hand-written where the kustomization goes: refused, nothing written.
    kustomization = out / "kubernetes" / "kustomization.yaml"
    kustomization.write_text("resources: [patch.yaml]\n")
    before = _tree(out)
    capsys.readouterr()
    assert _generate(str(spec), "--out", str(out), *fmt) == 1
    err = capsys.readouterr().err
    assert f"{kustomization}: exists and is a file not generated by steadystream" in err
    assert _tree(out) == before


def test_both_formats_share_one_directory(tmp_path: Path) -> None:
    """Each format owns its own subdirectories (the Alertmanager config and runbooks are the
    same in both): generating one never removes the other, and --check passes for both."""
    spec, out = tmp_path / "slo.yaml", tmp_path / "out"
    spec.write_text("version: 1\nservice: svc\n")
    assert _generate(str(spec), "--out", str(out)) == 0
    files_tree = _tree(out)
    assert _generate(str(spec), "--out", str(out), "--format", "kubernetes") == 0
    both = _tree(out)
    assert {p: b for p, b in both.items() if not p.startswith("kubernetes/")} == files_tree
    assert _generate(str(spec), "--out", str(out), "--check") == 0
    assert _generate(str(spec), "--out", str(out), "--check", "--format", "kubernetes") == 0
    assert _generate(str(spec), "--out", str(out)) == 0
    assert _tree(out) == both


def test_a_directory_of_specs_in_kubernetes_format(
    tmp_path: Path, promtool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory gives DIR/<service>/kubernetes/ per spec, each complete and valid."""
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "a.yaml").write_text(
        "version: 1\nservice: alpha\nselector: {job: alpha}\n"
        "kubernetes: {namespace: team-a, rule_labels: {release: prom}}\n"
    )
    (specs / "b.yml").write_text("version: 1\nservice: beta\nselector: {job: beta}\n")
    k8s, files = tmp_path / "k8s", tmp_path / "files"
    assert _generate(str(specs), "--out", str(k8s), "--format", "kubernetes") == 0
    assert "wrote" in capsys.readouterr().out
    assert _generate(str(specs), "--out", str(files)) == 0
    assert sorted(p.name for p in k8s.iterdir()) == ["alpha", "beta"]
    for service in ("alpha", "beta"):
        _check_output_dir(k8s / service, files / service, promtool, tmp_path)
    alpha = _objects(k8s / "alpha" / "kubernetes")
    assert alpha["kustomization.yaml"]["namespace"] == "team-a"
    assert alpha["alpha-rules.prometheusrule.yaml"]["metadata"]["labels"]["release"] == "prom"
    assert "namespace" not in _objects(k8s / "beta" / "kubernetes")["kustomization.yaml"]
    assert _generate(str(specs), "--out", str(k8s), "--format", "kubernetes", "--check") == 0


def test_an_unknown_format_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "slo.yaml"
    spec.write_text("version: 1\nservice: svc\n")
    with pytest.raises(SystemExit) as info:
        _generate(str(spec), "--out", str(tmp_path / "out"), "--format", "helm")
    assert info.value.code == 2
    assert "invalid choice: 'helm'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="unknown output format 'helm'"):
        render_all(
            parse_spec("version: 1\nservice: svc\n"),
            source_for(spec, tmp_path, parse_spec("version: 1\nservice: svc\n")),
            format="helm",
        )


def test_runbook_links_in_rules_resolve_next_to_the_objects(
    example_outputs: tuple[Path, Path],
) -> None:
    """Runbooks stay files: every relative runbook_url the rules carry names a file the
    Kubernetes format wrote (or the spec's published runbooks URL)."""
    k8s, _ = example_outputs
    spec = load_spec(EXAMPLE_SPEC)
    rule = _objects(k8s / "kubernetes")["chat-gateway-rules.prometheusrule.yaml"]
    urls = {
        r["annotations"]["runbook_url"]
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert urls
    base = spec.links.runbooks
    for url in urls:
        rel = url.removeprefix(base.rstrip("/") + "/") if base else url
        name = rel.rsplit("/", 1)[-1]
        assert (k8s / c.RUNBOOKS_DIR / name).is_file(), url
