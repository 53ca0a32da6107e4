"""The core install: the stream wrapper and exporters run without any extra, and every command
whose extra is missing says in one line which ``pip install 'steadystream[...]'`` it needs.

Checked twice, with the same checks: in the development venv with the extras' modules blocked
by a ``sys.meta_path`` finder (fast), and in a fresh venv holding only ``pip install <repo>``
(what a user gets; one venv build per test session).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from steadystream.cli import COMMAND_EXTRAS, EXIT_MISSING_EXTRA

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "chat-gateway" / "slo.yaml"

#: Modules only extras install (the top-level ones, and OpenTelemetry's SDK and exporters).
EXTRA_MODULES = (
    "grafanalib",
    "jinja2",
    "rich",
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "httpx",
    "httpx2",
    "redis",
    "openai",
    "anthropic",
    "google.genai",
    "starlette",
)

#: Installed as ``sitecustomize`` for the blocked run: the extras' modules cannot be imported.
BLOCKER = textwrap.dedent(
    f"""
    import sys

    BLOCKED = {EXTRA_MODULES!r}


    class _BlockExtras:
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None


    sys.meta_path.insert(0, _BlockExtras())
    """
)

#: Run by the python under test: the runtime on the core install, then one JSON line.
RUNTIME_CHECKS = textwrap.dedent(
    """
    import importlib.util
    import json
    import os
    import sys
    import urllib.request

    from prometheus_client import CollectorRegistry

    import steadystream as ss
    from steadystream.exporters import setup_otlp, start_metrics_server

    report = {}
    missing = []
    for name in json.loads(sys.argv[1]):
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:
            found = False
        if not found:
            missing.append(name)
    report["missing"] = missing

    registry = CollectorRegistry()
    monitor = ss.StreamMonitor(ss.default_spec("core-only"), registry=registry)
    report["items"] = list(monitor.wrap(iter(["Hel", "lo, ", "wörld"]), model="m", provider="p"))
    with start_metrics_server(0, registry=registry) as server:
        with urllib.request.urlopen(server.url, timeout=60) as response:
            scraped = response.read().decode()
    report["bytes_line"] = [
        line for line in scraped.splitlines() if line.startswith("stream_bytes_total{")
    ]
    report["loaded"] = sorted(
        m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in missing)
    )

    try:
        setup_otlp("http://127.0.0.1:4318")
        report["otlp"] = "no error"
    except ImportError as exc:
        report["otlp"] = str(exc)

    os.environ["STEADYSTREAM_REDIS_URL"] = "redis://127.0.0.1:1/0"
    try:
        ss.StreamMonitor(ss.default_spec("shared"), registry=CollectorRegistry())
        report["redis"] = "no error"
    except ImportError as exc:
        report["redis"] = str(exc)

    from steadystream.instrumentation.sse import sse_response

    try:
        sse_response(None, monitor, start=lambda: None)
        report["starlette"] = "no error"
    except ImportError as exc:
        report["starlette"] = str(exc)
    print(json.dumps(report))
    """
)


@dataclass(frozen=True)
class Install:
    """A python and its ``steadystream`` script, with the environment to run them in."""

    python: Path
    script: Path
    env: dict[str, str]


def _run(argv: list[str], install: Install, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=300, env=install.env, cwd=cwd
    )


def check_runtime(install: Install, tmp: Path) -> None:
    proc = _run(
        [str(install.python), "-c", RUNTIME_CHECKS, json.dumps(EXTRA_MODULES)], install, tmp
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    # None of the extras' modules is importable, and the runtime worked without them.
    assert report["missing"] == list(EXTRA_MODULES)
    assert report["items"] == ["Hel", "lo, ", "wörld"]
    (line,) = report["bytes_line"]
    assert 'model="m"' in line and 'provider="p"' in line
    assert float(line.rsplit(" ", 1)[1]) == len("Hello, wörld".encode())
    assert report["loaded"] == []
    assert "pip install 'steadystream[otlp]'" in report["otlp"]
    assert "pip install 'steadystream[redis]'" in report["redis"]
    assert "pip install 'steadystream[starlette]'" in report["starlette"]


def check_cli(install: Install, tmp: Path) -> None:
    out = tmp / "generated"
    commands = {
        "generate": ["generate", str(SPEC), "--out", str(out)],
        "triage": ["triage", "--prometheus", "http://127.0.0.1:9"],
        "demo": ["demo", "--duration", "1"],
    }
    assert set(commands) == set(COMMAND_EXTRAS)
    for command, argv in commands.items():
        extra = COMMAND_EXTRAS[command][0]
        for prefix in ([str(install.script)], [str(install.python), "-m", "steadystream"]):
            proc = _run([*prefix, *argv], install, tmp)
            assert proc.returncode == EXIT_MISSING_EXTRA, (command, proc.stderr)
            assert proc.stdout == ""
            lines = proc.stderr.splitlines()
            assert len(lines) == 1, proc.stderr
            assert lines[0].startswith(f"steadystream {command}: needs the '{extra}' extra")
            assert lines[0].endswith(f"pip install 'steadystream[{extra}]'")
    assert not out.exists()  # nothing written

    # triage --json: the same line on stderr, and a JSON error document on stdout.
    proc = _run([str(install.script), *commands["triage"], "--json"], install, tmp)
    assert proc.returncode == EXIT_MISSING_EXTRA
    assert len(proc.stderr.splitlines()) == 1
    doc = json.loads(proc.stdout)
    assert doc["exit_code"] == EXIT_MISSING_EXTRA
    assert doc["error"]["kind"] == "missing_extra"
    assert "pip install 'steadystream[cli]'" in doc["error"]["message"]

    # The commands of the core install run.
    proc = _run([str(install.script), "validate", str(SPEC)], install, tmp)
    assert proc.returncode == 0, proc.stderr
    assert "ok (chat-gateway" in proc.stdout
    proc = _run([str(install.script), "schema"], install, tmp)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["type"] == "object"


# ----------------------------------------------------------------- blocked, in this venv
@pytest.fixture
def blocked(tmp_path: Path) -> Install:
    site = tmp_path / "block"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("STEADYSTREAM_REDIS_URL", None)
    script = Path(sys.executable).with_name("steadystream")
    return Install(Path(sys.executable), script, env)


def test_runtime_without_extras_blocked(blocked: Install, tmp_path: Path) -> None:
    """import steadystream, wrap a plain iterator, scrape /metrics: no extra is imported."""
    check_runtime(blocked, tmp_path)


def test_cli_without_extras_blocked(blocked: Install, tmp_path: Path) -> None:
    """Each command whose extra is missing: one line naming the pip command, exit 2."""
    check_cli(blocked, tmp_path)


# ------------------------------------------------------------------- a fresh core venv
def _copy_project(dest: Path) -> None:
    """The files a build reads (not the worktree itself: a build writes into its source)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(ROOT / "src", dest / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)


@pytest.fixture(scope="session")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    """``python -m venv`` + ``pip install <project>``: the core install only, built once."""
    base = tmp_path_factory.mktemp("core-install")
    project = base / "project"
    _copy_project(project)
    venv = base / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, capture_output=True
    )
    python = venv / "bin" / "python"
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(project)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"pip install {project} failed:\n{proc.stderr[-4000:]}"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "STEADYSTREAM_REDIS_URL")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    yield Install(python, venv / "bin" / "steadystream", env)


@pytest.mark.timeout(1200)
def test_runtime_in_a_fresh_core_venv(core_venv: Install, tmp_path: Path) -> None:
    """The same runtime checks with the package as a user installs it, without any extra."""
    check_runtime(core_venv, tmp_path)


@pytest.mark.timeout(1200)
def test_cli_in_a_fresh_core_venv(core_venv: Install, tmp_path: Path) -> None:
    """The same command checks with the installed ``steadystream`` script."""
    check_cli(core_venv, tmp_path)
