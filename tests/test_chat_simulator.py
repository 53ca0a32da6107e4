"""The simulator's POST /v1/chat/completions: the real openai SDK (strict response validation)
and raw httpx read the Chat Completions wire format, with the same faults as Responses."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from steadystream import conventions as c
from steadystream.simulate import ROUTE_CHAT, Upstream, expected_text

MESSAGES = [{"role": "user", "content": "hi"}]
TOKENS = 12
EXPECTED = expected_text("hi", tokens=TOKENS)


def client(up: Upstream) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=up.base_url, api_key="test", max_retries=0, _strict_response_validation=True
    )


def create(up: Upstream, fault: str = "none", **kw: Any) -> Any:
    kwargs = {"model": "gpt-sim", "messages": MESSAGES, "max_completion_tokens": TOKENS, **kw}
    return client(up).chat.completions.create(extra_headers={c.HEADER_FAULT: fault}, **kwargs)


def text_of(chunks: list[Any]) -> str:
    return "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)


def raw(up: Upstream, fault: str = "none", **body: Any) -> httpx.Response:
    payload = {"model": "gpt-sim", "messages": MESSAGES, "max_tokens": TOKENS, **body}
    return httpx.post(
        f"{up.base_url}/chat/completions",
        json=payload,
        headers={c.HEADER_FAULT: fault},
        timeout=30,
    )


def data_lines(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of an SSE body, asserting there is no ``event:`` line."""
    lines = [line for line in response.text.split("\n") if line]
    assert not [line for line in lines if not line.startswith("data: ")], response.text
    return [line.removeprefix("data: ") for line in lines]


def test_a_stream_is_the_expected_text_in_well_formed_chunks(upstream: Upstream) -> None:
    chunks = list(create(upstream, stream=True))
    assert text_of(chunks) == EXPECTED
    first, *middle, last = chunks
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    assert [len(ch.choices[0].delta.content) > 0 for ch in middle] == [True] * TOKENS
    assert last.choices[0].finish_reason == "stop" and last.choices[0].delta.content is None
    assert {ch.id for ch in chunks} == {first.id} and first.id.startswith("chatcmpl-")
    assert {ch.object for ch in chunks} == {"chat.completion.chunk"}
    assert all(ch.usage is None for ch in chunks)
    assert upstream.stats.requests_to(ROUTE_CHAT, 200) == 1


def test_include_usage_adds_a_usage_chunk_before_done(upstream: Upstream) -> None:
    chunks = list(create(upstream, stream=True, stream_options={"include_usage": True}))
    assert text_of(chunks) == EXPECTED
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == TOKENS
    response = raw(upstream, stream=True, stream_options={"include_usage": True})
    payloads = data_lines(response)
    assert payloads[-1] == "[DONE]"
    assert all(json.loads(p)["usage"] is None for p in payloads[:-2])


async def test_an_async_client_streams_the_same_text(aupstream: Upstream) -> None:
    aclient = openai.AsyncOpenAI(base_url=aupstream.base_url, api_key="test", max_retries=0)
    stream = await aclient.chat.completions.create(
        model="gpt-sim", messages=MESSAGES, max_tokens=TOKENS, stream=True
    )
    assert text_of([ch async for ch in stream]) == EXPECTED


def test_without_stream_the_answer_is_one_completion(upstream: Upstream) -> None:
    completion = create(upstream)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == EXPECTED
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == TOKENS


def test_the_raw_stream_is_data_only_and_ends_with_done(upstream: Upstream) -> None:
    response = raw(upstream, stream=True)
    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = data_lines(response)
    assert payloads[-1] == "[DONE]"
    assert len(payloads) == 1 + TOKENS + 2


def test_a_429_has_openai_shape_and_retry_after(upstream: Upstream) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        create(upstream, "429, retry_after=2s", stream=True)
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.response.headers["retry-after-ms"] == "2000"
    assert info.value.code == "rate_limit_exceeded"
    assert upstream.stats.requests_to(ROUTE_CHAT, 429) == 1


@pytest.mark.parametrize("status", [500, 503, 529])
def test_server_errors(upstream: Upstream, status: int) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        create(upstream, str(status), stream=True)
    assert info.value.status_code == status
    assert upstream.stats.faults[f"status_{status}"] == 1


@pytest.mark.parametrize(
    ("fault", "code"), [("error_event=4", None), ("failed=4", "internal_error")]
)
def test_an_error_chunk_mid_stream_is_an_api_error(
    upstream: Upstream, fault: str, code: str | None
) -> None:
    seen: list[Any] = []
    with pytest.raises(openai.APIError) as info:
        seen.extend(create(upstream, fault, stream=True))
    assert not isinstance(info.value, openai.APIStatusError)
    assert info.value.body == {
        "message": "The server had an error while processing your request. (simulated)",
        "type": "server_error",
        "param": None,
        "code": code,
    }
    payloads = data_lines(raw(upstream, fault, stream=True))
    assert len(payloads) == 5 and "[DONE]" not in payloads  # no [DONE] after the error
    assert json.loads(payloads[-1])["error"]["type"] == "server_error"


def test_incomplete_ends_with_finish_reason_length(upstream: Upstream) -> None:
    chunks = list(create(upstream, "incomplete=5", stream=True))
    assert text_of(chunks) == expected_text("hi", tokens=4)
    assert chunks[-1].choices[0].finish_reason == "length"
    assert data_lines(raw(upstream, "incomplete=5", stream=True))[-1] == "[DONE]"


def test_end_after_is_a_clean_eof_without_finish_or_done(upstream: Upstream) -> None:
    chunks = list(create(upstream, "end_after=4", stream=True))
    assert text_of(chunks) == expected_text("hi", tokens=3)
    assert all(ch.choices[0].finish_reason is None for ch in chunks)
    assert "[DONE]" not in data_lines(raw(upstream, "end_after=4", stream=True))


def test_a_drop_is_a_connection_error(upstream: Upstream) -> None:
    seen: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        seen.extend(create(upstream, "drop_after=5", stream=True))
    assert text_of(seen) == expected_text("hi", tokens=4)
    assert upstream.stats.faults["drop"] == 1


@pytest.mark.parametrize("fault", ["split=utf8", "split=random", "split=3", "drip=1ms"])
def test_byte_level_faults_keep_the_text_exact(upstream: Upstream, fault: str) -> None:
    assert text_of(list(create(upstream, fault, stream=True))) == EXPECTED


def test_delay_and_stall_are_counted(upstream_factory: Any) -> None:
    up = upstream_factory("none")
    assert text_of(list(create(up, "delay=20ms", stream=True))) == EXPECTED
    assert text_of(list(create(up, "stall=20ms@3, heartbeat=5ms", stream=True))) == EXPECTED
    assert up.stats.faults["delay"] == 1 and up.stats.faults["stall"] == 1


def test_a_server_profile_applies_to_chat(upstream_factory: Any) -> None:
    up = upstream_factory("outage")
    with pytest.raises(openai.InternalServerError):
        client(up).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert up.stats.requests_to(ROUTE_CHAT, 503) == 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": MESSAGES}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": MESSAGES, "stream_options": {}}, "stream_options"),
        ({"model": "m", "messages": MESSAGES, "n": 2}, "n"),
        ({"model": "m", "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": MESSAGES, "stream": "yes"}, "stream"),
    ],
)
def test_a_bad_request_is_a_400_naming_the_parameter(
    upstream: Upstream, body: dict[str, Any], param: str
) -> None:
    response = httpx.post(f"{upstream.base_url}/chat/completions", json=body, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param


def test_requests_are_recorded() -> None:
    with Upstream(record_requests=True) as up:
        list(create(up, stream=True))
    (recorded,) = up.recorded_requests
    assert recorded.route == ROUTE_CHAT
    assert recorded.json()["messages"] == MESSAGES
