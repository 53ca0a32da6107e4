"""The deterministic text oracle and the byte-level framing, checked as properties."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steadystream import conventions as conv
from steadystream.simulate import Upstream, deltas, expected_text, prompt_key
from steadystream.simulate._delivery import split_points
from steadystream.simulate._protocol import sse_frame


@pytest.fixture(scope="module")
def shared_upstream() -> Iterator[Upstream]:
    """One upstream for the whole module (hypothesis runs many examples per test)."""
    with Upstream() as up:
        yield up


@given(
    prompt=st.text(max_size=20),
    seed=st.integers(0, 2**31),
    tokens=st.integers(0, 200),
    size=st.integers(1, 9),
)
def test_deltas_join_to_expected_text(prompt: str, seed: int, tokens: int, size: int) -> None:
    """However the pieces are grouped into deltas, they join to the expected text."""
    got = deltas(prompt, seed, tokens, size)
    assert "".join(got) == expected_text(prompt, seed, tokens)
    assert len(got) == -(-tokens // size)


def test_expected_text_prefix_stable_and_list_inputs_canonical() -> None:
    """A longer response extends a shorter one; list inputs hash the same in any key order."""
    assert expected_text("p", 1, 50).startswith(expected_text("p", 1, 20))
    a = [{"role": "user", "content": "hi"}]
    b = [{"content": "hi", "role": "user"}]
    assert prompt_key(a) == prompt_key(b)
    assert expected_text(a) == expected_text(b)
    assert expected_text("hi", seed=0, tokens=3) == " Hello Привет流式"


@given(
    text=st.text(min_size=1, max_size=40),
    mode=st.one_of(st.integers(1, 12), st.sampled_from(["utf8", "random"])),
    seed=st.integers(0, 1000),
)
def test_split_points_reassemble_to_the_frame(text: str, mode: object, seed: int) -> None:
    """Split pieces are non-empty and concatenate back to the exact frame bytes."""
    import random

    frame = sse_frame("response.output_text.delta", {"delta": text})
    pieces = split_points(frame, mode, random.Random(seed))  # type: ignore[arg-type]
    assert all(pieces)
    assert b"".join(pieces) == frame
    if mode == "utf8" and any(ord(ch) > 0x7F for ch in text):
        assert len(pieces) > 1


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(size=st.integers(1, 40), seed=st.integers(0, 10_000), tokens=st.integers(1, 40))
def test_any_split_size_streams_the_exact_text(
    shared_upstream: Upstream, size: int, seed: int, tokens: int
) -> None:
    """For any split size, seed and length the wire body decodes to the expected text."""
    import json

    payload = {"model": "m", "input": "prop", "stream": True, "max_output_tokens": tokens}
    headers = {conv.HEADER_FAULT: f"split={size}", conv.HEADER_SEED: str(seed)}
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST", f"{shared_upstream.base_url}/responses", json=payload, headers=headers
        ) as response,
    ):
        pieces = list(response.iter_raw())
    assert max(len(p) for p in pieces) <= size
    text = ""
    for frame in b"".join(pieces).decode().split("\n\n"):
        if frame:
            data = json.loads(frame.split("\n")[1].removeprefix("data: "))
            if data["type"] == "response.output_text.delta":
                text += data["delta"]
    assert text == expected_text("prop", seed, tokens)


def test_docstring_examples_hold() -> None:
    """The examples in the simulate docstrings are true."""
    import doctest

    from steadystream.simulate import _faults, _textgen

    for module in (_faults, _textgen):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0
