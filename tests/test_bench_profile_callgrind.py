"""``benchmarks/profile_callgrind.py`` counts what it says it counts: each variant streams whole
responses or completions through the real openai client (sync or async), steadystream, the
reference wrapper or an SDK instrumentation (the instrumented ones checked exactly),
and the totals it differences are read from callgrind's own output format. valgrind itself is
not run here: it is not one of the project's tools, and a run takes tens of minutes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import _sdk_patches  # noqa: E402
import profile_callgrind as pc  # noqa: E402


@pytest.mark.parametrize("variant", pc.VARIANTS)
def test_each_variant_streams_whole_completions_and_leaves_the_sdk_as_shipped(
    variant: str,
) -> None:
    # Two streams: the second is what the profile counts (after the first's one-time work).
    assert pc._child(variant, 2) == 2 * pc.PER_STREAM[variant.split("/")[0]]
    # No instrumentation's proxy is left on any class of the SDK (pydantic's own lazily built
    # validators do change, so attribute values are not compared).
    after = _sdk_patches.openai_attributes()
    assert not [k for k, v in after.items() if isinstance(v, _sdk_patches._PROXY)]


def test_the_replayed_bodies_are_the_upstreams_frames_in_reads_of_16_kib() -> None:
    chat = pc._body("chat")
    assert all(len(part) == pc.READ for part in chat[:-1])
    sse = b"".join(chat)
    assert sse.count(b"\n\n") == pc.PER_STREAM["chat"] + 1  # every chunk, then [DONE]
    assert sse.endswith(b"data: [DONE]\n\n")
    responses = pc._body("responses")
    assert all(len(part) == pc.READ for part in responses[:-1])
    sse = b"".join(responses)
    assert sse.count(b"\n\n") == pc.PER_STREAM["responses"]
    assert sse.startswith(b"event: response.created\ndata: {")
    assert sse.count(b"event: response.output_text.delta\n") == pc.RESPONSE_DELTAS
    assert sse.rfind(b"event: response.completed\n") > sse.rfind(b"output_text.delta")


def test_each_variant_is_measured_against_the_raw_client_and_reference_of_its_kind() -> None:
    assert pc._floor("responses/async wrap") == "responses/async raw"
    assert pc._floor("responses/responses_stream") == "responses/raw"
    assert pc._floor("chat/openai-v2") == "chat/raw"
    assert pc._reference_of("responses/async wrap") == "responses/async reference"
    assert pc._reference_of("responses/wrap") == "responses/reference"
    assert pc._reference_of("responses/reference") is None
    assert pc._reference_of("chat/wrap") is None


def test_totals_are_read_from_callgrinds_totals_line(tmp_path: Path) -> None:
    out = tmp_path / "callgrind.out"
    out.write_text(
        "# callgrind format\nversion: 1\nevents: Ir I1mr Bcm\n"
        "fn=(1) main\n0 10 1 0\nsummary: 1200 7 3\ntotals: 1200 7 3\n"
    )
    assert pc._totals(out) == {"Ir": 1200, "I1mr": 7, "Bcm": 3}


def test_an_unfinished_profile_is_named_not_read_as_zero(tmp_path: Path) -> None:
    out = tmp_path / "cut.out"
    out.write_text("# callgrind format\nevents: Ir\nfn=(1) main\n0 10\n")
    with pytest.raises(RuntimeError, match=r"cut\.out: no totals line"):
        pc._totals(out)


def test_the_responses_rows_are_ratios_to_raw_and_the_reference_of_their_kind() -> None:
    misses = {"I1mr": 0, "D1mr": 0, "D1mw": 0, "ILmr": 0, "DLmr": 0, "DLmw": 0}
    per_event = {
        "responses/raw": {**misses, "Ir": 1000},
        "responses/reference": {**misses, "Ir": 1010},
        "responses/wrap": {**misses, "Ir": 1020, "I1mr": 1},  # 10 more cycles for the miss
    }
    assert pc._cycles(per_event["responses/wrap"]) == 1030
    row = pc._responses_table(per_event).as_dict()["rows"][1]
    assert row[:7] == ["wrap", "1,020", "+20", "1.0200", "1.0099", "1.0300", "1.0198"]
    assert row[7] == "<= 1.03"
