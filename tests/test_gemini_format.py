"""The Gemini wire format: GenerateContentResponse chunks as the google-genai SDK builds them,
as wire JSON (camelCase) and as the SDK's own dicts (snake_case); Google's error shape; the
error classification of the SDK's exceptions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.genai import errors, types

from steadystream import conventions as c
from steadystream.instrumentation.providers import registry as wire
from steadystream.instrumentation.providers.base import (
    CONTENT,
    END,
    ERROR,
    LIFECYCLE,
    MISS,
)
from steadystream.instrumentation.providers.failures import classify_failure
from steadystream.instrumentation.providers.gemini import (
    GEMINI,
    error_status,
    finish_reason,
    is_final,
    response_id,
    usage,
)


def chunk(
    *parts: dict[str, Any], finish: str | None = None, usage_: dict[str, int] | None = None
) -> dict[str, Any]:
    """A wire chunk (camelCase), as streamGenerateContent?alt=sse sends it."""
    candidate: dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [candidate], "responseId": "r-1", "modelVersion": "m"}
    if usage_ is not None:
        out["usageMetadata"] = usage_
    return out


def sdk(wire_chunk: dict[str, Any]) -> types.GenerateContentResponse:
    """The SDK object the google-genai SDK builds from a wire chunk."""
    return types.GenerateContentResponse._from_response(response=wire_chunk, kwargs={})


def snake(wire_chunk: dict[str, Any]) -> dict[str, Any]:
    """The SDK's own dict form (``model_dump``: snake_case)."""
    return sdk(wire_chunk).model_dump(exclude_none=True)


FORMS = [("wire", lambda d: d), ("sdk", sdk), ("snake", snake)]


@pytest.mark.parametrize(("form", "make"), FORMS)
def test_text_is_content_and_thoughts_are_not(form: str, make: Any) -> None:
    r = wire.read_item(make(chunk({"text": "Hello"})))
    assert (r.kind, r.text) == (CONTENT, "Hello")
    assert r.response_id == "r-1"
    r = wire.read_item(make(chunk({"text": "pondering", "thought": True})))
    assert r.kind == LIFECYCLE
    mixed = chunk({"text": "pondering", "thought": True}, {"text": "A"}, {"text": "B"})
    assert wire.read_item(make(mixed)).text == "AB"
    assert wire.content_text(make(chunk({"text": "x"}, finish="STOP"))) == "x"


@pytest.mark.parametrize(("form", "make"), FORMS)
def test_finish_reasons(form: str, make: Any) -> None:
    stop = make(chunk({"text": ""}, finish="STOP"))
    assert wire.read_item(stop).kind == END
    assert finish_reason(stop) == "STOP" and is_final(stop)
    for reason in ("MAX_TOKENS", "SAFETY", "RECITATION"):
        item = make(chunk({"text": ""}, finish=reason))
        r = wire.read_item(item)
        assert (r.kind, r.error_class) == (ERROR, c.ERROR_CLASS_RESPONSE_INCOMPLETE)
        assert wire.is_incomplete(item) and finish_reason(item) == reason
    going = make(chunk({"text": "on"}))
    assert finish_reason(going) is None and not is_final(going)


@pytest.mark.parametrize(("form", "make"), FORMS)
def test_usage_and_response_id(form: str, make: Any) -> None:
    counts = {"promptTokenCount": 5, "candidatesTokenCount": 7, "thoughtsTokenCount": 3}
    item = make(chunk({"text": ""}, finish="STOP", usage_=counts))
    assert usage(item) == (5, 10)  # thoughts are billed as output
    assert response_id(item) == "r-1"
    assert usage(make(chunk({"text": "a"}))) == (None, None)


def test_a_blocked_prompt_is_a_truncated_end() -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {}}
    for item in (blocked, sdk(blocked)):
        assert wire.read_item(item).error_class == c.ERROR_CLASS_RESPONSE_INCOMPLETE
        assert is_final(item)


def test_googles_error_shape_is_gemini_and_keeps_its_status() -> None:
    err = {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}
    r = wire.read_item(err)
    assert (r.kind, r.error_class, r.status) == (ERROR, c.ERROR_CLASS_UPSTREAM_EVENT, 503)
    assert wire.describe_error(err) == "error [503 UNAVAILABLE] overloaded"
    assert error_status(err) == 503
    # OpenAI's error shape (a string type, no numeric code) stays Chat Completions': read by
    # that format, which takes its server_error for a 500, never by Gemini's.
    openai_err = {"error": {"message": "boom", "type": "server_error", "code": None}}
    assert GEMINI.read(openai_err) is None
    assert wire.read_item(openai_err).status == 500


def test_raw_sse_data_is_read_as_a_chunk() -> None:
    data = json.dumps(chunk({"text": "Привет"}), ensure_ascii=False)
    r = wire.read_sse(data)
    assert (r.kind, r.text) == (CONTENT, "Привет")


class _Core:
    """Records what a fast path hands to the core."""

    def __init__(self) -> None:
        self.got: list[str] = []
        self.response_id: str | None = "r-1"  # the chunks' own

    def on_content(self, text: str, seq: int | None, t: float) -> None:
        self.got.append(text)


@pytest.mark.parametrize(("form", "make"), FORMS)
def test_fast_path_agrees_with_the_reading(form: str, make: Any) -> None:
    items = [
        make(chunk({"text": "Hello"})),
        make(chunk({"text": "pondering", "thought": True})),
        make(chunk({"text": ""}, finish="STOP")),
        make(chunk({"text": "A"}, {"text": "B"})),
    ]
    for item in items:
        core = _Core()
        out = wire.fast_path(item)(core, item, 0.0)
        r = wire.read_item(item)
        if out is MISS:
            assert core.got == []
        else:
            assert r.kind == CONTENT and core.got == [r.text]
    # A chunk with a response id the core has not recorded (the first, or another answer's)
    # goes the general way, which records it.
    for known in (None, "r-0"):
        core = _Core()
        core.response_id = known
        first = make(chunk({"text": "Hello"}))
        assert wire.fast_path(first)(core, first, 0.0) is MISS


@pytest.mark.parametrize(("form", "make"), FORMS)
def test_text_rewriting(form: str, make: Any) -> None:
    item = make(chunk({"text": "think", "thought": True}, {"text": "Hello world"}))
    out = wire.replace_text(item, "Hello world", "world")
    assert wire.content_text(out) == "world"
    assert wire.content_text(item) == "Hello world"  # the original is not changed
    assert wire.merge_key(make(chunk({"text": "a"}))) == ("gemini", "text")
    assert wire.merge_key(make(chunk({"text": "a"}, finish="STOP"))) is None
    merged = wire.with_text(make(chunk({"text": "a"})), "ab")
    assert wire.content_text(merged) == "ab"


# ------------------------------------------------------------------- error classification


def test_an_http_error_is_classified_by_its_status() -> None:
    body = {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}
    f = classify_failure(errors.ClientError(429, body, None))
    assert (f.error_class, f.reason, f.status) == (c.ERROR_CLASS_RATE_LIMITED, "429", 429)
    f = classify_failure(errors.ServerError(503, body, None))
    assert (f.error_class, f.reason) == (c.ERROR_CLASS_UPSTREAM_5XX, "5xx")
    f = classify_failure(errors.ClientError(400, body, None))
    assert (f.error_class, f.reason) == (c.ERROR_CLASS_UPSTREAM_4XX, None)


def test_retry_info_becomes_retry_after_ms() -> None:
    detail = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}
    body = {"error": {"code": 429, "message": "q", "status": "X", "details": [detail]}}
    f = classify_failure(errors.ClientError(429, body, None))
    assert f.headers == {"retry-after-ms": "1500.0"}
    bad = {**detail, "retryDelay": "soon"}
    body["error"]["details"] = [bad]
    assert classify_failure(errors.ClientError(429, body, None)).headers is None
