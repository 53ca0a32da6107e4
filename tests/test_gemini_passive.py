"""monitor.wrap around Gemini streams: the real google-genai SDK (sync, and the async
client.aio whose call is awaited before wrapping) and raw httpx SSE (alt=sse) against the
simulator's POST /v1beta/models/{model}:streamGenerateContent."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from google.genai import errors, types

import steadystream as ss
from gemini_support import (
    CONTENTS,
    MODEL,
    TOKENS,
    Telemetry,
    async_client,
    delta,
    make_spec,
    sha,
    sync_client,
    text_of,
)
from steadystream import conventions as c
from steadystream.simulate import (
    ROUTE_GEMINI,
    ROUTE_GEMINI_STREAM,
    THOUGHT_TEXT,
    Upstream,
    expected_text,
)
from telemetry_support import simulated_input_tokens, token_deltas

EXPECTED = expected_text(CONTENTS, tokens=TOKENS)
CONFIG: dict[str, Any] = {"max_output_tokens": TOKENS}
MODES = ["sync", "async"]


def with_fault(spec: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """A request config whose headers carry the simulator's fault (the SDK's retries off)."""
    return {
        **(config or CONFIG),
        "http_options": {
            "headers": {c.HEADER_FAULT: spec},
            "retry_options": {"attempts": 1},
        },
    }


def stream(
    mode: str, tel: Telemetry, up: Upstream, config: Any = None, *, seen: list[Any] | None = None
) -> list[Any]:
    """``monitor.wrap`` the SDK's stream: ``for`` over the sync client's, ``async for`` over
    the awaited ``client.aio`` one. Chunks are collected in ``seen`` as they come."""
    out: list[Any] = [] if seen is None else seen
    config = CONFIG if config is None else config
    if mode == "sync":
        client, http = sync_client(up)
        try:
            upstream = client.models.generate_content_stream(
                model=MODEL, contents=CONTENTS, config=config
            )
            for chunk in tel.monitor.wrap(upstream, model=MODEL, provider="gemini"):
                out.append(chunk)
            return out
        finally:
            http.close()

    async def main() -> list[Any]:
        aclient, http = async_client(up)
        try:
            upstream = await aclient.models.generate_content_stream(
                model=MODEL, contents=CONTENTS, config=config
            )
            async for chunk in tel.monitor.wrap(upstream, model=MODEL, provider="gemini"):
                out.append(chunk)
            return out
        finally:
            await http.aclose()

    return asyncio.run(main())


def without_gauges(d: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in d.items() if not k.startswith("stream_error_rate")}


def ok_deltas(text: str, chunks: int) -> dict[str, float]:
    return {
        "stream_bytes_total": len(text.encode()),
        "stream_chunk_gap_ms_count": chunks - 1,
        "stream_first_token_latency_ms_count": 1,
        f"stream_phase_duration_ms_count,phase={c.PHASE_CONSUMER}": 1,
        f"stream_phase_duration_ms_count,phase={c.PHASE_FIRST_TOKEN_WAIT}": 1,
        f"stream_phase_duration_ms_count,phase={c.PHASE_UPSTREAM_WAIT}": 1,
        "stream_requests_total,outcome=ok": 1,
        **token_deltas(simulated_input_tokens(CONTENTS), TOKENS),
    }


@pytest.mark.parametrize("mode", MODES)
def test_sdk_stream_is_measured_exactly(mode: str) -> None:
    tel = Telemetry()
    with Upstream() as up:
        before = tel.snapshot()
        chunks = stream(mode, tel, up)
        after = tel.snapshot()
        assert up.stats.requests_to(ROUTE_GEMINI_STREAM, 200) == 1
    assert len(chunks) == TOKENS + 1  # one chunk per piece, then the finish reason
    assert sha(text_of(chunks)) == sha(EXPECTED)
    assert without_gauges(delta(before, after)) == ok_deltas(EXPECTED, TOKENS)
    (span,) = tel.stream_spans()
    assert span.attributes["gen_ai.response.id"] == chunks[0].response_id
    assert span.attributes["steadystream.bytes"] == len(EXPECTED.encode())


def test_a_healthy_slow_stream_is_not_cut_at_the_first_token_deadline() -> None:
    """A chunk every 60 ms for about 1.4 s with a 500 ms first-token budget: content is
    recognised, so the budget is met at the first chunk and the stream runs to its end."""
    tel = Telemetry(make_spec(first_token="500ms"))
    with Upstream(token_interval=0.06) as up:
        chunks = stream("sync", tel, up)
    assert sha(text_of(chunks)) == sha(EXPECTED)
    assert tel.value("stream_requests_total", outcome="ok") == 1
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_FIRST_TOKEN) == 0


@pytest.mark.parametrize("mode", MODES)
def test_thought_summaries_are_not_content(mode: str) -> None:
    tel = Telemetry()
    config = {**CONFIG, "thinking_config": {"include_thoughts": True}}
    with Upstream() as up:
        chunks = stream(mode, tel, up, config)
    assert chunks[0].candidates[0].content.parts[0].thought is True
    assert chunks[0].candidates[0].content.parts[0].text == THOUGHT_TEXT
    assert sha(text_of(chunks)) == sha(EXPECTED)
    assert tel.value("stream_bytes_total") == len(EXPECTED.encode())  # no thought bytes
    assert tel.value("stream_chunk_gap_ms_count") == TOKENS - 1


@pytest.mark.parametrize("mode", MODES)
def test_an_error_chunk_is_an_upstream_error_event(mode: str) -> None:
    """The SDK raises the mid-stream ``{"error": {"code": 503}}`` chunk as a ServerError on
    the 200 response; the wrapper re-raises it unchanged and labels it by its body."""
    tel = Telemetry()
    seen: list[Any] = []
    with Upstream() as up, pytest.raises(errors.ServerError) as info:
        stream(mode, tel, up, with_fault("error_event=9"), seen=seen)
    assert info.value.code == 503 and info.value.status == "UNAVAILABLE"
    assert text_of(seen) == expected_text(CONTENTS, tokens=9)
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_UPSTREAM_EVENT) == 1
    assert tel.value("stream_requests_total", outcome="error") == 1
    assert tel.value("stream_bytes_total") == len(expected_text(CONTENTS, tokens=9).encode())
    assert len(tel.stream_spans()) == 1


STATUS_ERRORS = [
    ("429", errors.ClientError, c.ERROR_CLASS_RATE_LIMITED),
    ("503", errors.ServerError, c.ERROR_CLASS_UPSTREAM_5XX),
    ("400", errors.ClientError, c.ERROR_CLASS_UPSTREAM_4XX),
    ("drop_after=4", Exception, c.ERROR_CLASS_NETWORK),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("fault", "raised", "error_class"), STATUS_ERRORS)
def test_failures_are_labelled_by_class(
    mode: str, fault: str, raised: type[BaseException], error_class: str
) -> None:
    tel = Telemetry()
    with Upstream() as up, pytest.raises(raised) as info:
        stream(mode, tel, up, with_fault(fault))
    assert not isinstance(info.value, ss.StreamError)  # the SDK's own error, re-raised as is
    assert tel.value("stream_errors_total", error_class=error_class) == 1
    assert tel.value("stream_requests_total", outcome="error") == 1
    assert len(tel.stream_spans()) == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_max_tokens_end_is_an_incomplete_response(mode: str) -> None:
    tel = Telemetry()
    with Upstream() as up:
        chunks = stream(mode, tel, up, with_fault("incomplete=6"))
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert text_of(chunks) == expected_text(CONTENTS, tokens=6)
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_RESPONSE_INCOMPLETE) == 1


def test_an_async_stall_is_an_idle_timeout_with_the_checkpoint() -> None:
    tel = Telemetry(make_spec(stream_idle="1s"))
    with Upstream() as up, pytest.raises(ss.IdleTimeout) as info:
        stream("async", tel, up, with_fault("stall=5s@5"))
    cp = info.value.checkpoint
    assert cp is not None and cp.offset == len(expected_text(CONTENTS, tokens=5).encode())
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_IDLE) == 1
    assert len(tel.stream_spans()) == 1


def test_forgetting_the_await_is_a_clear_type_error() -> None:
    """``client.aio.models.generate_content_stream(...)`` is a coroutine: it must be awaited
    before it is wrapped."""
    tel = Telemetry()

    async def main(up: Upstream) -> None:
        aclient, http = async_client(up)
        pending = aclient.models.generate_content_stream(model=MODEL, contents=CONTENTS)
        try:
            with pytest.raises(TypeError, match="not coroutine"):
                tel.monitor.wrap(pending, model=MODEL, provider="gemini")
        finally:
            pending.close()
            await http.aclose()

    with Upstream() as up:
        asyncio.run(main(up))
    assert len(tel.stream_spans()) == 1


# ------------------------------------------------------------------------------ raw SSE

HEADERS = {"x-goog-api-key": "test"}


def sse_url(up: Upstream) -> str:
    return f"{up.url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"


def body(**config: Any) -> dict[str, Any]:
    return {
        "contents": [{"role": "user", "parts": [{"text": CONTENTS}]}],
        "generationConfig": {"maxOutputTokens": TOKENS, **config},
    }


def test_httpx_sse_stream_is_measured_exactly() -> None:
    tel = Telemetry()
    with Upstream() as up, httpx.Client() as http:
        before = tel.snapshot()
        with http.stream("POST", sse_url(up), json=body(), headers=HEADERS) as resp:
            assert resp.status_code == 200
            events = list(tel.monitor.wrap(resp, model=MODEL, provider="gemini"))
        after = tel.snapshot()
    chunks = [e.json() for e in events if e.data]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert sha(text_of(chunks)) == sha(EXPECTED)
    assert without_gauges(delta(before, after)) == ok_deltas(EXPECTED, TOKENS)


def test_httpx_sse_error_chunk_and_split_frames() -> None:
    """Over raw SSE the error chunk is an item: yielded, and the stream ends as an
    upstream_error_event; frames cut inside UTF-8 characters still read exactly."""
    tel = Telemetry()
    hdrs = {**HEADERS, c.HEADER_FAULT: "error_event, split=utf8"}
    with (
        Upstream() as up,
        httpx.Client() as http,
        http.stream("POST", sse_url(up), json=body(), headers=hdrs) as resp,
    ):
        chunks = [e.json() for e in tel.monitor.wrap(resp, model=MODEL, provider="gemini")]
    assert chunks[-1]["error"]["status"] == "UNAVAILABLE"
    assert text_of(chunks) == expected_text(CONTENTS, tokens=TOKENS // 2)
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_UPSTREAM_EVENT) == 1
    assert tel.value("stream_reassembly_errors_total", kind=c.REASSEMBLY_UTF8) == 0


# ------------------------------------------------------------------------- the simulator


def test_simulator_errors_are_google_shaped() -> None:
    with Upstream() as up, httpx.Client() as http:
        r = http.post(
            sse_url(up), json=body(), headers={**HEADERS, c.HEADER_FAULT: "429, retry_after=2s"}
        )
        assert r.status_code == 429
        assert r.headers["retry-after"] == "2"
        assert r.json()["error"] == {
            "code": 429,
            "message": "Resource has been exhausted (e.g. check quota). (simulated)",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}],
        }
        r = http.post(sse_url(up), json=body())
        assert (r.status_code, r.json()["error"]["status"]) == (403, "PERMISSION_DENIED")
        r = http.post(sse_url(up), json={"contents": []}, headers=HEADERS)
        assert r.status_code == 400
        assert "contents" in r.json()["error"]["message"]
        r = http.post(f"{up.url}/v1beta/models/{MODEL}:countTokens", json=body(), headers=HEADERS)
        assert r.status_code == 404


def test_generate_content_answers_whole() -> None:
    with Upstream() as up:
        client, http = sync_client(up)
        try:
            whole = client.models.generate_content(model=MODEL, contents=CONTENTS, config=CONFIG)
            assert whole.text == EXPECTED
            assert whole.candidates[0].finish_reason == types.FinishReason.STOP
            with pytest.raises(errors.ServerError) as info:
                client.models.generate_content(
                    model=MODEL, contents=CONTENTS, config=with_fault("failed")
                )
            assert info.value.code == 500 and info.value.status == "INTERNAL"
        finally:
            http.close()
        assert up.stats.requests_to(ROUTE_GEMINI, 200) == 1
        assert up.stats.requests_to(ROUTE_GEMINI, 500) == 1
