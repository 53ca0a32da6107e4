"""``steadystream generate``: render_all, runbook links both ways, atomic writes, --check."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

import steadystream as ss
from steadystream import cli
from steadystream import conventions as c
from steadystream.generate import (
    GENERATED_MARKER,
    OWNED_DIRS,
    Source,
    check_output,
    render_all,
    source_for,
    write_output,
)
from steadystream.runbooks import INDEX
from steadystream.spec import spec_digest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "chat-gateway"
EXAMPLE_SPEC = EXAMPLE / "slo.yaml"

SPEC_TEXT = """\
version: 1
service: chat-gateway
selector: {job: chat-gateway}
"""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "slo.yaml"
    path.write_text(SPEC_TEXT)
    return path


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (empty when root does not exist)."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _generate(*args: str) -> int:
    return cli.main(["generate", *args])


def _alert_rules(files: dict[str, str], service: str) -> list[dict[str, Any]]:
    data = yaml.safe_load(files[f"{c.ALERTS_DIR}/{service}.rules.yaml"])
    return [r for g in data["groups"] for r in g["rules"] if "alert" in r]


# ----------------------------------------------------------------------------- render_all
def test_render_all_combines_rules_dashboards_and_runbooks() -> None:
    """render_all returns the alerts, both dashboards and every runbook, sorted by path."""
    spec = ss.default_spec("chat-gateway")
    files = render_all(spec, Source("slo.yaml", "a" * 64))
    assert list(files) == sorted(files)
    tops = {p.split("/", 1)[0] for p in files}
    assert tops == set(OWNED_DIRS)
    assert {p for p in files if p.startswith("dashboards/")} == {
        f"dashboards/chat-gateway-{board}.json" for board in c.BOARDS
    }
    for fc in c.FAILURE_CLASSES:
        assert c.failure_class_runbook(fc) in files
    for slo in spec.slos:
        assert c.slo_runbook(slo.name) in files
    for text in files.values():
        assert c.generated_header("slo.yaml", "a" * 64) in text
        assert text.endswith("\n")
    assert render_all(spec, Source("slo.yaml", "a" * 64)) == files


@pytest.mark.parametrize(
    "spec_path",
    [None, EXAMPLE_SPEC, ROOT / "tests" / "golden" / "alerts" / "edge" / "slo.yaml"],
    ids=["default", "example", "class-disabled"],
)
def test_runbook_links_resolve_both_ways(spec_path: Path | None) -> None:
    """Every alert's runbook_url is a generated runbook, and every runbook (but the index,
    and the runbook of a class whose alerts the spec disables) is the runbook_url of at least
    one alert."""
    spec = ss.default_spec("chat-gateway") if spec_path is None else ss.load_spec(spec_path)
    files = render_all(spec, Source("slo.yaml", "0" * 64))
    base = spec.links.runbooks
    linked: set[str] = set()
    for alert in _alert_rules(files, spec.service):
        url = alert["annotations"]["runbook_url"]
        if base is None:
            path = url
        else:
            assert url.startswith(base.rstrip("/") + "/"), url
            path = f"{c.RUNBOOKS_DIR}/{url[len(base.rstrip('/')) + 1 :]}"
        assert path in files, f"{alert['alert']} links {url}, which is not generated"
        linked.add(path)
    runbooks = {p for p in files if p.startswith(f"{c.RUNBOOKS_DIR}/")} - {INDEX}
    disabled = {
        c.failure_class_runbook(fc)
        for fc, o in spec.alerting.failure_classes.items()
        if not o.enabled
    }
    assert runbooks - linked == disabled, "runbooks no alert links to"
    assert len(runbooks) == len(c.FAILURE_CLASSES) + len(spec.slos)


@pytest.mark.parametrize("spec_path", [None, EXAMPLE_SPEC], ids=["default", "example"])
def test_dashboard_links_open_an_existing_panel(spec_path: Path | None) -> None:
    """Every alert's dashboard_url names a generated board's uid and one of its panel ids."""
    import json
    from urllib.parse import parse_qs, urlsplit

    spec = ss.default_spec("chat-gateway") if spec_path is None else ss.load_spec(spec_path)
    files = render_all(spec, Source("slo.yaml", "0" * 64))
    panels: dict[str, set[int]] = {}
    for path, text in files.items():
        if path.startswith(f"{c.DASHBOARDS_DIR}/"):
            board = json.loads(text)
            stack = list(board["panels"])
            ids = set()
            while stack:
                panel = stack.pop()
                ids.add(panel["id"])
                stack.extend(panel.get("panels", []))
            panels[board["uid"]] = ids
    for alert in _alert_rules(files, spec.service):
        url = urlsplit(alert["annotations"]["dashboard_url"])
        uid = url.path.rsplit("/", 1)[1]
        assert uid in panels, alert
        assert int(parse_qs(url.query)["viewPanel"][0]) in panels[uid], alert
        if spec.links.grafana:
            assert alert["annotations"]["dashboard_url"].startswith(spec.links.grafana.rstrip("/"))


def test_source_name_is_the_spec_path_relative_to_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header names the spec relative to DIR, whatever the working directory."""
    (tmp_path / "deploy" / "gen").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    spec = ss.default_spec("svc")
    a = source_for("deploy/slo.yaml", "deploy/gen", spec)
    monkeypatch.chdir(tmp_path / "deploy")
    b = source_for("slo.yaml", "gen", spec)
    assert a == b == Source.from_spec("../slo.yaml", spec)
    assert source_for("slo.yaml", ".", spec).name == "slo.yaml"


# --------------------------------------------------------------------------- the CLI
def test_generate_writes_the_tree_and_check_is_then_clean(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """generate writes alerts/, dashboards/ and runbooks/; --check right after exits 0."""
    out = tmp_path / "out"
    assert _generate(str(spec_file), "--out", str(out)) == 0
    assert "wrote" in capsys.readouterr().out
    spec = ss.load_spec(spec_file)
    expected = render_all(spec, source_for(spec_file, out, spec))
    assert _snapshot(out) == {p: t.encode() for p, t in expected.items()}
    assert (
        (out / "alerts" / "chat-gateway.rules.yaml")
        .read_text()
        .startswith("# " + c.generated_header("../slo.yaml", spec_digest(spec)))
    )
    assert _generate(str(spec_file), "--out", str(out), "--check") == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "up to date" in captured.err


def test_check_on_a_missing_dir_lists_every_file_and_writes_nothing(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--check against an empty DIR exits 1, diffs every file from /dev/null, writes nothing."""
    out = tmp_path / "out"
    assert _generate(str(spec_file), "--out", str(out), "--check") == 1
    assert not out.exists()
    captured = capsys.readouterr()
    assert "--- /dev/null\n+++ b/alerts/chat-gateway.rules.yaml\n" in captured.out
    assert f"would be added: {out / 'runbooks' / 'retry-storm.md'}" in captured.err
    assert "is stale" in captured.err


def test_check_shows_a_unified_diff_of_a_stale_file(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand-edited generated file makes --check exit 1 with a diff of the edit."""
    out = tmp_path / "out"
    assert _generate(str(spec_file), "--out", str(out)) == 0
    rules = out / "alerts" / "chat-gateway.rules.yaml"
    rules.write_text(rules.read_text().replace("for: 15m", "for: 9m", 1))
    before = _snapshot(out)
    capsys.readouterr()
    assert _generate(str(spec_file), "--out", str(out), "--check") == 1
    captured = capsys.readouterr()
    assert "--- a/alerts/chat-gateway.rules.yaml\n+++ b/alerts/chat-gateway.rules.yaml\n" in (
        captured.out
    )
    assert "-        for: 9m\n" in captured.out and "+        for: 15m\n" in captured.out
    assert "would change" in captured.err
    assert _snapshot(out) == before  # --check writes nothing


def test_spec_change_makes_check_fail_until_regenerated(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Editing the spec makes DIR stale (headers carry its sha256); generate fixes it."""
    out = tmp_path / "out"
    assert _generate(str(spec_file), "--out", str(out)) == 0
    spec_file.write_text(SPEC_TEXT + "period: 30d\n")
    assert _generate(str(spec_file), "--out", str(out), "--check") == 1
    assert "> 14.4" in capsys.readouterr().out
    assert _generate(str(spec_file), "--out", str(out)) == 0
    assert _generate(str(spec_file), "--out", str(out), "--check") == 0


def test_stale_generated_files_are_removed_hand_written_ones_kept(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A generated file the spec no longer produces is reported and removed; a hand-written
    file in an owned subdirectory, and anything else in DIR, is left alone."""
    out = tmp_path / "out"
    assert _generate(str(spec_file), "--out", str(out)) == 0
    stale = out / "runbooks" / "slo-old-name.md"
    stale.write_text(f"<!-- {c.generated_header('slo.yaml', '0' * 64)} -->\n# old\n")
    mine = out / "alerts" / "team-extra.rules.yaml"
    mine.write_text("groups: []\n")
    other = out / "README.md"
    other.write_text("ours\n")
    capsys.readouterr()
    assert _generate(str(spec_file), "--out", str(out), "--check") == 1
    captured = capsys.readouterr()
    assert "--- a/runbooks/slo-old-name.md\n+++ /dev/null\n" in captured.out
    assert "would be removed" in captured.err and "team-extra" not in captured.err
    assert _generate(str(spec_file), "--out", str(out)) == 0
    assert not stale.exists()
    assert mine.read_text() == "groups: []\n"
    assert other.read_text() == "ours\n"
    assert _generate(str(spec_file), "--out", str(out), "--check") == 0


def test_invalid_spec_prints_located_errors_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid spec fails like validate (file:line:col: path: message), exit 1, no DIR."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nservice: chat-gateway\nperiod: soon\n")
    out = tmp_path / "out"
    assert _generate(str(bad), "--out", str(out)) == 1
    assert not out.exists()
    err = capsys.readouterr().err
    assert f"{bad}:3:9: period: invalid duration" in err
    assert cli.main(["validate", str(bad)]) == 1
    assert capsys.readouterr().err == err
    assert _generate(str(tmp_path / "missing.yaml"), "--out", str(out)) == 1
    assert "no such file" in capsys.readouterr().err
    assert not out.exists()


def test_render_failure_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renderer that fails after the others have run (the last one, runbooks, raising)
    fails with a message and leaves the output directory exactly as it was."""
    import steadystream.generate

    spec = tmp_path / "slo.yaml"
    spec.write_text(SPEC_TEXT)
    out = tmp_path / "out"
    assert _generate(str(spec), "--out", str(out)) == 0
    before = _snapshot(out)
    spec.write_text(SPEC_TEXT.replace("{job: chat-gateway}", "{job: chat-gateway-2}"))

    def fail(*_: object) -> dict[str, str]:
        raise RuntimeError("template exploded")

    monkeypatch.setattr(steadystream.generate, "render_runbooks", fail)
    capsys.readouterr()
    assert _generate(str(spec), "--out", str(out)) == 1
    assert "cannot generate: RuntimeError: template exploded" in capsys.readouterr().err
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "slo.yaml"]


# ----------------------------------------------------------------------- atomic writes
def _spec_with_period(period: str) -> ss.Spec:
    return ss.Spec.model_validate({"version": 1, "service": "chat-gateway", "period": period})


def _files() -> dict[str, str]:
    return render_all(ss.default_spec("chat-gateway"), Source("slo.yaml", "0" * 64))


@pytest.mark.parametrize("fail_at", range(1, 7))
def test_a_failed_rename_leaves_the_directory_as_it_was(tmp_path: Path, fail_at: int) -> None:
    """Whichever of the six swap renames fails, the old tree is restored byte for byte and
    no temporary directory is left behind."""
    out = tmp_path / "out"
    old = _files()
    write_output(out, old)
    (out / "notes.txt").write_text("keep\n")
    before = _snapshot(out)
    new = render_all(_spec_with_period("30d"), Source("slo.yaml", "1" * 64))
    calls = 0

    def flaky_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        nonlocal calls
        calls += 1
        if calls == fail_at:
            raise OSError(28, "No space left on device (injected)")
        os.replace(src, dst)

    with pytest.raises(OSError, match="injected"):
        write_output(out, new, replace=flaky_replace)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    write_output(out, new)  # and a clean retry succeeds
    assert (out / "alerts" / "chat-gateway.rules.yaml").read_text() == new[
        "alerts/chat-gateway.rules.yaml"
    ]
    assert (out / "notes.txt").read_text() == "keep\n"


def test_a_failure_while_writing_the_new_tree_writes_nothing(tmp_path: Path) -> None:
    """If writing the temporary tree fails (a path that is both file and directory), DIR
    is not even created and the temporary directory is gone."""
    out = tmp_path / "out"
    files = {**_files(), "alerts/x": "a\n", "alerts/x/y": "b\n"}
    with pytest.raises(OSError):
        write_output(out, files)
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_paths_outside_the_owned_subdirectories(tmp_path: Path) -> None:
    """Only alerts/, dashboards/ and runbooks/ may be written; nothing is when one path is bad."""
    for bad in ("../escape.yaml", "/etc/x", "alerts/../../x", "notes.md", "alerts"):
        with pytest.raises(ValueError, match="refusing to write"):
            write_output(tmp_path / "out", {"alerts/ok.yaml": "x\n", bad: "x\n"})
        with pytest.raises(ValueError, match="refusing to write"):
            check_output(tmp_path / "out", {bad: "x\n"})
    assert list(tmp_path.iterdir()) == []


def test_generated_marker_is_the_header_prefix() -> None:
    """The marker that tells generated files from hand-written ones is in every header."""
    assert c.generated_header("a.yaml", "f" * 64).startswith(GENERATED_MARKER)
    assert GENERATED_MARKER == "generated by steadystream from "


# ----------------------------------------------------------------------- the example
def test_committed_example_does_not_drift() -> None:
    """Regenerating examples/chat-gateway from its slo.yaml changes nothing (the CI gate
    `steadystream generate examples/chat-gateway/slo.yaml --out examples/chat-gateway
    --check`)."""
    spec = ss.load_spec(EXAMPLE_SPEC)
    files = render_all(spec, source_for(EXAMPLE_SPEC, EXAMPLE, spec))
    result = check_output(EXAMPLE, files)
    assert not result.stale, result.summary(str(EXAMPLE)) + "\n" + result.diff[:4000]


def test_example_spec_uses_every_section_of_the_model() -> None:
    """The example sets every top-level section and a disabled tier and class overrides."""
    raw = yaml.safe_load(EXAMPLE_SPEC.read_text())
    assert set(raw) == set(ss.Spec.model_fields)
    # Except stream.shared: it points every process that loads the example at a Redis
    # (docs/instrumentation.md, "Running many workers and hosts", shows the section).
    assert set(raw["stream"]) == set(ss.spec.StreamPolicy.model_fields) - {"shared"}
    assert any(t.get("enabled") is False for t in raw["alerting"]["tiers"])
    overrides = raw["alerting"]["failure_classes"]
    assert {k for o in overrides.values() for k in o} == {"threshold", "for", "severity", "enabled"}


def test_pre_commit_hook_definition_runs_generate_check() -> None:
    """.pre-commit-hooks.yaml ships a hook that runs the generate --check gate."""
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    by_id = {h["id"]: h for h in hooks}
    hook = by_id["steadystream-generate-check"]
    assert hook["entry"].startswith("steadystream generate")
    assert "--check" in hook["entry"] or "--check" in hook.get("args", [])
    assert hook["language"] == "python" and hook["pass_filenames"] is False


def test_a_hand_written_file_in_a_generated_files_place_is_never_overwritten(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """generate refuses (exit 1, nothing written) to replace a file that lacks the generated
    header, such as a team's own runbooks/README.md, and names it."""
    out = tmp_path / "out"
    assert _generate(str(spec_file), "--out", str(out)) == 0
    ours = out / "runbooks" / "README.md"
    ours.write_text("# our on-call index, written by hand\n")
    stale = out / "alerts" / "chat-gateway.rules.yaml"
    stale.write_text(stale.read_text().replace("chat-gateway", "edited"))
    before = _snapshot(out)
    capsys.readouterr()
    assert _generate(str(spec_file), "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert "nothing written" in err and str(ours) in err and "not generated by steadystream" in err
    assert _snapshot(out) == before


def test_check_against_a_file_instead_of_a_directory_says_so(
    spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--check with DIR naming a regular file exits 1 with one line saying so, instead of
    listing every generated file as "would be added"."""
    out = tmp_path / "out"
    out.write_text("not a directory\n")
    assert _generate(str(spec_file), "--out", str(out), "--check") == 1
    captured = capsys.readouterr()
    assert captured.err == f"{out}: cannot check: {out}: exists and is not a directory\n"
    assert captured.out == ""
