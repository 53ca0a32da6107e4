"""Exactly-once resume: prefix verification by hash, and continuation by sequence number."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.responses import ResponseCreatedEvent, ResponseTextDeltaEvent

import steadystream as ss
from steadystream.instrumentation.core.checkpoint import Checkpoint, ContentHasher
from steadystream.instrumentation.core.reassembly import ServerSentEvent
from steadystream.instrumentation.policy.resume import SKIP, Resumer, replace_text
from steadystream.instrumentation.providers.registry import read_item


def checkpoint_of(text: str, *, seq: int | None = None) -> Checkpoint:
    hasher = ContentHasher()
    hasher.update_text(text)
    return hasher.snapshot(chunks=1, sequence_number=seq)


def run(resumer: Resumer, items: list[Any]) -> list[Any]:
    out = [x for x in (resumer.admit(item) for item in items) if x is not SKIP]
    resumer.finish()
    return out


def content(items: list[Any]) -> str:
    return "".join(read_item(item).text for item in items)


def delta(text: str, seq: int) -> ResponseTextDeltaEvent:
    return ResponseTextDeltaEvent(
        type="response.output_text.delta",
        delta=text,
        item_id="msg_1",
        output_index=0,
        content_index=0,
        sequence_number=seq,
        logprobs=[],
    )


def test_full_replay_skips_the_delivered_prefix() -> None:
    """A replay from the start delivers only what comes after the checkpoint."""
    resumer = Resumer(checkpoint_of("Hello, "))
    out = run(resumer, ["Hel", "lo, ", "wor", "ld"])
    assert out == ["wor", "ld"]
    assert resumer.mode == "offset"


def test_straddling_delta_is_split() -> None:
    """A replayed delta across the offset is cut so only its new part is delivered."""
    items = [{"type": "response.output_text.delta", "delta": "Hello, wor"}, "ld"]
    out = run(Resumer(checkpoint_of("Hello, ")), items)
    assert out[0] == {"type": "response.output_text.delta", "delta": "wor"}
    assert content(out) == "world"


def test_straddling_sdk_event_keeps_its_other_fields() -> None:
    """An openai SDK event is copied with only its delta trimmed."""
    out = run(Resumer(checkpoint_of("Hé")), [delta("Héllo", 5)])
    assert isinstance(out[0], ResponseTextDeltaEvent)
    assert (out[0].delta, out[0].sequence_number, out[0].item_id) == ("llo", 5, "msg_1")


def test_divergent_replay_fails_and_delivers_nothing() -> None:
    """A replay whose prefix differs raises ResumeFailed before any text is delivered."""
    resumer = Resumer(checkpoint_of("Hello, "))
    delivered = []
    with pytest.raises(ss.ResumeFailed) as info:
        for item in ["Jello", ", world"]:
            out = resumer.admit(item)
            if out is not SKIP:
                delivered.append(out)
    assert delivered == []
    assert info.value.checkpoint == checkpoint_of("Hello, ")
    assert info.value.retryable is False


def test_short_replay_fails_at_the_end() -> None:
    """A replay that ends inside the delivered prefix is a failed resume."""
    resumer = Resumer(checkpoint_of("Hello, world"))
    assert run_partial(resumer, ["Hello"]) == []
    with pytest.raises(ss.ResumeFailed, match="ended before"):
        resumer.finish()


def run_partial(resumer: Resumer, items: list[Any]) -> list[Any]:
    return [x for x in (resumer.admit(item) for item in items) if x is not SKIP]


def test_character_across_the_offset_is_divergence() -> None:
    """A replay whose character spans the checkpoint offset cannot match what was delivered."""
    cp = checkpoint_of("é")  # two bytes
    with pytest.raises(ss.ResumeFailed):
        run(Resumer(Checkpoint(offset=1, sha256=cp.sha256)), ["é"])


def test_replayed_lifecycle_events_are_skipped() -> None:
    """response.created and keep-alives inside the replayed prefix are not delivered again."""
    items: list[Any] = [{"type": "response.created", "response": {"id": "r"}}, "", "ab", "cd"]
    assert run(Resumer(checkpoint_of("ab")), items) == ["cd"]


def test_nothing_delivered_means_nothing_to_skip() -> None:
    """With an empty checkpoint every item passes unchanged."""
    resumer = Resumer(Checkpoint())
    assert resumer.done
    items = ["a", {"type": "response.created"}, "b"]
    assert run(resumer, items) == items


def test_sequence_continuation_exactly_after() -> None:
    """A starting_after replay that begins at N+1 passes through untouched."""
    resumer = Resumer(checkpoint_of("Hello", seq=4))
    items = [delta(", wor", 5), delta("ld", 6)]
    assert run(resumer, items) == items
    assert resumer.mode == "sequence"


def test_sequence_duplicates_are_skipped_and_verified() -> None:
    """Events numbered up to N are dropped as duplicates; their content must match."""
    cp = checkpoint_of("Hello", seq=3)
    created = ResponseCreatedEvent.model_construct(
        type="response.created", sequence_number=0, response=None
    )
    items = [created, delta("Hel", 1), delta("lo", 3), delta("!", 4)]
    assert run(Resumer(cp), items) == [items[-1]]
    with pytest.raises(ss.ResumeFailed):
        run(Resumer(cp), [delta("Jello", 3), delta("!", 4)])
    with pytest.raises(ss.ResumeFailed, match="beyond"):
        run(Resumer(cp), [delta("Hello", 2), delta("!!", 3), delta("?", 4)])


def test_sequence_gap_fails() -> None:
    """A replay that skips event numbers would lose content: ResumeFailed."""
    with pytest.raises(ss.ResumeFailed, match="jumped from sequence 4 to 7"):
        run(Resumer(checkpoint_of("Hello", seq=4)), [delta("x", 7)])


def test_sequence_replay_that_ends_immediately_is_complete() -> None:
    """No events after N means the stream had ended at the checkpoint."""
    resumer = Resumer(checkpoint_of("Hello", seq=9))
    assert run(resumer, []) == []
    assert resumer.done


def test_error_in_replay_passes_through() -> None:
    """A failure event inside the replay is the new attempt's failure, not swallowed."""
    failure = {"type": "error", "code": "server_error", "message": "boom"}
    assert run_partial(Resumer(checkpoint_of("abc")), [failure]) == [failure]


def test_sse_and_chat_shapes_split() -> None:
    """SSE events and Chat Completions chunks can be split at the offset too."""
    sse = ServerSentEvent(
        event="message", data='{"type":"response.output_text.delta","delta":"abcd"}'
    )
    out = replace_text(sse, "abcd", "cd")
    assert read_item(out).text == "cd"
    chunk = {"id": "c", "choices": [{"index": 0, "delta": {"content": "abcd"}}]}
    out = replace_text(chunk, "abcd", "cd")
    assert out["choices"][0]["delta"]["content"] == "cd"
    assert chunk["choices"][0]["delta"]["content"] == "abcd"  # the original is untouched
    with pytest.raises(ss.ResumeFailed, match="cannot split"):
        replace_text(object(), "ab", "b")


@given(
    text=st.text(min_size=1, max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=8),
    recuts=st.lists(st.integers(min_value=0, max_value=60), max_size=8),
    at=st.integers(min_value=0, max_value=60),
)
def test_exactly_once_for_any_chunking(
    text: str, cuts: list[int], recuts: list[int], at: int
) -> None:
    """Whatever the original and replayed chunking, delivered + resumed == the whole text."""

    def chunk(points: list[int]) -> list[str]:
        bounds = sorted({0, len(text), *(min(p, len(text)) for p in points)})
        return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]

    original = chunk(cuts)
    # The consumer received the first `at % (n+1)` chunks before the interruption.
    n = at % (len(original) + 1)
    delivered = "".join(original[:n])
    resumed = run(Resumer(checkpoint_of(delivered)), chunk(recuts))
    assert delivered + content(resumed) == text
