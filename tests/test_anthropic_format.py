"""The Anthropic Messages wire format: what each event means, as SDK objects and as dicts."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import RawContentBlockDeltaEvent, RawMessageStartEvent

from steadystream import conventions as c
from steadystream.instrumentation.providers import registry
from steadystream.instrumentation.providers.anthropic_messages import stop_reason, usage
from steadystream.instrumentation.providers.base import (
    CONTENT,
    END,
    ERROR,
    KEEPALIVE,
    LIFECYCLE,
    STARTED,
)
from steadystream.instrumentation.providers.failures import classify_failure


def delta(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": 0, "delta": {"type": kind, **fields}}


@pytest.mark.parametrize(
    ("item", "kind", "text"),
    [
        (delta("text_delta", text="héllo"), CONTENT, "héllo"),
        (delta("thinking_delta", thinking="hmm"), CONTENT, "hmm"),
        (delta("input_json_delta", partial_json='{"a":'), CONTENT, '{"a":'),
        (delta("text_delta", text=""), KEEPALIVE, ""),
        (delta("signature_delta", signature="sig"), LIFECYCLE, ""),
        (
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
            LIFECYCLE,
            "",
        ),
        ({"type": "content_block_stop", "index": 0}, LIFECYCLE, ""),
        ({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}, LIFECYCLE, ""),
        ({"type": "message_stop"}, END, ""),
        ({"type": "ping"}, KEEPALIVE, ""),
    ],
)
def test_event_readings(item: dict[str, Any], kind: int, text: str) -> None:
    r = registry.read_item(item)
    assert (r.kind, r.text) == (kind, text)


def test_sdk_objects_read_like_dicts() -> None:
    start = RawMessageStartEvent.model_validate(
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 7, "output_tokens": 1},
            },
        }
    )
    r = registry.read_item(start)
    assert (r.kind, r.response_id) == (STARTED, "msg_1")
    assert usage(start) == (7, 1)
    d = RawContentBlockDeltaEvent.model_validate(delta("text_delta", text="流式"))
    assert registry.content_text(d) == "流式"
    assert registry.replace_text(d, "流式", "式").delta.text == "式"
    assert d.delta.text == "流式"  # the original is not changed


@pytest.mark.parametrize(
    ("error_type", "status"),
    [
        ("overloaded_error", 529),
        ("api_error", 500),
        ("rate_limit_error", 429),
        ("invalid_request_error", 400),
    ],
)
def test_error_events_carry_the_status_they_stand_for(error_type: str, status: int) -> None:
    item = {"type": "error", "error": {"type": error_type, "message": "m"}}
    r = registry.read_item(item)
    assert (r.kind, r.error_class, r.status) == (ERROR, c.ERROR_CLASS_UPSTREAM_EVENT, status)
    assert registry.describe_error(item) == f"error [{error_type}] m"


def test_the_responses_error_event_stays_the_responses_format() -> None:
    r = registry.read_item({"type": "error", "code": "server_error", "message": "x"})
    assert (r.kind, r.error_class, r.status) == (ERROR, c.ERROR_CLASS_UPSTREAM_EVENT, None)


def test_message_delta_stop_reason() -> None:
    item = {
        "type": "message_delta",
        "delta": {"stop_reason": "max_tokens"},
        "usage": {"output_tokens": 9},
    }
    assert stop_reason(item) == "max_tokens"
    assert usage(item) == (None, 9)


class _InBand(Exception):
    """An error raised on a 200 response with an error event as its body (the SDK's shape)."""

    status_code = 200

    def __init__(self, body: Any) -> None:
        super().__init__("in-band")
        self.body = body


def test_an_error_event_raised_on_a_200_response_is_classified_by_its_body() -> None:
    overloaded = classify_failure(_InBand({"type": "error", "error": {"type": "overloaded_error"}}))
    assert (overloaded.error_class, overloaded.reason) == (c.ERROR_CLASS_UPSTREAM_EVENT, "5xx")
    invalid = classify_failure(
        _InBand({"type": "error", "error": {"type": "invalid_request_error"}})
    )
    assert (invalid.error_class, invalid.reason) == (c.ERROR_CLASS_UPSTREAM_EVENT, None)
    other = classify_failure(_InBand({"something": "else"}))
    assert other.error_class == c.ERROR_CLASS_OTHER
