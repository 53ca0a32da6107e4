"""The core settles content in batches (bytes, sha256, code fences, JSON at each checkpoint
interval) and checks deadlines against a lower bound: both must give exactly what the chunk by
chunk work gave."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import steadystream as ss
from steadystream import conventions as c
from steadystream.instrumentation.core.machine import CorePolicy, StreamCore
from steadystream.instrumentation.core.reassembly import FenceTracker
from telemetry_support import Recorder

# Fence-relevant characters, line ends of both kinds, plain text and a multi-byte character.
_PIECES = st.sampled_from(["`", "~", " ", "\n", "\r", "a", "é", "```", "~~~", "   ", "\r\n"])
_TEXT = st.lists(_PIECES, min_size=1, max_size=6).map("".join)
_CHUNKS = st.lists(_TEXT, min_size=1, max_size=60)


def per_chunk_fence(chunks: list[str]) -> FenceTracker:
    """The per-chunk scan the core used to run on every content chunk: ``feed`` for text that
    may touch a fence, else the mid-line shortcut."""
    fence = FenceTracker()
    for text in chunks:
        if text[-1] in " \n\r" or "`" in text or "~" in text or fence.head:
            fence.feed(text)
        else:
            fence.mid_line()
    return fence


@settings(max_examples=300, deadline=None)
@given(chunks=_CHUNKS, cuts=st.lists(st.integers(0, 60), max_size=10))
def test_a_fence_scan_over_joined_chunks_equals_the_per_chunk_scan(
    chunks: list[str], cuts: list[int]
) -> None:
    """Feeding the tracker the chunks joined in any grouping (fences split across chunk and
    group boundaries included) leaves it in the state the per-chunk scan leaves it in."""
    expected = per_chunk_fence(chunks)
    bounds = sorted({min(cut, len(chunks)) for cut in cuts} | {0, len(chunks)})
    batched = FenceTracker()
    for lo, hi in itertools.pairwise(bounds):
        if hi > lo:
            batched.feed("".join(chunks[lo:hi]))
    assert (batched.open_fence, batched.head, batched.at_line_start) == (
        expected.open_fence,
        expected.head,
        expected.at_line_start,
    )


@settings(max_examples=200, deadline=None)
@given(chunks=_CHUNKS, every=st.integers(1, 20))
def test_batched_core_reports_the_per_chunk_bytes_hash_fence_and_checkpoints(
    chunks: list[str], every: int
) -> None:
    """Bytes, the running hash at every checkpoint, and the fence verdict at the end are those
    of the content chunk by chunk, for any checkpoint interval."""
    rec = Recorder()
    core = StreamCore(CorePolicy(checkpoint_every=every), rec, expect_json=True)
    core.on_open(0.0)
    core.begin_attempt(0.0)
    t = 0.0
    for i, text in enumerate(chunks, start=1):
        core.on_wait(t)
        t += 0.01
        assert core.on_content(text, i, t) is None
        if i % every == 0:
            cp = core.checkpoint
            assert cp is not None
            done = "".join(chunks[:i]).encode("utf-8", "surrogatepass")
            assert (cp.offset, cp.chunks, cp.sequence_number) == (len(done), i, i)
            assert cp.sha256 == hashlib.sha256(done).hexdigest()
    whole = "".join(chunks).encode("utf-8", "surrogatepass")
    assert core.content_bytes == len(whole)
    assert core.current_checkpoint().sha256 == hashlib.sha256(whole).hexdigest()
    core.close(t + 0.01)
    assert sum(n for n, _ in rec.named("content")) == len(whole)
    assert sum(len(g) for _, g in rec.named("content")) == len(chunks) - 1
    fences = [d for k, d in rec.named("reassembly_error") if k == c.REASSEMBLY_FENCE]
    expected = per_chunk_fence(chunks)
    assert fences == ([f"unclosed {expected.open_fence}"] if expected.unclosed else [])
    # The JSON check reads the whole content too (these chunks are never one JSON document).
    assert [k for k, _ in rec.named("reassembly_error")].count(c.REASSEMBLY_JSON) == 1


def test_a_split_surrogate_pair_counts_the_same_bytes_batched() -> None:
    """Lone surrogates (passed through as they came) are encoded alike joined or apart."""
    rec = Recorder()
    core = StreamCore(CorePolicy(checkpoint_every=16), rec)
    core.on_open(0.0)
    core.begin_attempt(0.0)
    core.on_content("a\ud83d", None, 0.1)
    core.on_content("\ude00b", None, 0.2)
    apart = "a\ud83d".encode("utf-8", "surrogatepass") + "\ude00b".encode("utf-8", "surrogatepass")
    assert core.content_bytes == len(apart)
    assert core.current_checkpoint().sha256 == hashlib.sha256(apart).hexdigest()


@pytest.mark.parametrize(("first_token", "idle"), [(3.0, 8.0), (30.0, 2.0)])
def test_deadlines_checked_against_the_lower_bound_match_the_exact_ones(
    first_token: float, idle: float
) -> None:
    """Items just inside and just past each deadline (first-token, idle after keep-alives,
    total) get exactly the verdict of the exact deadline of their wait."""
    policy = CorePolicy(first_token=first_token, idle=idle, total=45.0, checkpoint_every=4)
    for late in (False, True):
        rec = Recorder()
        core = StreamCore(policy, rec)
        core.on_open(0.0)
        core.begin_attempt(0.0)
        core.on_wait(0.0)
        assert core.next_deadline() == first_token
        t = 1.0
        core.on_content("a", None, t)
        # Keep-alives use up idle budget; the consumer's time does not.
        core.on_wait(t + 5.0)
        t_ka = t + 5.0 + idle / 2
        core.on_keepalive(t_ka)
        core.on_wait(t_ka + 3.0)
        deadline = core.next_deadline()
        assert deadline == pytest.approx(t_ka + 3.0 + idle / 2)
        arrival = deadline + (1e-6 if late else 0.0)
        got = core.on_content("b", None, arrival)
        if late:
            assert isinstance(got, ss.IdleTimeout)
            assert rec.named("timeout") == [(c.TIMEOUT_IDLE, arrival)]
        else:
            assert got is None
            assert rec.named("timeout") == []


def test_the_total_deadline_bounds_items_that_come_without_a_wait() -> None:
    """Readings of one byte chunk arrive without a wait between them: past the total budget
    the next one is refused as a total timeout."""
    rec = Recorder()
    core = StreamCore(CorePolicy(first_token=3, idle=8, total=10, checkpoint_every=16), rec)
    core.on_open(0.0)
    core.begin_attempt(0.0)
    core.on_wait(0.0)
    assert core.on_content("a", None, 1.0) is None
    assert core.on_content("b", None, 9.5) is None  # no wait: the idle budget does not apply
    got = core.on_content("c", None, 10.5)
    assert isinstance(got, ss.TotalTimeout)
    assert rec.named("timeout") == [(c.TIMEOUT_TOTAL, 10.5)]


def test_the_first_content_asks_the_shell_to_rearm_when_idle_ends_sooner() -> None:
    """With first_token > stream_idle the deadline comes earlier at the first content: the
    core raises ``rearm`` then, so a shell's pending look is moved forward."""
    core = StreamCore(CorePolicy(first_token=30, idle=2, total=45), Recorder())
    core.on_open(0.0)
    core.begin_attempt(0.0)
    assert core.rearm
    core.rearm = False
    core.on_wait(0.0)
    assert core.next_deadline() == 30.0
    core.on_content("a", None, 1.0)
    assert core.rearm
    core.on_wait(1.5)
    assert core.next_deadline() == pytest.approx(3.5)
    core.rearm = False
    core.on_content("b", None, 2.0)
    assert not core.rearm  # later content only moves the deadline later


def test_a_slow_stream_still_reaches_the_sinks_every_second() -> None:
    """The timed flush is folded into the deadline horizon: a chunk at or past a second since
    the last flush still flushes, and a long checkpoint interval does not hold bytes back."""
    rec = Recorder()
    core = StreamCore(CorePolicy(idle=30, total=100, checkpoint_every=1000), rec)
    core.on_open(0.0)
    core.begin_attempt(0.0)
    # The first content (0.5) starts the flush clock: flushes at 1.5, 2.5 and 7.0.
    times = (0.5, 0.9, 1.5, 2.5, 2.6, 7.0)
    flushed_after = (0, 0, 6, 8, 8, 12)
    for t, expected in zip(times, flushed_after, strict=True):
        core.on_wait(t - 0.1)
        assert core.on_content("ab", None, t) is None
        assert sum(n for n, _ in rec.named("content")) == expected, t
    core.close(8.0)
    assert sum(n for n, _ in rec.named("content")) == 12
    assert sum(len(g) for _, g in rec.named("content")) == 5


@pytest.mark.parametrize("every", [16, 1000, 5000])
def test_a_fast_stream_reaches_the_sinks_every_1024_chunks(every: int) -> None:
    """Within one second a batch ends at 1,024 gaps, whatever the checkpoint interval (a fast
    stream holds at most that many gaps and one more text), and the totals are exact."""
    rec = Recorder()
    core = StreamCore(CorePolicy(idle=30, total=100, checkpoint_every=every), rec)
    core.on_open(0.0)
    core.begin_attempt(0.0)
    n = 3000
    for i in range(n):
        t = 0.1 + i * 1e-5  # 3,000 chunks in 30 ms: no timed flush
        core.on_wait(t)
        assert core.on_content("é", None, t) is None
        flushed = sum(nbytes for nbytes, _ in rec.named("content"))
        # Chunk 1,025 brings the first batch's 1,024th gap (the first chunk has none).
        assert flushed == (2 * (1 + 1024 * (i // 1024)) if i >= 1024 else 0), i
    core.close(1.0)
    batches = rec.named("content")
    assert [len(g) for _, g in batches] == [1024, 1024, n - 1 - 2048]
    assert sum(nbytes for nbytes, _ in batches) == 2 * n


_DELTA = "response.output_text.delta"
# One upstream item: what it is, how long the consumer held the previous one, whether the
# shell waited for it (False: a further reading of the same byte chunk), how long it waited.
_ITEMS = st.lists(
    st.tuples(
        st.sampled_from(["content", "lifecycle", "keepalive"]),
        st.integers(0, 4000),
        st.booleans(),
        st.integers(0, 4000),
    ),
    max_size=80,
)


class _PerWaitSums:
    """The phases summed per wait, as the core summed them before runs: the consumer from each
    item's return to the next wait's start (or to the close), the upstream wait from each
    wait's start to the item that ended it (or to the close)."""

    def __init__(self) -> None:
        self.consumer = self.wait = 0.0
        self.last_return: float | None = None
        self.t_wait: float | None = None

    def wait_starts(self, t: float) -> None:
        if self.last_return is not None:
            self.consumer += t - self.last_return
            self.last_return = None
        self.t_wait = t

    def item_returned(self, t: float) -> None:
        if self.t_wait is not None:
            self.wait += t - self.t_wait
            self.t_wait = None
        self.last_return = t

    def closed(self, t: float) -> None:
        if self.t_wait is not None:
            self.wait += t - self.t_wait
        elif self.last_return is not None:
            self.consumer += t - self.last_return


@settings(max_examples=300, deadline=None)
@given(items=_ITEMS, tail=st.integers(0, 4000), end_waiting=st.booleans())
def test_consumer_and_wait_phases_equal_the_per_wait_sums(
    items: list[tuple[str, int, bool, int]], tail: int, end_waiting: bool
) -> None:
    """The consumer phase is summed per run of items (not per item): it equals, for every
    stream, the per-wait sums: from each item's return to the next wait's start, and from the
    last return to the close; the upstream wait from each wait's start to what ended it."""
    policy = CorePolicy(first_token=1e6, idle=1e6, total=1e7, checkpoint_every=4)
    rec = Recorder()
    core = StreamCore(policy, rec)
    core.on_open(0.0)
    core.begin_attempt(0.0)
    sums = _PerWaitSums()
    t = 0.0
    for n, (kind, hold_ms, waited, wait_ms) in enumerate(items):
        t += hold_ms / 1000.0
        if waited or sums.last_return is None:
            core.on_wait(t)
            sums.wait_starts(t)
            t += wait_ms / 1000.0
        if kind == "content":
            assert core.on_item({"type": _DELTA, "delta": f"x{n}"}, t) is None
        elif kind == "lifecycle":
            assert core.on_item({"type": "response.in_progress"}, t) is None
        else:
            core.on_keepalive(t)
        sums.item_returned(t)
    t += tail / 1000.0
    if end_waiting:
        core.on_wait(t)
        sums.wait_starts(t)
        t += 1.0
    core.close(t)
    sums.closed(t)
    phases = rec.named("ended")[0][2]
    assert phases[c.PHASE_CONSUMER] == pytest.approx(sums.consumer * 1000.0, abs=1e-6)
    got_wait = phases[c.PHASE_FIRST_TOKEN_WAIT] + phases.get(c.PHASE_UPSTREAM_WAIT, 0.0)
    assert got_wait == pytest.approx(sums.wait * 1000.0, abs=1e-6)
