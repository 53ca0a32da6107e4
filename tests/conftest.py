"""Shared test set-up: the fault-injecting upstream fixtures (``upstream``, ``aupstream``,
``upstream_factory``) from :mod:`steadystream.simulate.pytest_plugin`, and ``promtool``."""

import shutil

import pytest

pytest_plugins = ["steadystream.simulate.pytest_plugin"]


@pytest.fixture(scope="session")
def promtool() -> str:
    """The real promtool (Debian's ``prometheus`` package): a failure, never a skip, when
    missing."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH: install the Debian 'prometheus' package "
            "(`make tools` does) — these tests never skip"
        )
    return path
