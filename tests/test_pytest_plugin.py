"""The simulator's pytest plugin: its dependency is the ``pytest`` extra, and without
pytest-asyncio it stops pytest with one line naming the extra."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = 'pytest_plugins = ["steadystream.simulate.pytest_plugin"]\n'
TESTS = textwrap.dedent(
    """
    import httpx

    def test_sync(upstream):
        assert httpx.get(upstream.base_url + "/responses/none", timeout=30).status_code == 404

    async def test_async(aupstream):
        async with httpx.AsyncClient(timeout=30) as client:
            resp = await client.get(aupstream.base_url + "/responses/none")
        assert resp.status_code == 404
    """
)
# Runs pytest with pytest_asyncio unimportable, exactly as when it is not installed: every
# import of it raises ModuleNotFoundError.
WITHOUT_ASYNCIO = textwrap.dedent(
    """
    import sys

    class NotInstalled:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name.split(".")[0] == "pytest_asyncio":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled)
    import pytest
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider"]))
    """
)


def project(tmp_path: Path) -> Path:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_up.py").write_text(TESTS)
    # An empty ini stops pytest from reading this repository's configuration.
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    return tmp_path


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_pytest_extra_declares_pytest_asyncio() -> None:
    """pyproject's ``pytest`` extra holds pytest and pytest-asyncio."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extra = meta["project"]["optional-dependencies"]["pytest"]
    names = {req.split(">")[0].split("=")[0].split("<")[0].strip() for req in extra}
    assert {"pytest", "pytest-asyncio"} <= names


def test_plugin_fixtures_run_with_pytest_asyncio(tmp_path: Path) -> None:
    """With pytest-asyncio present, upstream and aupstream serve a real upstream."""
    out = run(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "pytest_asyncio.plugin"],
        project(tmp_path),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout


def test_plugin_without_pytest_asyncio_fails_in_one_line(tmp_path: Path) -> None:
    """Without pytest-asyncio: pytest stops (usage error, exit 4) with one line naming the
    extra, and no traceback."""
    out = run(["-c", WITHOUT_ASYNCIO], project(tmp_path))
    assert out.returncode == 4, out.stdout + out.stderr
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert lines == [
        "ERROR: steadystream.simulate.pytest_plugin needs pytest-asyncio (for the aupstream "
        "fixture): pip install 'steadystream[pytest]'"
    ]
