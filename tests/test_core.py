"""The sans-IO stream core, driven with a fake clock (no event loop, no sockets)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

import steadystream as ss
from steadystream import conventions as c
from steadystream.instrumentation.core.checkpoint import Checkpoint, ContentHasher, PrefixVerifier
from steadystream.instrumentation.core.machine import CorePolicy, StreamCore
from steadystream.instrumentation.sinks.telemetry import ErrorRateWindow, Fanout
from telemetry_support import Recorder

POLICY = CorePolicy(first_token=3.0, idle=8.0, total=45.0, checkpoint_every=2)


def delta(text: str, seq: int | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "response.output_text.delta", "delta": text}
    if seq is not None:
        event["sequence_number"] = seq
    return event


CREATED = {"type": "response.created", "response": {"id": "resp_1"}, "sequence_number": 0}
COMPLETED = {"type": "response.completed", "response": {"id": "resp_1"}, "sequence_number": 9}


def opened(policy: CorePolicy = POLICY, **kw: Any) -> tuple[StreamCore, Recorder]:
    rec = Recorder()
    core = StreamCore(policy, rec, **kw)
    core.on_open(0.0)
    core.begin_attempt(0.0)
    return core, rec


def feed(core: StreamCore, item: Any, t_wait: float, t_item: float) -> Any:
    core.on_wait(t_wait)
    return core.on_item(item, t_item)


def test_ttft_ignores_lifecycle_events() -> None:
    """response.created does not count as the first token; the first text delta does."""
    core, rec = opened()
    assert feed(core, CREATED, 0.0, 0.5) is None
    assert rec.named("first_token") == []
    assert feed(core, delta("Hi", 1), 0.5, 1.25) is None
    assert rec.named("first_token") == [(1.25, 1.25)]
    assert core.response_id == "resp_1"


def test_first_token_timeout_fires_at_budget() -> None:
    """With no content, the wait deadline is exactly open + first_token."""
    core, rec = opened()
    feed(core, CREATED, 0.0, 0.1)
    core.on_wait(0.1)
    assert core.next_deadline() == 3.0
    assert core.check(2.999) is None
    exc = core.check(3.0)
    assert isinstance(exc, ss.FirstTokenTimeout)
    assert exc.checkpoint is None
    assert rec.named("timeout") == [(c.TIMEOUT_FIRST_TOKEN, 3.0)]
    assert core.check(3.5) is exc and len(rec.named("timeout")) == 1


def test_idle_timeout_not_reset_by_keepalives_and_carries_checkpoint() -> None:
    """Keep-alives and lifecycle events do not reset the idle budget; the error has the
    checkpoint of everything delivered."""
    core, _ = opened()
    feed(core, delta("ab"), 0.0, 1.0)
    for i in range(1, 7):
        feed(core, "", 1.0 + i - 1, 1.0 + i)  # empty string = keep-alive, 1 s apart
    core.on_wait(7.0)
    assert core.next_deadline() == pytest.approx(9.0)  # 1.0 + 8 s of upstream wait
    exc = core.check(9.0)
    assert isinstance(exc, ss.IdleTimeout)
    assert exc.checkpoint == Checkpoint(2, hashlib.sha256(b"ab").hexdigest(), 1, None, None)


def test_idle_budget_excludes_consumer_time() -> None:
    """Time the consumer holds a chunk does not use up the idle budget."""
    core, _ = opened()
    feed(core, delta("a"), 0.0, 1.0)
    # The consumer holds the chunk for 20 s, then asks again.
    core.on_wait(21.0)
    assert core.next_deadline() == pytest.approx(29.0)


def test_total_timeout_bounds_every_wait() -> None:
    """The total budget caps the idle deadline and raises TotalTimeout."""
    core, _ = opened(CorePolicy(first_token=3, idle=8, total=10, checkpoint_every=16))
    feed(core, delta("a"), 0.0, 1.0)
    feed(core, delta("b"), 1.0, 5.0)
    core.on_wait(5.0)
    assert core.next_deadline() == 10.0
    assert isinstance(core.check(10.0), ss.TotalTimeout)


def test_item_after_deadline_is_refused() -> None:
    """An item arriving after the deadline is not delivered: the timeout is returned."""
    core, _ = opened()
    exc = feed(core, delta("late"), 0.0, 3.5)
    assert isinstance(exc, ss.FirstTokenTimeout)
    assert core.content_bytes == 0


def test_checkpoints_every_n_chunks_with_incremental_hash() -> None:
    """A checkpoint every N content chunks, with offset, sha256, sequence and response id."""
    core, rec = opened()
    feed(core, CREATED, 0, 0.1)
    feed(core, delta("é", 1), 0.1, 0.2)
    feed(core, delta("x", 2), 0.2, 0.3)
    feed(core, delta("yz", 3), 0.3, 0.4)
    # Every 2 chunks (taken at the 2nd, read later), reported to sinks only when it matters.
    assert core.checkpoint == Checkpoint(
        3, hashlib.sha256("éx".encode()).hexdigest(), 2, 2, "resp_1"
    )
    assert rec.named("checkpoint") == []
    feed(core, COMPLETED, 0.4, 0.5)
    assert core.close(0.6) == c.OUTCOME_OK
    last = rec.named("checkpoint")[-1][0]
    assert (last.offset, last.chunks, last.sequence_number) == (5, 3, 9)
    assert last.sha256 == hashlib.sha256("éxyz".encode()).hexdigest()


def test_gaps_and_bytes_are_batched_and_exact_at_end() -> None:
    """Every gap between content chunks reaches the sink once, by the end."""
    core, rec = opened(CorePolicy(checkpoint_every=100))
    for i in range(5):
        feed(core, delta("ab"), float(i), float(i) + 0.5)
    core.close(10.0)
    batches = rec.named("content")
    assert sum(b[0] for b in batches) == 10
    assert [g for b in batches for g in b[1]] == pytest.approx([1000.0] * 4)


def test_phases_split_the_wall_time() -> None:
    """first_token_wait, upstream_wait and consumer add up to the stream's wall time."""
    core, rec = opened()
    feed(core, CREATED, 0.0, 0.5)  # 0.5 upstream before first token
    feed(core, delta("a"), 0.75, 1.0)  # 0.25 consumer, 0.25 upstream (first-token wait)
    feed(core, delta("b"), 2.0, 3.0)  # 1.0 consumer, 1.0 upstream wait
    feed(core, COMPLETED, 3.0, 3.0)
    core.close(3.5)  # 0.5 consumer after the last item
    outcome, error_class, phases, t, info = rec.named("ended")[0]
    assert (outcome, error_class, t) == (c.OUTCOME_OK, None, 3.5)
    assert phases == pytest.approx(
        {
            c.PHASE_FIRST_TOKEN_WAIT: 750.0,
            c.PHASE_UPSTREAM_WAIT: 1000.0,
            c.PHASE_CONSUMER: 1750.0,
        }
    )
    assert info == {"bytes": 2, "chunks": 2, "attempts": 1, "duration": 3.5}


def test_consumer_time_runs_from_an_item_to_the_next_wait() -> None:
    """The consumer's time runs from an item's return (or the open) to the start of the next
    wait, whether that wait ends with an item, a failed attempt or the close; a wait that began
    before the open finished (the open's own) adds none."""
    core, rec = opened()
    core.opening(0.0)
    core.attempt_opened(0.5)
    feed(core, delta("a"), 1.0, 1.5)  # 0.5 consumer (opened, not yet read), 0.5 upstream
    core.on_wait(4.0)  # 2.5 consumer holding "a"
    core.end_attempt(5.0, c.ERROR_CLASS_NETWORK)  # 1.0 upstream, ended by a failure
    core.begin_attempt(5.0)
    core.opening(5.0)
    core.attempt_opened(6.0)
    core.close(6.0)  # closed with the open's wait pending (1.0 upstream): no consumer time
    phases = rec.named("ended")[0][2]
    assert phases[c.PHASE_CONSUMER] == pytest.approx(3000.0)
    waited = phases[c.PHASE_FIRST_TOKEN_WAIT] + phases[c.PHASE_UPSTREAM_WAIT]
    assert waited == pytest.approx(2500.0)


def test_open_phase_measured_in_active_mode_and_recovery_latency() -> None:
    """An attempt that fails marks an interruption; first content after it is recovery."""
    core, rec = opened()
    core.attempt_opened(0.2)
    feed(core, delta("a"), 0.2, 0.5)
    core.on_wait(0.5)
    assert core.on_error(ConnectionResetError("boom"), 1.0) == c.ERROR_CLASS_NETWORK
    core.record_retry(c.RETRY_REASON_NETWORK, 1.0)
    core.begin_attempt(1.5)
    core.attempt_opened(1.75)
    core.record_resume(True, 1.75)
    feed(core, delta("b"), 1.75, 2.0)
    assert rec.named("recovery") == [(pytest.approx(1000.0),)]
    assert core.close(2.5) == c.OUTCOME_OK
    phases = rec.named("ended")[0][2]
    assert phases[c.PHASE_OPEN] == pytest.approx(450.0)
    assert [a[0] for a in rec.named("attempt_started")] == [1, 2]
    assert [(a[0], a[2]) for a in rec.named("attempt_ended")] == [
        (1, c.ERROR_CLASS_NETWORK),
        (2, None),
    ]
    assert rec.named("retry") == [(c.RETRY_REASON_NETWORK, 2, 1.0)]


def test_outcomes_error_abandoned_and_inband_failure() -> None:
    """Abandoned is its own outcome; in-band failures and truncated Responses streams are
    errors; close is idempotent."""
    core, rec = opened()
    feed(core, delta("a"), 0, 0.1)
    assert core.close(1.0, abandoned=True) == c.OUTCOME_ABANDONED
    assert core.close(2.0) == c.OUTCOME_ABANDONED
    assert len(rec.named("ended")) == 1

    core, rec = opened()
    feed(core, {"type": "response.failed", "response": {"id": "r"}}, 0, 0.1)
    assert core.close(1.0) == c.OUTCOME_ERROR
    assert rec.named("ended")[0][1] == c.ERROR_CLASS_RESPONSE_FAILED

    core, rec = opened()  # the consumer breaks out on an error event: still an error
    feed(core, {"type": "error", "message": "overloaded"}, 0, 0.1)
    assert core.close(1.0, abandoned=True) == c.OUTCOME_ERROR
    assert rec.named("ended")[0][1] == c.ERROR_CLASS_UPSTREAM_EVENT

    core, rec = opened()
    feed(core, CREATED, 0, 0.1)
    feed(core, delta("a", 1), 0.1, 0.2)
    assert core.close(1.0) == c.OUTCOME_ERROR  # no response.completed: cut short
    assert rec.named("ended")[0][1] == c.ERROR_CLASS_NETWORK

    core, rec = opened()
    err = ss.UpstreamError("bad gateway", status=502)
    assert core.close(1.0, error=err) == c.OUTCOME_ERROR
    assert rec.named("ended")[0][1] == c.ERROR_CLASS_UPSTREAM_5XX


def test_fence_and_json_checks_at_end() -> None:
    """An unclosed code fence and incomplete JSON are reported once, at a clean end."""
    core, rec = opened(expect_json=True)
    for part in ['{"a": "``', "`py\\n", 'x"']:
        feed(core, part, 0, 0.1)
    core.close(1.0)
    kinds = [args[0] for args in rec.named("reassembly_error")]
    assert kinds == [c.REASSEMBLY_JSON]

    core, rec = opened()
    for part in ["text\n`", "``python\nprint()\n", "``", "`\n", "``", "`\nopen"]:
        feed(core, part, 0, 0.1)
    core.close(1.0)
    assert [args[0] for args in rec.named("reassembly_error")] == [c.REASSEMBLY_FENCE]


def test_raising_observer_is_swallowed_by_fanout() -> None:
    """A sink that raises does not stop the core or the other sinks."""

    class Broken:
        def __getattr__(self, name: str) -> Any:
            def fail(*args: Any) -> None:
                raise RuntimeError("exporter down")

            return fail

    good = Recorder()
    core = StreamCore(POLICY, Fanout([Broken(), good]))
    core.on_open(0.0)
    core.begin_attempt(0.0)
    feed(core, delta("a"), 0, 0.1)
    assert core.close(1.0) == c.OUTCOME_OK
    assert len(good.named("ended")) == 1


def test_error_rate_window_forgets_after_five_minutes() -> None:
    """The error-rate ring counts the last 5 minutes only, in fixed memory."""
    w = ErrorRateWindow()
    w.record(0.0, True)
    w.record(5.0, False)
    w.record(100.0, False)
    w.record(100.0, True)
    assert w.rate(100.0) == 0.5
    assert w.rate(305.0) == pytest.approx(1 / 2)  # bucket [0, 10) has left the window
    assert w.rate(1000.0) == 0.0
    w.record(3000.0, True)  # reuses a stale slot
    assert w.rate(3000.0) == 1.0


def test_prefix_verifier_accepts_exact_replay_and_rejects_divergence() -> None:
    """A replay matching the checkpoint yields only the new part; a divergent one fails."""
    h = ContentHasher()
    h.update_text("hello wo")
    cp = h.snapshot(chunks=2)
    v = PrefixVerifier(cp)
    assert v.feed("hel") == ""
    assert v.feed("lo world") == "rld"
    assert v.done
    bad = PrefixVerifier(cp)
    with pytest.raises(ValueError, match="diverges"):
        bad.feed("hello WOrld")


def test_chat_completions_chunks_are_read_by_shape() -> None:
    """Chat chunks (SDK objects and dicts): delta content, refusals and tool-call arguments
    are content; role-only and finish chunks are not."""
    from openai.types.chat import ChatCompletionChunk

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "gpt-4.1",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    raw = [
        chunk({"role": "assistant"}),
        chunk({"content": "Hel"}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
        chunk({"refusal": "no"}),
        chunk({}, finish="stop"),
    ]
    for items in (raw, [ChatCompletionChunk.model_validate(r) for r in raw]):
        core, rec = opened()
        for i, item in enumerate(items):
            feed(core, item, float(i), float(i) + 0.5)
        core.close(10.0)
        assert rec.named("first_token") == [(1.5, 1.5)]
        assert core.content_bytes == len('Hel{"a"no')
        assert core.response_id == "chatcmpl-1"
        assert rec.named("ended")[0][0] == c.OUTCOME_OK


def test_slow_streams_flush_measurements_at_least_every_second() -> None:
    """Bytes and gaps reach the sinks while a slow stream runs, not only at its end."""
    core, rec = opened(CorePolicy(checkpoint_every=1000))
    for i in range(4):
        feed(core, delta("ab"), 2.0 * i, 2.0 * i + 0.5)
    assert sum(args[0] for args in rec.named("content")) >= 6
    core.close(9.0)
    assert sum(args[0] for args in rec.named("content")) == 8


def test_earliest_deadline_while_the_consumer_holds_an_item() -> None:
    """The soonest possible next deadline: the remaining idle budget, or the fixed first-token
    deadline, never past the total one."""
    core, _ = opened()
    feed(core, CREATED, 0.0, 0.5)
    assert core.earliest_deadline(1.0) == 3.0  # first-token deadline, fixed
    feed(core, delta("a"), 1.0, 2.0)
    feed(core, "", 2.5, 4.5)  # keep-alive after 2 s of upstream wait: 6 s of idle left
    assert core.earliest_deadline(10.0) == pytest.approx(16.0)
    assert core.earliest_deadline(44.0) == 45.0  # capped by total


# ------------------------------------------------- first-token timeouts in the TTFT histogram
def _time_out_first_token(core: StreamCore, t_wait: float, t: float) -> ss.StreamTimeout:
    core.on_wait(t_wait)
    exc = core.check(t)
    assert isinstance(exc, ss.FirstTokenTimeout)
    return exc


def test_first_token_timeout_is_observed_once_at_the_time_waited() -> None:
    """A stream cut by the first-token timeout reports the time it waited (from its open, as
    time to first token counts) once, when it ends; never as a first token."""
    rec = Recorder()
    core = StreamCore(POLICY, rec)
    core.on_open(10.0)
    core.begin_attempt(10.0)
    feed(core, CREATED, 10.0, 10.2)  # lifecycle events are not a first token
    exc = _time_out_first_token(core, 10.2, 13.25)  # the watchdog saw it 0.25 s late
    assert rec.named("first_token_timeout") == []  # nothing until the stream ends
    core.close(13.3, error=exc)
    assert rec.named("first_token_timeout") == [(3.25, 13.25)]
    assert rec.named("first_token") == []
    names = [n for n, _ in rec.calls]
    assert names.index("first_token_timeout") < names.index("ended")


def test_timeout_then_first_token_in_a_retry_is_one_observation_of_the_full_wait() -> None:
    """Attempt 1 times out waiting for its first token, attempt 2 delivers one: the logical
    stream is observed once, at its first content, from its open (4.5 s, not attempt 2's
    1.2 s), and the timed-out wait is not observed again."""
    core, rec = opened()
    exc = _time_out_first_token(core, 0.0, 3.0)
    core.on_error(exc, 3.0)
    core.record_retry(c.RETRY_REASON_FIRST_TOKEN_TIMEOUT, 3.0)
    core.clear_expired()
    core.begin_attempt(3.3)
    assert feed(core, delta("Hi"), 3.3, 4.5) is None
    core.close(5.0)
    assert rec.named("first_token") == [(4.5, 4.5)]
    assert rec.named("first_token_timeout") == []


def test_every_attempt_timing_out_is_observed_once_at_the_last_timeout() -> None:
    """Two attempts both time out before a first token: one observation, at the last timeout
    (6.3 s after the open: how long the stream waited for a token that never came)."""
    core, rec = opened()
    exc = _time_out_first_token(core, 0.0, 3.0)
    core.on_error(exc, 3.0)
    core.record_retry(c.RETRY_REASON_FIRST_TOKEN_TIMEOUT, 3.0)
    core.clear_expired()
    core.begin_attempt(3.3)
    exc = _time_out_first_token(core, 3.3, 6.3)
    core.on_error(exc, 6.3)
    core.close(6.3, error=exc)
    assert rec.named("first_token_timeout") == [(pytest.approx(6.3), 6.3)]
    assert rec.named("first_token") == []
    assert rec.named("ended")[0][1] == c.ERROR_CLASS_FIRST_TOKEN_TIMEOUT


def test_other_failures_before_the_first_token_are_not_observed() -> None:
    """An upstream error, a drop before content, or an abandoned wait have no time to first
    token: nothing reaches the TTFT histogram (they count in stream_errors_total)."""
    for end in ("error", "abandoned", "total"):
        rec = Recorder()
        core = StreamCore(CorePolicy(first_token=3, idle=8, total=2, checkpoint_every=16), rec)
        core.on_open(0.0)
        core.begin_attempt(0.0)
        feed(core, CREATED, 0.0, 0.5)
        if end == "error":
            err = ss.UpstreamError("503", status=503)
            core.on_error(err, 1.0)
            core.close(1.0, error=err)
        elif end == "abandoned":
            core.close(1.0, abandoned=True)
        else:
            core.on_wait(0.5)
            exc = core.check(2.0)
            assert isinstance(exc, ss.TotalTimeout)
            core.close(2.0, error=exc)
        assert rec.named("first_token") == [] and rec.named("first_token_timeout") == [], end
