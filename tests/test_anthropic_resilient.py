"""messages_stream: retries and continuation with the real anthropic SDK (sync and async)
against the simulator's POST /v1/messages.

Each attempt's fault is set per request by an httpx2 request hook on the client (the first
request gets the first fault, and so on; later requests none), so a test scripts exactly which
attempt fails how. The simulator records every request, so continuation tests assert the
prefill that went over the wire.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest

import steadystream as ss
from anthropic_support import (
    MESSAGES,
    MODEL,
    PROMPT,
    TOKENS,
    Telemetry,
    delta,
    make_spec,
    sha,
    text_of,
    types_of,
)
from steadystream import conventions as c
from steadystream.instrumentation.anthropic import messages_stream
from steadystream.instrumentation.providers.anthropic_messages import (
    Continuation,
    ContinuationError,
)
from steadystream.simulate import ROUTE_MESSAGES, THINKING_TEXT, Upstream, expected_text
from telemetry_support import simulated_input_tokens, token_deltas

EXPECTED = expected_text("hi", tokens=TOKENS)


class Script:
    """The fault header of each request in turn (``"none"`` after the list)."""

    def __init__(self, *faults: str) -> None:
        self._faults = list(faults)
        self._lock = threading.Lock()

    def _next(self) -> str:
        with self._lock:
            return self._faults.pop(0) if self._faults else "none"

    def hook(self, request: httpx2.Request) -> None:
        request.headers[c.HEADER_FAULT] = self._next()

    async def ahook(self, request: httpx2.Request) -> None:
        self.hook(request)


@pytest.fixture
def up() -> Iterator[Upstream]:
    with Upstream(record_requests=True) as upstream:
        yield upstream


def run(mode: str, tel: Telemetry, up: Upstream, script: Script, **kw: Any) -> list[Any]:
    """Stream ``kw`` through messages_stream with a sync or async client; returns the events."""
    kwargs = {"model": MODEL, "max_tokens": TOKENS, "messages": MESSAGES, **kw}
    if mode == "sync":
        http = httpx2.Client(event_hooks={"request": [script.hook]})
        client = anthropic.Anthropic(base_url=up.url, api_key="test", http_client=http)
        try:
            return list(messages_stream(tel.monitor, client, **kwargs))
        finally:
            http.close()

    async def main() -> list[Any]:
        async with httpx2.AsyncClient(event_hooks={"request": [script.ahook]}) as http:
            client = anthropic.AsyncAnthropic(base_url=up.url, api_key="test", http_client=http)
            return [e async for e in messages_stream(tel.monitor, client, **kwargs)]

    return asyncio.run(main())


def assert_one_sequence(events: list[Any]) -> None:
    types = types_of(events)
    assert types.count("message_start") == 1 and types[0] == "message_start"
    assert types.count("message_stop") == 1 and types[-1] == "message_stop"
    assert types.count("content_block_start") == 1 and types.count("content_block_stop") == 1
    assert {e.index for e in events if e.type.startswith("content_block")} == {0}


def without_gauges(d: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in d.items() if not k.startswith("stream_error_rate")}


def bodies(up: Upstream) -> list[dict[str, Any]]:
    return [r.json() for r in up.recorded_requests if r.route == ROUTE_MESSAGES]


MODES = ["sync", "async"]


@pytest.mark.parametrize("mode", MODES)
def test_healthy_stream(mode: str, up: Upstream) -> None:
    tel = Telemetry()
    before = tel.snapshot()
    events = run(mode, tel, up, Script())
    assert_one_sequence(events)
    assert sha(text_of(events)) == sha(EXPECTED)
    d = delta(before, tel.snapshot())
    assert d["stream_requests_total,outcome=ok"] == 1
    assert d["stream_bytes_total"] == len(EXPECTED.encode())
    assert not any(k.startswith(("stream_retry_total", "stream_errors_total")) for k in d)
    assert len(tel.stream_spans()) == 1
    assert len(bodies(up)) == 1 and bodies(up)[0]["messages"] == MESSAGES


RETRIED_BEFORE_CONTENT = [
    ("429, retry_after=100ms", "429"),
    ("529", "5xx"),
    ("503", "5xx"),
    ("500", "5xx"),
    ("drop_after=0", "network"),
    ("error_event=2", "5xx"),  # overloaded_error after message_start and the block's start
    ("end_after=2", "network"),  # a clean EOF without message_stop, before content
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("fault", "reason"), RETRIED_BEFORE_CONTENT)
def test_retried_before_content(mode: str, fault: str, reason: str, up: Upstream) -> None:
    tel = Telemetry()
    before = tel.snapshot()
    events = run(mode, tel, up, Script(fault))
    assert_one_sequence(events)
    assert sha(text_of(events)) == sha(EXPECTED)
    d = delta(before, tel.snapshot())
    assert d[f"stream_retry_total,reason={reason}"] == 1
    assert d["stream_requests_total,outcome=ok"] == 1
    assert d["stream_bytes_total"] == len(EXPECTED.encode())
    assert "stream_resume_success_total" not in d  # nothing was delivered: a plain retry
    assert len(tel.stream_spans()) == 1
    # No content was delivered, so the retry is the original request, without a prefill.
    assert [b["messages"] for b in bodies(up)] == [MESSAGES, MESSAGES]


def continuation_deltas(reason: str, pieces: int) -> dict[str, float]:
    """Every metric a stream continued once after content changes, and by how much. Tokens are
    the sums over both requests: each reported the prompt's input tokens (the continuation's
    prompt is the conversation without its prefill); the cut one reported only its
    message_start's output count (1), the continuation one per remaining piece."""
    return {
        **token_deltas(2 * simulated_input_tokens(PROMPT), 1 + TOKENS - pieces),
        "stream_bytes_total": len(EXPECTED.encode()),
        "stream_chunk_gap_ms_count": TOKENS - 1,
        "stream_first_token_latency_ms_count": 1,
        # Every phase but pool: the client was not built by openai_client_options.
        **{f"stream_phase_duration_ms_count,phase={p}": 1 for p in c.PHASES if p != c.PHASE_POOL},
        "stream_recovery_latency_ms_count": 1,
        "stream_requests_total,outcome=ok": 1,
        "stream_resume_success_total": 1,
        f"stream_retry_total,reason={reason}": 1,
    }


CUT_AFTER_CONTENT = [
    ("drop_after=10", "network", 7),  # 3 lifecycle events, then 7 deltas, then the cut
    ("error_event=10", "5xx", 7),  # overloaded_error mid-stream
    ("failed=13", "5xx", 10),  # api_error mid-stream
    ("end_after=9", "network", 6),  # EOF without message_stop
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("fault", "reason", "pieces"), CUT_AFTER_CONTENT)
def test_cut_after_content_is_continued(
    mode: str, fault: str, reason: str, pieces: int, up: Upstream
) -> None:
    tel = Telemetry()
    before = tel.snapshot()
    events = run(mode, tel, up, Script(fault))
    assert_one_sequence(events)
    assert sha(text_of(events)) == sha(EXPECTED)  # the full answer, nothing lost or repeated
    d = delta(before, tel.snapshot())
    assert without_gauges(d) == continuation_deltas(reason, pieces)
    assert len(tel.stream_spans()) == 1
    # On the wire: the continuation repeats the conversation plus exactly the delivered text
    # as the last, assistant, message.
    delivered = expected_text("hi", tokens=pieces)
    first, second = bodies(up)
    assert first["messages"] == MESSAGES
    assert second["messages"] == [*MESSAGES, {"role": "assistant", "content": delivered}]
    assert delivered == delivered.rstrip()


@pytest.mark.parametrize("mode", MODES)
def test_a_stall_after_content_is_cut_at_idle_and_continued(mode: str, up: Upstream) -> None:
    tel = Telemetry(make_spec(stream_idle="1s"))
    before = tel.snapshot()
    events = run(mode, tel, up, Script("stall=10s@9"))
    assert_one_sequence(events)
    assert sha(text_of(events)) == sha(EXPECTED)
    d = delta(before, tel.snapshot())
    assert d["stream_retry_total,reason=idle_timeout"] == 1
    assert d[f"stream_timeouts_total,phase={c.TIMEOUT_IDLE}"] == 1
    assert d["stream_resume_success_total"] == 1
    assert bodies(up)[1]["messages"][-1] == {
        "role": "assistant",
        "content": expected_text("hi", tokens=6),
    }


@pytest.mark.parametrize("mode", MODES)
def test_a_slow_first_token_is_retried(mode: str, up: Upstream) -> None:
    tel = Telemetry(make_spec(first_token="1s"))
    before = tel.snapshot()
    events = run(mode, tel, up, Script("delay=10s"))
    assert_one_sequence(events)  # the first attempt's message_start is not repeated
    assert sha(text_of(events)) == sha(EXPECTED)
    d = delta(before, tel.snapshot())
    assert d["stream_retry_total,reason=first_token_timeout"] == 1
    assert d["stream_requests_total,outcome=ok"] == 1
    assert [b["messages"] for b in bodies(up)] == [MESSAGES, MESSAGES]


@pytest.mark.parametrize("mode", MODES)
def test_trailing_whitespace_is_stripped_from_the_prefill(mode: str, up: Upstream) -> None:
    """Find a cut point whose delivered text ends in whitespace (a newline piece), so the
    prefill must be stripped and the continuation's repeat of it dropped."""
    prompt, pieces = next(
        (p, n)
        for p in (f"whitespace {i}" for i in range(500))
        for n in range(1, TOKENS)
        if expected_text(p, tokens=n) != expected_text(p, tokens=n).rstrip()
    )
    delivered = expected_text(prompt, tokens=pieces)
    messages = [{"role": "user", "content": prompt}]
    tel = Telemetry()
    events = run(mode, tel, up, Script(f"drop_after={3 + pieces}"), messages=messages)
    assert sha(text_of(events)) == sha(expected_text(prompt, tokens=TOKENS))
    assert bodies(up)[1]["messages"][-1] == {"role": "assistant", "content": delivered.rstrip()}
    assert delivered != delivered.rstrip()
    assert tel.value("stream_resume_success_total") == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_bad_request_is_not_retried(mode: str, up: Upstream) -> None:
    tel = Telemetry()
    with pytest.raises(ss.UpstreamError) as info:
        run(mode, tel, up, Script("400"))
    assert info.value.status == 400
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_UPSTREAM_4XX) == 1
    assert tel.value("stream_retry_total", reason="5xx") == 0
    assert len(bodies(up)) == 1
    assert len(tel.stream_spans()) == 1


@pytest.mark.parametrize("mode", MODES)
def test_overload_that_outlasts_the_retries_is_a_typed_error(mode: str, up: Upstream) -> None:
    tel = Telemetry()
    with pytest.raises(ss.UpstreamError) as info:
        run(mode, tel, up, Script("529", "529", "529", "529"))
    assert info.value.status == 529
    assert tel.value("stream_retry_total", reason="5xx") == 3
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_UPSTREAM_5XX) == 1
    assert len(bodies(up)) == 4


def test_up_stats_count_messages(up: Upstream) -> None:
    run("sync", Telemetry(), up, Script("529"))
    assert up.stats.requests_to(ROUTE_MESSAGES, 529) == 1
    assert up.stats.requests_to(ROUTE_MESSAGES, 200) == 1


# ----------------------------------------------------------- where continuation cannot be exact


def text_event(index: int, text: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "text_delta", "text": text},
    }


def test_continuation_refuses_a_delivered_tool_use_block() -> None:
    state = Continuation(MESSAGES)
    state.observe({"type": "message_start", "message": {"id": "m"}})
    state.observe({"type": "content_block_start", "index": 0, "content_block": {"type": "text"}})
    state.observe(text_event(0, "Let me look."))
    state.observe({"type": "content_block_stop", "index": 0})
    state.observe(
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}},
        }
    )
    with pytest.raises(ContinuationError, match="tool_use"):
        state.messages()


def test_continuation_refuses_a_delivered_thinking_block() -> None:
    state = Continuation(MESSAGES)
    state.observe(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}}
    )
    with pytest.raises(ContinuationError, match="thinking"):
        state.messages()


def test_continuation_rewrites_the_new_stream_into_the_delivered_one() -> None:
    state = Continuation(MESSAGES)
    state.observe({"type": "message_start", "message": {"id": "m1"}})
    state.observe({"type": "content_block_start", "index": 0, "content_block": {"type": "text"}})
    state.observe(text_event(0, "Hello \n"))
    messages, stripped = state.messages()
    assert messages == [*MESSAGES, {"role": "assistant", "content": "Hello"}]
    assert stripped == " \n"
    adapt = state.adapter(stripped)
    from steadystream.instrumentation.providers.base import MISS

    assert adapt({"type": "message_start", "message": {"id": "m2"}}) is MISS
    assert (
        adapt({"type": "content_block_start", "index": 0, "content_block": {"type": "text"}})
        is MISS
    )
    assert adapt(text_event(0, " ")) is MISS  # repeats whitespace the consumer has
    assert adapt(text_event(0, "\nworld")) == text_event(0, "world")
    assert adapt(text_event(0, " again")) == text_event(0, " again")
    assert adapt({"type": "message_stop"}) == {"type": "message_stop"}


THINKING = {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize("mode", MODES)
def test_a_thinking_stream_runs_through(mode: str, up: Upstream) -> None:
    tel = Telemetry()
    events = run(mode, tel, up, Script(), thinking=THINKING)
    starts = [(e.index, e.content_block.type) for e in events if e.type == "content_block_start"]
    assert starts == [(0, "thinking"), (1, "text")]
    assert sha(text_of(events)) == sha(EXPECTED)
    assert tel.value("stream_bytes_total") == len((THINKING_TEXT + EXPECTED).encode())


@pytest.mark.parametrize("mode", MODES)
def test_a_cut_after_a_thinking_block_is_resume_failed(mode: str, up: Upstream) -> None:
    """A prefill cannot reproduce a thinking block: the stream ends with ResumeFailed and the
    exact checkpoint, and no continuation is sent."""
    tel = Telemetry()
    delivered = THINKING_TEXT + expected_text("hi", tokens=3)
    with pytest.raises(ss.ResumeFailed) as info:
        # message_start, 4 thinking-block events, the text block's start and a ping: 7 events,
        # then 3 text deltas, then the cut.
        run(mode, tel, up, Script("drop_after=10"), thinking=THINKING)
    assert "thinking" in str(info.value)
    assert info.value.checkpoint is not None
    assert info.value.checkpoint.offset == len(delivered.encode())
    assert info.value.checkpoint.sha256 == sha(delivered)
    assert tel.value("stream_resume_failure_total") == 1
    assert tel.value("stream_resume_success_total") == 0
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_RESUME_FAILED) == 1
    assert len(bodies(up)) == 1
    assert len(tel.stream_spans()) == 1
