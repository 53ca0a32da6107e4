"""generate_content_stream: retries of the whole request before content, and ResumeFailed after
it, with the real google-genai SDK (sync client and client.aio) against the simulator's
POST /v1beta/models/{model}:streamGenerateContent.

Each attempt's fault is set per request by an httpx2 request hook on the SDK's HTTP client (the
first request gets the first fault, and so on; later requests none). The simulator records
every request, so the tests count what went over the wire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from google.genai import errors, types

import steadystream as ss
from gemini_support import (
    CONTENTS,
    MODEL,
    TOKENS,
    Script,
    Telemetry,
    async_client,
    bodies,
    delta,
    make_spec,
    sha,
    sync_client,
    text_of,
)
from steadystream import conventions as c
from steadystream.instrumentation.gemini import generate_content_stream, quiet_config
from steadystream.instrumentation.policy.retry import classify
from steadystream.simulate import ROUTE_GEMINI_STREAM, Upstream, expected_text
from telemetry_support import simulated_input_tokens, token_deltas

EXPECTED = expected_text(CONTENTS, tokens=TOKENS)
CONFIG = {"max_output_tokens": TOKENS}
MODES = ["sync", "async"]


@pytest.fixture
def up() -> Iterator[Upstream]:
    with Upstream(record_requests=True) as upstream:
        yield upstream


def run(
    mode: str,
    tel: Telemetry,
    up: Upstream,
    script: Script,
    *,
    keep: list[Any] | None = None,
    **kw: Any,
) -> list[Any]:
    """Stream through generate_content_stream with a sync client or client.aio; returns the
    chunks (``keep`` also collects them, for a test that expects an error)."""
    kwargs = {"model": MODEL, "contents": CONTENTS, "config": CONFIG, **kw}
    seen: list[Any] = [] if keep is None else keep
    if mode == "sync":
        client, http = sync_client(up, script)
        try:
            for chunk in generate_content_stream(tel.monitor, client, **kwargs):
                seen.append(chunk)
            return seen
        finally:
            http.close()

    async def main() -> list[Any]:
        aclient, http = async_client(up, script)
        try:
            async for chunk in generate_content_stream(tel.monitor, aclient, **kwargs):
                seen.append(chunk)
            return seen
        finally:
            await http.aclose()

    return asyncio.run(main())


def without_gauges(d: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in d.items() if not k.startswith("stream_error_rate")}


#: The input tokens the simulator reports for the prompt.
INPUT_TOKENS = simulated_input_tokens(CONTENTS)


def ok_deltas(attempts: int, retry: str | None) -> dict[str, float]:
    """Every metric a stream that succeeded after ``attempts`` changes, and by how much."""
    out = {
        "stream_bytes_total": len(EXPECTED.encode()),
        "stream_chunk_gap_ms_count": TOKENS - 1,
        "stream_first_token_latency_ms_count": 1,
        # Every phase but pool: the client was not built by openai_client_options.
        **{f"stream_phase_duration_ms_count,phase={p}": 1 for p in c.PHASES if p != c.PHASE_POOL},
        "stream_requests_total,outcome=ok": 1,
        # The answering request's usage_metadata (a request that failed before its first
        # chunk reported none).
        **token_deltas(INPUT_TOKENS, TOKENS),
    }
    if retry is not None:
        out[f"stream_retry_total,reason={retry}"] = attempts - 1
    return out


@pytest.mark.parametrize("mode", MODES)
def test_healthy_stream(mode: str, up: Upstream) -> None:
    tel = Telemetry()
    before = tel.snapshot()
    chunks = run(mode, tel, up, Script())
    assert sha(text_of(chunks)) == sha(EXPECTED)
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == TOKENS
    d = without_gauges(delta(before, tel.snapshot()))
    phases = {k for k in d if k.startswith("stream_phase_duration_ms_count")}
    assert d == {**ok_deltas(1, None), **{k: 1 for k in phases}}
    (span,) = tel.stream_spans()
    assert span.attributes["gen_ai.response.id"] == chunks[0].response_id
    # On the wire: one request, the config's maxOutputTokens, the SDK's retries off.
    (body,) = bodies(up)
    assert body["generationConfig"]["maxOutputTokens"] == TOKENS
    assert body["contents"] == [{"parts": [{"text": CONTENTS}], "role": "user"}]
    # The server's deadline is the total budget (60 s), not the 30.25 s read backstop.
    (request,) = [r for r in up.recorded_requests if r.route == ROUTE_GEMINI_STREAM]
    assert request.headers["x-server-timeout"] == "60"


@pytest.mark.parametrize("mode", MODES)
def test_healthy_stream_follows_the_genai_conventions(mode: str, up: Upstream) -> None:
    """Usage, finish reason and model from the last chunk's usage_metadata, finish_reason and
    model_version; the server from the client's base URL; the span named for the call."""
    tel = Telemetry()
    run(mode, tel, up, Script())
    (span,) = tel.stream_spans()
    attrs = dict(span.attributes or {})
    host, port = urlsplit(up.url).hostname, urlsplit(up.url).port
    assert span.name == f"{c.OPERATION_CHAT} {MODEL}"
    assert attrs[c.ATTR_INPUT_TOKENS] == INPUT_TOKENS
    assert attrs[c.ATTR_OUTPUT_TOKENS] == TOKENS
    assert tuple(attrs[c.ATTR_FINISH_REASONS]) == ("STOP",)
    assert attrs[c.ATTR_RESPONSE_MODEL] == MODEL
    assert (attrs[c.ATTR_SERVER_ADDRESS], attrs[c.ATTR_SERVER_PORT]) == (host, port)
    assert c.ATTR_ERROR_TYPE not in attrs


RETRIED_BEFORE_CONTENT = [
    ("429, retry_after=100ms", "429"),
    ("503", "5xx"),
    ("500", "5xx"),
    ("408", "408"),
    ("drop_after=0", "network"),  # the connection drops right after the response headers
    ("error_event=0", "5xx"),  # a 503 UNAVAILABLE error chunk before any text
    ("end_after=0", "network"),  # an empty body: a cut that looks like a clean end
    ("keepalive", "network"),  # Gemini sends no SSE comments: an empty body here too
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("fault", "reason"), RETRIED_BEFORE_CONTENT)
def test_retried_before_content(mode: str, fault: str, reason: str, up: Upstream) -> None:
    tel = Telemetry()
    before = tel.snapshot()
    chunks = run(mode, tel, up, Script(fault))
    assert sha(text_of(chunks)) == sha(EXPECTED)
    d = delta(before, tel.snapshot())
    assert d[f"stream_retry_total,reason={reason}"] == 1
    assert sum(v for k, v in d.items() if k.startswith("stream_retry_total")) == 1
    assert d["stream_requests_total,outcome=ok"] == 1
    assert d["stream_bytes_total"] == len(EXPECTED.encode())
    assert "stream_resume_failure_total" not in d
    assert len(tel.stream_spans()) == 1
    assert len(bodies(up)) == 2  # the whole request, once more


@pytest.mark.parametrize("mode", MODES)
def test_a_slow_first_token_is_retried(mode: str, up: Upstream) -> None:
    """The first attempt's first chunk is held back 3 s; the 1 s first-token budget ends it
    (for a sync client when the blocked read returns: the SDK exposes no socket to shut)."""
    tel = Telemetry(make_spec(first_token="1s"))
    before = tel.snapshot()
    chunks = run(mode, tel, up, Script("delay=3s"))
    assert sha(text_of(chunks)) == sha(EXPECTED)
    d = delta(before, tel.snapshot())
    assert d["stream_retry_total,reason=first_token_timeout"] == 1
    assert d[f"stream_timeouts_total,phase={c.TIMEOUT_FIRST_TOKEN}"] == 1
    assert d["stream_requests_total,outcome=ok"] == 1
    assert len(bodies(up)) == 2


CUT_AFTER_CONTENT = [
    ("drop_after=7", "network", 7),  # 7 text chunks, then the connection drops
    ("error_event=7", "5xx", 7),  # a 503 UNAVAILABLE chunk after 7 text chunks
    ("failed=7", "5xx", 7),  # a 500 INTERNAL chunk
    ("end_after=7", "network", 7),  # the body ends without a finish reason
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("fault", "reason", "pieces"), CUT_AFTER_CONTENT)
def test_a_cut_after_content_is_resume_failed(
    mode: str, fault: str, reason: str, pieces: int, up: Upstream
) -> None:
    """Gemini has no resume and a continuation is not exact: ResumeFailed with the exact
    checkpoint, and no second request."""
    tel = Telemetry()
    before = tel.snapshot()
    seen: list[Any] = []
    with pytest.raises(ss.ResumeFailed) as info:
        run(mode, tel, up, Script(fault), keep=seen)
    delivered = expected_text(CONTENTS, tokens=pieces)
    assert text_of(seen) == delivered
    cp = info.value.checkpoint
    assert cp is not None
    assert (cp.offset, cp.sha256, cp.chunks) == (len(delivered.encode()), sha(delivered), pieces)
    assert "no server-side resume" in str(info.value)
    d = without_gauges(delta(before, tel.snapshot()))
    assert d == {
        "stream_bytes_total": len(delivered.encode()),
        "stream_chunk_gap_ms_count": pieces - 1,
        "stream_first_token_latency_ms_count": 1,
        **{k: 1 for k in d if k.startswith("stream_phase_duration_ms_count")},
        "stream_requests_total,outcome=error": 1,
        f"stream_errors_total,error_class={c.ERROR_CLASS_RESUME_FAILED}": 1,
        "stream_resume_failure_total": 1,
        f"stream_retry_total,reason={reason}": 1,
        # The chunks delivered reported the prompt's tokens; the output count comes with the
        # last chunk, which never came.
        f"{c.TOKENS_TOTAL},{c.LABEL_TOKEN_TYPE}={c.TOKEN_INPUT}": INPUT_TOKENS,
    }
    assert len(tel.stream_spans()) == 1
    assert len(bodies(up)) == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_stall_after_content_is_cut_at_idle_and_resume_failed(mode: str, up: Upstream) -> None:
    tel = Telemetry(make_spec(stream_idle="1s"))
    with pytest.raises(ss.ResumeFailed) as info:
        run(mode, tel, up, Script("stall=3s@6"))
    assert isinstance(info.value.checkpoint, ss.Checkpoint)
    assert info.value.checkpoint.offset == len(expected_text(CONTENTS, tokens=6).encode())
    assert tel.value("stream_retry_total", reason="idle_timeout") == 1
    assert tel.value("stream_timeouts_total", phase=c.TIMEOUT_IDLE) == 1
    assert tel.value("stream_resume_failure_total") == 1
    assert len(bodies(up)) == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_cut_after_a_thought_chunk_is_resume_failed(mode: str, up: Upstream) -> None:
    """A thought summary reached the consumer: no text, but a retry would repeat it."""
    tel = Telemetry()
    config = {**CONFIG, "thinking_config": {"include_thoughts": True}}
    seen: list[Any] = []
    with pytest.raises(ss.ResumeFailed):
        run(mode, tel, up, Script("drop_after=1"), config=config, keep=seen)
    assert len(seen) == 1 and seen[0].candidates[0].content.parts[0].thought
    assert tel.value("stream_bytes_total") == 0
    assert len(bodies(up)) == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_bad_request_is_not_retried(mode: str, up: Upstream) -> None:
    tel = Telemetry()
    with pytest.raises(ss.UpstreamError) as info:
        run(mode, tel, up, Script("400"))
    assert info.value.status == 400
    assert isinstance(info.value.__cause__, errors.ClientError)
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_UPSTREAM_4XX) == 1
    assert len(bodies(up)) == 1
    assert len(tel.stream_spans()) == 1


@pytest.mark.parametrize("mode", MODES)
def test_unavailable_that_outlasts_the_retries_is_a_typed_error(mode: str, up: Upstream) -> None:
    """The client is built with the SDK's own retries on (5 attempts); the requests carry one
    attempt, so the monitor's 3 retries are the only ones: exactly 4 requests."""
    tel = Telemetry()
    with pytest.raises(ss.UpstreamError) as info:
        run(mode, tel, up, Script("503", "503", "503", "503", "503", "503"))
    assert info.value.status == 503
    assert tel.value("stream_retry_total", reason="5xx") == 3
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_UPSTREAM_5XX) == 1
    assert len(bodies(up)) == 4
    assert up.stats.requests_to(ROUTE_GEMINI_STREAM, 503) == 4


def test_the_sdk_retries_are_off_even_when_the_client_turns_them_on(up: Upstream) -> None:
    tel = Telemetry()
    retries = types.HttpRetryOptions(attempts=5, initial_delay=0.01, max_delay=0.01)
    client, http = sync_client(up, Script("503", "503", "503", "503", "503"), retry_options=retries)
    try:
        with pytest.raises(ss.UpstreamError):
            list(generate_content_stream(tel.monitor, client, model=MODEL, contents=CONTENTS))
    finally:
        http.close()
    assert len(bodies(up)) == 4  # 1 + the monitor's 3 retries, none of the SDK's


@pytest.mark.parametrize("mode", MODES)
def test_a_max_tokens_end_is_yielded_and_not_retried(mode: str, up: Upstream) -> None:
    tel = Telemetry()
    chunks = run(mode, tel, up, Script("incomplete=5"))
    assert text_of(chunks) == expected_text(CONTENTS, tokens=5)
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_RESPONSE_INCOMPLETE) == 1
    assert tel.value("stream_retry_total", reason="network") == 0
    assert len(bodies(up)) == 1


@pytest.mark.parametrize("mode", MODES)
def test_breaking_out_is_abandoned_once(mode: str, up: Upstream) -> None:
    tel = Telemetry()
    if mode == "sync":
        client, http = sync_client(up)
        stream = generate_content_stream(tel.monitor, client, model=MODEL, contents=CONTENTS)
        for _ in stream:
            break
        stream.close()
        http.close()
    else:

        async def main() -> None:
            aclient, http = async_client(up)
            stream = generate_content_stream(tel.monitor, aclient, model=MODEL, contents=CONTENTS)
            async for _ in stream:
                break
            await stream.aclose()
            await http.aclose()

        asyncio.run(main())
    assert tel.value("stream_requests_total", outcome="abandoned") == 1
    assert len(tel.stream_spans()) == 1


# ------------------------------------------------------------------ Google's retry hint


def test_retry_info_in_the_body_is_the_retry_after(up: Upstream) -> None:
    """With the retry-after headers removed, the 429 body's google.rpc.RetryInfo (retryDelay
    "0.25s") is what the retry policy reads."""
    client, http = sync_client(up, Script("429, retry_after=250ms", strip_retry_headers=True))
    try:
        with pytest.raises(errors.ClientError) as info:
            list(client.models.generate_content_stream(model=MODEL, contents=CONTENTS))
    finally:
        http.close()
    assert "retry-after" not in info.value.response.headers
    verdict = classify(info.value)
    assert verdict.retry and verdict.reason == "429" and verdict.retry_after == 0.25


@pytest.mark.parametrize("mode", MODES)
def test_a_retry_info_beyond_the_cap_is_not_waited_for(mode: str, up: Upstream) -> None:
    """A RetryInfo of 10 min (headers removed) is past the spec's retry-after cap: the 429
    ends the stream at once instead of parking it."""
    tel = Telemetry()
    script = Script("429, retry_after=10m", strip_retry_headers=True)
    with pytest.raises(ss.UpstreamError) as info:
        run(mode, tel, up, script)
    assert info.value.status == 429
    assert info.value.retry_after == 600.0
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_RATE_LIMITED) == 1
    assert len(bodies(up)) == 1


# ------------------------------------------------------------------ the request's config


def test_quiet_config_merges_without_touching_the_callers_config() -> None:
    user = types.GenerateContentConfig(
        max_output_tokens=7, http_options=types.HttpOptions(headers={"x-a": "1"}, timeout=5000)
    )
    out = quiet_config(user, 12.5, 44.5)
    assert isinstance(out, types.GenerateContentConfig)
    assert out.max_output_tokens == 7
    assert out.http_options.headers == {"x-a": "1", "X-Server-Timeout": "45"}
    assert out.http_options.timeout == 5000  # the caller's own timeout is kept
    assert out.http_options.retry_options.attempts == 1
    assert user.http_options.retry_options is None
    assert user.http_options.headers == {"x-a": "1"}
    assert quiet_config(None, 1.2) == {
        "http_options": {"retry_options": {"attempts": 1}, "timeout": 1200}
    }
    raw = {"temperature": 0.0, "http_options": {"headers": {"x-server-timeout": "5"}}}
    assert quiet_config(raw, None, 45.0)["http_options"] == {
        "headers": {"x-server-timeout": "5"},  # the caller's own deadline is kept
        "retry_options": {"attempts": 1},
    }
    assert raw == {"temperature": 0.0, "http_options": {"headers": {"x-server-timeout": "5"}}}


@pytest.mark.parametrize("mode", MODES)
def test_a_config_model_goes_over_the_wire(mode: str, up: Upstream) -> None:
    tel = Telemetry()
    config = types.GenerateContentConfig(max_output_tokens=TOKENS, temperature=0.0)
    chunks = run(mode, tel, up, Script(), config=config)
    assert sha(text_of(chunks)) == sha(EXPECTED)
    (body,) = bodies(up)
    assert body["generationConfig"] == {"maxOutputTokens": TOKENS, "temperature": 0.0}


def test_not_a_gemini_client_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"client\.aio"):
        generate_content_stream(Telemetry().monitor, object(), model=MODEL, contents=CONTENTS)
