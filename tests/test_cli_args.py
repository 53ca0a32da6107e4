"""Argument validation: a bad number on the command line or in ``Upstream()`` is one clear
message (exit 2 on the command line, ValueError in Python), never a traceback."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from steadystream import cli
from steadystream.simulate import Upstream


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steadystream", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_metrics_port_out_of_range_is_a_usage_error() -> None:
    """`demo --metrics-port 70000` exits 2 naming the option, instead of an OverflowError
    traceback."""
    done = _run("demo", "--metrics-port", "70000")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "--metrics-port" in done.stderr and "0-65535" in done.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["demo", "--metrics-port", "-1"], "--metrics-port"),
        (["demo", "--metrics-port", "http"], "--metrics-port"),
        (["demo", "--duration", "nan"], "--duration"),
        (["demo", "--duration", "inf"], "--duration"),
        (["demo", "--duration", "-3"], "--duration"),
        (["demo", "--streams", "0"], "--streams"),
        (["demo", "--streams", "10000001"], "--streams"),
        (["demo", "--slow-consumers", "nan"], "--slow-consumers"),
        (["demo", "--slow-consumers", "1.5"], "--slow-consumers"),
        (["simulate", "--port", "65536"], "--port"),
        (["simulate", "--token-interval", "nan"], "--token-interval"),
        (["simulate", "--first-token-latency", "-1s"], "--first-token-latency"),
    ],
)
@pytest.mark.timeout(60)  # a bad value that slipped through would start a demo
def test_bad_numbers_exit_2_with_the_option_named(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each bad value is refused before anything starts: exit 2, the option named."""
    try:
        code = cli.main(args)
    except SystemExit as exc:  # argparse's own usage error
        code = int(exc.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"port": 70000}, "port"),
        ({"port": -1}, "port"),
        ({"port": "8080"}, "port"),
        ({"port": True}, "port"),
        ({"seed": 1.5}, "seed"),
        ({"token_interval": -0.1}, "token_interval"),
        ({"token_interval": math.nan}, "token_interval"),
        ({"first_token_latency": math.inf}, "first_token_latency"),
        ({"first_token_latency": "1s"}, "first_token_latency"),
        ({"first_token_latency": "100ms"}, "first_token_latency"),
        ({"token_interval": True}, "token_interval"),
        ({"record_requests": "yes"}, "record_requests"),
        ({"max_stored": 0}, "max_stored"),
        ({"max_stored_bytes": -1}, "max_stored_bytes"),
        ({"profile": ["flaky"]}, "profile"),
        ({"profile": "nope"}, "unknown fault profile"),
    ],
)
def test_upstream_refuses_bad_arguments_at_construction(
    kwargs: dict[str, object], needle: str
) -> None:
    """Upstream() checks its arguments when built, with a ValueError naming the argument,
    instead of failing later inside the server thread."""
    with pytest.raises(ValueError, match=needle):
        Upstream(**kwargs)  # type: ignore[arg-type]


def test_upstream_accepts_its_documented_range() -> None:
    """The edges of every range are accepted: port 0 and 65535, zero pacing, one stored."""
    up = Upstream(port=65535, token_interval=0, first_token_latency=0.0, max_stored=1)
    assert up.max_stored == 1 and up.token_interval == 0
    assert Upstream(port=0, seed=-3).seed == -3
