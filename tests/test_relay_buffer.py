"""The relay's bounded buffer and overflow policies, without an event loop."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.responses import ResponseTextDeltaEvent

from steadystream.instrumentation.core.checkpoint import ContentHasher
from steadystream.instrumentation.policy.relay import (
    ITEM_OVERHEAD,
    RelayBuffer,
    default_low_value,
    default_sizeof,
)
from steadystream.instrumentation.providers import base as ev
from steadystream.instrumentation.providers.registry import read_item


def delta(text: str, seq: int, item_id: str = "msg_1") -> ResponseTextDeltaEvent:
    return ResponseTextDeltaEvent(
        type="response.output_text.delta",
        delta=text,
        item_id=item_id,
        output_index=0,
        content_index=0,
        sequence_number=seq,
        logprobs=[],
    )


PROGRESS = {"type": "response.in_progress", "sequence_number": 1}
KEEPALIVE = ""


def drain(buf: RelayBuffer) -> list[Any]:
    return [buf.take() for _ in range(len(buf))]


def test_sizes() -> None:
    """Raw text and bytes count their UTF-8 length; events add a fixed framing overhead."""
    assert default_sizeof("hé", read_item("hé")) == 3
    assert default_sizeof(b"abcd", read_item("x")) == 4
    event = delta("hé", 4)
    assert default_sizeof(event, read_item(event)) == ITEM_OVERHEAD + 3
    assert default_sizeof(PROGRESS, read_item(PROGRESS)) == ITEM_OVERHEAD


def test_low_value_predicate() -> None:
    """Keep-alives and progress events are low value; content and structure never are."""
    for item in (KEEPALIVE, PROGRESS, {"type": "response.web_search_call.searching"}):
        assert default_low_value(item, read_item(item)) is True
    for item in (
        "text",
        delta("x", 1),
        {"type": "response.created", "response": {"id": "r"}},
        {"type": "response.completed"},
        {"type": "error"},
        {"type": "response.output_item.added"},
    ):
        assert default_low_value(item, read_item(item)) is False


def test_under_the_cap_nothing_happens() -> None:
    """Items within the cap are buffered and taken in order."""
    buf = RelayBuffer(1024, "terminate")
    for text in ("a", "b", "c"):
        assert buf.offer(text).pause is False
    assert buf.buffered == 3
    assert drain(buf) == ["a", "b", "c"]
    assert buf.buffered == 0 and buf.breaches == 0


def test_pause_counts_one_breach_and_bounds_memory() -> None:
    """Pause asks the reader to stop once per breach; the peak is the cap plus one item."""
    buf = RelayBuffer(1024, "pause")
    offers = [buf.offer("x" * 300) for _ in range(4)]
    assert [o.pause for o in offers] == [False, False, False, True]
    assert [o.breach for o in offers] == [False, False, False, True]
    assert buf.peak == 1200 <= buf.cap + 300
    buf.take()
    assert buf.over is True  # 900 bytes: a paused reader still waits
    buf.take()
    buf.take()
    assert buf.buffered <= buf.low_water and buf.over is False
    buf.offer("y" * 700)
    assert buf.offer("z" * 700).breach is True
    assert buf.breaches == 2


def test_terminate_frees_the_buffer_with_an_exact_checkpoint() -> None:
    """Terminate drops the backlog and keeps the checkpoint of what the consumer took."""
    buf = RelayBuffer(1024, "terminate")
    buf.offer(delta("Hello", 5))
    assert buf.take().delta == "Hello"
    for i in range(20):
        offer = buf.offer(delta("y" * 100, 6 + i))
        if offer.terminate:
            break
    assert offer.breach is True and buf.terminated
    assert buf.buffered == 0 and len(buf) == 0
    assert buf.peak <= buf.cap
    cp = buf.checkpoint()
    expected = ContentHasher()
    expected.update_text("Hello")
    assert (cp.offset, cp.sha256, cp.chunks, cp.sequence_number) == (
        5,
        expected.hexdigest(),
        1,
        5,
    )
    assert buf.offer("more").terminate is True


def test_drop_sheds_low_value_and_coalesces_but_never_content() -> None:
    """Drop removes progress events and keep-alives and merges deltas; all text survives."""
    buf = RelayBuffer(1024, "drop")
    items: list[Any] = []
    for i in range(12):
        items.append(delta(f"t{i:02d}-" * 10, i))
        items.append(PROGRESS)
        items.append(KEEPALIVE)
    out: list[Any] = []
    offers = []
    for item in items:
        offer = buf.offer(item)
        offers.append(offer)
        if offer.pause:  # the consumer catches up only when the reader has to wait
            while buf.buffered > buf.low_water:
                out.append(buf.take())
    out.extend(drain(buf))
    assert buf.dropped_items > 0 and buf.breaches > 0
    assert sum(o.dropped_items for o in offers) == buf.dropped_items
    low = [x for x in out if read_item(x).kind != ev.CONTENT]
    assert len(low) == 2 * 12 - buf.dropped_items
    text = "".join(read_item(x).text for x in out)
    assert text == "".join(f"t{i:02d}-" * 10 for i in range(12))
    deltas = [x for x in out if read_item(x).kind == ev.CONTENT]
    assert len(deltas) < 12  # some deltas were coalesced
    assert deltas[-1].sequence_number == 11  # a merged event carries the later number
    assert buf.peak <= buf.cap + max(default_sizeof(x, read_item(x)) for x in items)


def test_drop_pauses_when_only_content_is_left() -> None:
    """When the backlog is all content that cannot merge, drop falls back to pausing."""
    buf = RelayBuffer(1024, "drop")
    offers = [buf.offer(delta("z" * 200, i, item_id=f"m{i}")) for i in range(4)]
    assert offers[-1].pause is True and offers[-1].breach is True
    assert buf.dropped_items == 0


def test_deltas_of_different_parts_or_with_logprobs_do_not_merge() -> None:
    """Merging is limited to the same output part and never loses per-token data."""
    buf = RelayBuffer(1024, "drop")
    with_logprobs = {
        "type": "response.output_text.delta",
        "delta": "a" * 500,
        "item_id": "m",
        "output_index": 0,
        "content_index": 0,
        "logprobs": [{"token": "a"}],
    }
    buf.offer(with_logprobs)
    buf.offer({**with_logprobs, "delta": "b" * 500})
    assert len(buf) == 2


@pytest.mark.parametrize("policy", ["pause", "drop", "terminate"])
def test_one_oversized_item_is_not_a_breach(policy: str) -> None:
    """An item bigger than the cap passes through an empty buffer; the next one waits."""
    buf = RelayBuffer(1024, policy)  # type: ignore[arg-type]
    first = buf.offer("x" * 5000)
    assert (first.pause, first.terminate, first.breach) == (False, False, False)
    assert buf.buffered == 5000 and buf.breaches == 0
    second = buf.offer("y")  # the consumer has not taken the big one yet
    assert second.breach is True
    assert second.terminate if policy == "terminate" else second.pause


def test_invalid_configuration() -> None:
    """A zero cap or an unknown policy is refused."""
    with pytest.raises(ValueError):
        RelayBuffer(0, "pause")
    with pytest.raises(ValueError, match="unknown overflow policy"):
        RelayBuffer(10, "block")  # type: ignore[arg-type]


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=60),
    takes=st.lists(st.booleans(), max_size=60),
    policy=st.sampled_from(["pause", "drop", "terminate"]),
)
def test_memory_bound_property(sizes: list[int], takes: list[bool], policy: str) -> None:
    """Under any interleaving that obeys pause, the buffer never exceeds cap + one item."""
    buf = RelayBuffer(1024, policy)  # type: ignore[arg-type]
    paused = False
    consumed: list[str] = []
    offered: list[str] = []
    for i, size in enumerate(sizes):
        if paused:
            while buf.buffered > buf.low_water:
                consumed.append(buf.take())
            paused = False
        text = chr(ord("a") + i % 26) * size
        offer = buf.offer(text)
        assert buf.buffered <= buf.cap + size
        if offer.terminate:
            break
        offered.append(text)
        paused = offer.pause
        if i < len(takes) and takes[i] and len(buf):
            consumed.append(buf.take())
    assert buf.peak <= buf.cap + max(sizes)
    if not buf.terminated:
        consumed.extend(drain(buf))
        assert "".join(consumed) == "".join(offered)  # nothing lost, nothing repeated
