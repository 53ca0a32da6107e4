"""monitor.wrap around Anthropic Messages streams: the real anthropic SDK (sync and async) and
raw httpx SSE against the simulator's POST /v1/messages."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx
import pytest

import steadystream as ss
from anthropic_support import (
    MESSAGES,
    MODEL,
    PROMPT,
    TOKENS,
    Telemetry,
    delta,
    fault,
    make_spec,
    sha,
    text_of,
    types_of,
)
from steadystream import conventions as c
from steadystream.simulate import ROUTE_MESSAGES, Upstream, expected_text
from telemetry_support import simulated_input_tokens, token_deltas

EXPECTED = expected_text("hi", tokens=TOKENS)
HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "test"}


def create(client: Any, **kw: Any) -> Any:
    return client.messages.create(
        model=MODEL, max_tokens=TOKENS, messages=MESSAGES, stream=True, **kw
    )


def wrap(tel: Telemetry, stream: Any) -> Any:
    return tel.monitor.wrap(stream, model=MODEL, provider="anthropic")


def ok_deltas(text: str) -> dict[str, float]:
    n = len(text.encode())
    chunks = TOKENS
    return {
        "stream_bytes_total": n,
        "stream_chunk_gap_ms_count": chunks - 1,
        "stream_first_token_latency_ms_count": 1,
        f"stream_phase_duration_ms_count,phase={c.PHASE_CONSUMER}": 1,
        f"stream_phase_duration_ms_count,phase={c.PHASE_FIRST_TOKEN_WAIT}": 1,
        f"stream_phase_duration_ms_count,phase={c.PHASE_UPSTREAM_WAIT}": 1,
        "stream_requests_total,outcome=ok": 1,
        # message_start reports the input tokens, message_delta the output (one per piece)
        **token_deltas(simulated_input_tokens(PROMPT), chunks),
    }


def without_gauges(d: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in d.items() if not k.startswith("stream_error_rate")}


def test_sdk_sync_stream_is_measured_exactly() -> None:
    tel = Telemetry()
    with Upstream() as up:
        client = anthropic.Anthropic(base_url=up.url, api_key="test", max_retries=0)
        before = tel.snapshot()
        events = list(wrap(tel, create(client)))
        after = tel.snapshot()
    assert types_of(events)[:2] == ["message_start", "content_block_start"]
    assert types_of(events)[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert sha(text_of(events)) == sha(EXPECTED)
    assert without_gauges(delta(before, after)) == ok_deltas(EXPECTED)
    (span,) = tel.stream_spans()
    assert span.attributes["gen_ai.response.id"] == events[0].message.id
    assert span.attributes["steadystream.bytes"] == len(EXPECTED.encode())


def test_sdk_async_stream_is_measured_exactly() -> None:
    tel = Telemetry()

    async def main(url: str) -> list[Any]:
        client = anthropic.AsyncAnthropic(base_url=url, api_key="test", max_retries=0)
        stream = await create(client)
        return [e async for e in wrap(tel, stream)]

    with Upstream() as up:
        before = tel.snapshot()
        events = asyncio.run(main(up.url))
        after = tel.snapshot()
    assert sha(text_of(events)) == sha(EXPECTED)
    assert without_gauges(delta(before, after)) == ok_deltas(EXPECTED)
    assert len(tel.stream_spans()) == 1


def test_a_healthy_slow_stream_is_not_cut_at_the_first_token_deadline() -> None:
    """A delta every 60 ms for about 1.4 s with a 500 ms first-token budget: content is
    recognised, so the budget is met at the first delta and the stream runs to its end."""
    tel = Telemetry(make_spec(first_token="500ms"))
    with Upstream(token_interval=0.06) as up:
        client = anthropic.Anthropic(base_url=up.url, api_key="test", max_retries=0)
        events = list(wrap(tel, create(client)))
    assert sha(text_of(events)) == sha(EXPECTED)
    assert tel.value("stream_requests_total", outcome="ok") == 1
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_FIRST_TOKEN) == 0
    assert tel.value("stream_first_token_latency_ms_count") == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_overloaded_error_event_is_an_upstream_error_event(mode: str) -> None:
    """The SDK raises the mid-stream ``error`` event (overloaded_error) as an APIStatusError
    on the 200 response; the wrapper re-raises it unchanged and labels it by its body."""
    tel = Telemetry()
    seen: list[Any] = []

    async def amain(url: str) -> None:
        client = anthropic.AsyncAnthropic(base_url=url, api_key="test", max_retries=0)
        stream = await create(client, extra_headers=fault("error_event"))
        async for e in wrap(tel, stream):
            seen.append(e)

    with Upstream() as up, pytest.raises(anthropic.APIStatusError) as info:
        if mode == "sync":
            client = anthropic.Anthropic(base_url=up.url, api_key="test", max_retries=0)
            for e in wrap(tel, create(client, extra_headers=fault("error_event"))):
                seen.append(e)
        else:
            asyncio.run(amain(up.url))
    assert info.value.type == "overloaded_error"
    half = expected_text("hi", tokens=TOKENS // 2)
    assert text_of(seen) == half  # the error event comes in the middle of the deltas
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_UPSTREAM_EVENT) == 1
    assert tel.value("stream_requests_total", outcome="error") == 1
    assert tel.value("stream_bytes_total") == len(half.encode())
    assert len(tel.stream_spans()) == 1


def test_a_dropped_connection_is_a_network_error() -> None:
    tel = Telemetry()
    seen: list[Any] = []
    with Upstream() as up:
        client = anthropic.Anthropic(base_url=up.url, api_key="test", max_retries=0)
        with pytest.raises(Exception) as info:  # the SDK's transport error, re-raised as is
            for e in wrap(tel, create(client, extra_headers=fault("drop_after=8"))):
                seen.append(e)
    assert not isinstance(info.value, ss.StreamError)
    assert text_of(seen) == expected_text("hi", tokens=5)  # 3 lifecycle events, then 5 deltas
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_NETWORK) == 1
    assert len(tel.stream_spans()) == 1


def sse_json(events: list[Any]) -> list[dict[str, Any]]:
    return [e.json() for e in events if e.data]


def test_httpx_sse_stream_is_measured_exactly() -> None:
    tel = Telemetry()
    with Upstream() as up, httpx.Client() as http:
        body = {"model": MODEL, "max_tokens": TOKENS, "messages": MESSAGES, "stream": True}
        with http.stream("POST", f"{up.url}/v1/messages", json=body, headers=HEADERS) as resp:
            assert resp.status_code == 200
            events = list(wrap(tel, resp))
        assert up.stats.requests_to(ROUTE_MESSAGES, 200) == 1
    assert [e.event for e in events][:3] == ["message_start", "content_block_start", "ping"]
    assert sha(text_of(sse_json(events))) == sha(EXPECTED)
    assert tel.value("stream_bytes_total") == len(EXPECTED.encode())
    assert tel.value("stream_requests_total", outcome="ok") == 1
    assert tel.value("stream_first_token_latency_ms_count") == 1


def test_httpx_sse_error_event_and_cut_stream() -> None:
    """Over raw SSE the ``error`` event is an item: yielded, and the stream ends as an
    upstream_error_event; split frames (cut inside UTF-8 characters) still read exactly."""
    tel = Telemetry()
    body = {"model": MODEL, "max_tokens": TOKENS, "messages": MESSAGES, "stream": True}
    with Upstream() as up, httpx.Client() as http:
        hdrs = {**HEADERS, **fault("error_event, split=utf8")}
        with http.stream("POST", f"{up.url}/v1/messages", json=body, headers=hdrs) as resp:
            events = sse_json(list(wrap(tel, resp)))
    assert events[-1] == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded (simulated)"},
    }
    assert text_of(events) == expected_text("hi", tokens=TOKENS // 2)
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_UPSTREAM_EVENT) == 1
    assert tel.value("stream_reassembly_errors_total", kind=c.REASSEMBLY_UTF8) == 0


def test_simulator_errors_are_anthropic_shaped() -> None:
    with Upstream() as up:
        client = anthropic.Anthropic(base_url=up.url, api_key="test", max_retries=0)
        with pytest.raises(anthropic.RateLimitError) as rl:
            create(client, extra_headers=fault("429, retry_after=2s"))
        assert rl.value.response.headers["retry-after"] == "2"
        assert rl.value.type == "rate_limit_error"
        with pytest.raises(anthropic.OverloadedError):
            create(client, extra_headers=fault("529"))
        with pytest.raises(anthropic.BadRequestError) as bad:
            client.messages.create(
                model=MODEL,
                max_tokens=TOKENS,
                messages=[*MESSAGES, {"role": "assistant", "content": "Hello "}],
            )
        assert "trailing whitespace" in str(bad.value)
        with httpx.Client() as http:
            r = http.post(f"{up.url}/v1/messages", json={"model": MODEL}, headers={})
        assert r.status_code == 400
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert "anthropic-version" in r.json()["error"]["message"]


def test_an_eof_without_message_stop_is_a_cut_stream() -> None:
    """The SDK iterator simply stops when the body ends early; only the missing message_stop
    tells the cut from a clean end, and the stream is recorded as a network error."""
    tel = Telemetry()
    with Upstream() as up:
        client = anthropic.Anthropic(base_url=up.url, api_key="test", max_retries=0)
        events = list(wrap(tel, create(client, extra_headers=fault("end_after=8"))))
    assert "message_stop" not in types_of(events)
    assert text_of(events) == expected_text("hi", tokens=5)
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_NETWORK) == 1
    assert tel.value("stream_requests_total", outcome="ok") == 0
    assert len(tel.stream_spans()) == 1
