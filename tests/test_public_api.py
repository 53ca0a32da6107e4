"""The public surface: contract names, signatures, and no eager client-library imports."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

import pytest

import steadystream as ss

CONTRACT = {
    "StreamMonitor",
    "Checkpoint",
    "Spec",
    "SpecError",
    "load_spec",
    "default_spec",
    "StreamError",
    "ClientTooSlow",
    "FirstTokenTimeout",
    "IdleTimeout",
    "TotalTimeout",
    "RetryBudgetExhausted",
    "ResumeFailed",
    "UpstreamError",
}


def test_all_is_explicit_and_importable() -> None:
    """Every name in __all__ exists, and every contract name from DESIGN.md is in __all__."""
    for name in ss.__all__:
        assert hasattr(ss, name), name
    assert set(ss.__all__) >= CONTRACT


def test_public_names_load_on_first_use_and_unknown_names_fail() -> None:
    """Every public name is also a lazily loaded one (so ``import steadystream.spec`` loads no
    stream wrapper), ``dir()`` lists them all, and a misspelt name is an AttributeError."""
    lazy = set(ss._LAZY)
    assert lazy | {"__version__"} == set(ss.__all__)
    assert set(ss.__all__) <= set(dir(ss))
    with pytest.raises(AttributeError, match="no attribute 'StreamMonitr'"):
        ss.StreamMonitr  # noqa: B018
    code = "import steadystream.spec, sys; print(any('instrumentation' in m for m in sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip() == "False"


def test_stream_monitor_signature_matches_the_contract() -> None:
    """StreamMonitor(spec, registry=None, tracer_provider=None, meter_provider=None) with
    wrap(stream, model, provider), stream(opener) and relay(source)."""
    params = inspect.signature(ss.StreamMonitor).parameters
    assert list(params)[:4] == ["spec", "registry", "tracer_provider", "meter_provider"]
    assert all(params[p].default is None for p in list(params)[1:4])
    wrap = inspect.signature(ss.StreamMonitor.wrap).parameters
    assert list(wrap)[:4] == ["self", "stream", "model", "provider"]
    assert list(inspect.signature(ss.StreamMonitor.stream).parameters)[:2] == ["self", "opener"]
    assert list(inspect.signature(ss.StreamMonitor.relay).parameters)[:2] == ["self", "source"]


def test_checkpoint_is_frozen_with_the_contract_fields() -> None:
    """Checkpoint holds offset, sha256, chunks, sequence_number, response_id and is frozen."""
    fields = [f.name for f in dataclasses.fields(ss.Checkpoint)]
    assert fields == ["offset", "sha256", "chunks", "sequence_number", "response_id"]
    cp = ss.Checkpoint(3, "ab", 1, 7, "resp_1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cp.offset = 4  # type: ignore[misc]


def test_timeouts_are_stream_errors_with_checkpoint_and_retryable() -> None:
    """Timeout errors derive from StreamError and carry .retryable and .checkpoint."""
    cp = ss.Checkpoint()
    for cls in (ss.FirstTokenTimeout, ss.IdleTimeout, ss.TotalTimeout):
        err = cls("x", checkpoint=cp)
        assert isinstance(err, ss.StreamError)
        assert err.checkpoint is cp and isinstance(err.retryable, bool)


def test_importing_steadystream_loads_no_http_or_llm_client() -> None:
    """Duck typing: importing the package and the instrumentation imports no openai/httpx."""
    code = (
        "import sys, steadystream, steadystream.exporters\n"
        "from steadystream.instrumentation import monitor\n"
        "from steadystream.instrumentation.core import machine, shell\n"
        "from steadystream.instrumentation.sinks import otel, prometheus\n"
        "from steadystream.instrumentation import providers\n"
        "print(sorted(m for m in ('openai', 'httpx', 'httpx2') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
