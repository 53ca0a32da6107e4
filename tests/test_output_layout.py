"""The layout ``generate`` writes, checked by the real consumers.

``DIR/alerts/`` holds nothing but Prometheus rule files, so a ``prometheus.yml`` with
``rule_files: [DIR/alerts/*.yaml]`` loads (``promtool check config`` is what Prometheus runs at
start-up); the promtool tests sit in ``DIR/rule-tests/`` and pass from there; the Alertmanager
configuration in ``DIR/alertmanager/`` passes ``amtool check-config``. Missing tools fail with
the install hint: these tests never skip.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from steadystream import cli
from steadystream import conventions as c
from steadystream.generate import GENERATED_MARKER, OWNED_DIRS
from steadystream.testing import PrometheusError, PrometheusServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SPEC = ROOT / "examples" / "chat-gateway" / "slo.yaml"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not on PATH: `make tools` installs it (Debian packages 'prometheus' "
            "and 'prometheus-alertmanager') — these tests never skip"
        )
    return path


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """A fresh ``steadystream generate`` of the example spec."""
    target = tmp_path / "deploy" / "generated"
    assert cli.main(["generate", str(EXAMPLE_SPEC), "--out", str(target)]) == 0
    return target


def test_each_kind_of_file_has_its_own_directory(out: Path) -> None:
    """alerts/ holds only rule files (every file a document of rule groups), rule-tests/ the
    promtool tests and alertmanager/ the Alertmanager config; all are owned by generate."""
    assert {c.ALERTS_DIR, c.RULE_TESTS_DIR, c.ALERTMANAGER_DIR} <= set(OWNED_DIRS)
    assert len(set(OWNED_DIRS)) == len(OWNED_DIRS)
    alerts = sorted((out / c.ALERTS_DIR).iterdir())
    assert [p.name for p in alerts] == ["chat-gateway.rules.yaml"]
    for path in alerts:
        assert set(yaml.safe_load(path.read_text())) == {"groups"}
    tests = sorted((out / c.RULE_TESTS_DIR).iterdir())
    assert [p.name for p in tests] == ["chat-gateway.rules.test.yaml"]
    assert yaml.safe_load(tests[0].read_text())["rule_files"] == [
        f"../{c.ALERTS_DIR}/chat-gateway.rules.yaml"
    ]
    am = sorted((out / c.ALERTMANAGER_DIR).iterdir())
    assert [p.name for p in am] == ["chat-gateway.yaml"]
    assert {"route", "receivers", "inhibit_rules"} <= set(yaml.safe_load(am[0].read_text()))


def test_promtool_check_config_loads_the_alerts_directory_by_glob(out: Path) -> None:
    """A prometheus.yml with ``rule_files: [generated/alerts/*.yaml]`` passes ``promtool check
    config`` (it fails when a test file or an Alertmanager snippet sits in alerts/)."""
    promtool = _tool("promtool")
    config = out.parent / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"evaluation_interval": "1m"},
                "rule_files": [f"{out.name}/{c.ALERTS_DIR}/*.yaml"],
                "scrape_configs": [
                    {"job_name": "chat-gateway", "static_configs": [{"targets": ["x:9464"]}]}
                ],
            }
        )
    )
    proc = _run(promtool, "check", "config", config.name, cwd=config.parent)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "SUCCESS: 1 rule files found" in output, output
    assert f"{c.ALERTS_DIR}/chat-gateway.rules.yaml" in output, output

    # The same check fails when anything but rules is in the directory: the test guards the
    # layout, not just the happy path.
    stray = out / c.ALERTS_DIR / "chat-gateway.rules.test.yaml"
    shutil.copy(out / c.RULE_TESTS_DIR / "chat-gateway.rules.test.yaml", stray)
    proc = _run(promtool, "check", "config", config.name, cwd=config.parent)
    assert proc.returncode != 0, proc.stdout + proc.stderr


def test_rule_tests_pass_from_their_own_directory(out: Path) -> None:
    """``promtool test rules rule-tests/*.yaml`` run from the output directory finds the rules
    through ``../alerts/`` and passes."""
    promtool = _tool("promtool")
    tests = sorted(p.relative_to(out).as_posix() for p in (out / c.RULE_TESTS_DIR).iterdir())
    proc = _run(promtool, "test", "rules", *tests, cwd=out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_amtool_accepts_the_alertmanager_config(out: Path) -> None:
    """The generated alertmanager/<service>.yaml is a complete, valid Alertmanager config."""
    amtool = _tool("amtool")
    path = out / c.ALERTMANAGER_DIR / "chat-gateway.yaml"
    proc = _run(amtool, "check-config", str(path), cwd=out)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "SUCCESS" in output, output
    rules = yaml.safe_load(path.read_text())["inhibit_rules"]
    assert f"{len(rules)} inhibit rules" in output, output


def test_generate_removes_the_old_layout_it_wrote(tmp_path: Path) -> None:
    """Output of an older steadystream (test file and inhibit snippet inside alerts/) is
    cleaned up by the next generate, because it carries the generated header; a hand-written
    rule file there stays."""
    out = tmp_path / "out"
    (out / c.ALERTS_DIR).mkdir(parents=True)
    header = f"# {c.generated_header('slo.yaml', '0' * 64)}\n"
    assert GENERATED_MARKER in header
    old = [
        out / c.ALERTS_DIR / "chat-gateway.rules.test.yaml",
        out / c.ALERTS_DIR / "chat-gateway.alertmanager-inhibit.yaml",
    ]
    for path in old:
        path.write_text(header + "x: 1\n")
    mine = out / c.ALERTS_DIR / "team.rules.yaml"
    mine.write_text("groups: []\n")
    assert cli.main(["generate", str(EXAMPLE_SPEC), "--out", str(out)]) == 0
    assert not any(p.exists() for p in old)
    assert mine.read_text() == "groups: []\n"
    assert (out / c.RULE_TESTS_DIR / "chat-gateway.rules.test.yaml").is_file()
    assert (out / c.ALERTMANAGER_DIR / "chat-gateway.yaml").is_file()


def test_prometheus_server_refuses_a_rule_glob_that_matches_nothing(tmp_path: Path) -> None:
    """An empty glob would start a Prometheus with no rules and a test judging nothing."""
    server = PrometheusServer(rule_files=[tmp_path / "alerts" / "*.yaml"], startup_timeout=20)
    with pytest.raises(PrometheusError, match="matches no file"):
        server.start()
    server.stop()
