"""The provider layer: wire formats read into neutral readings, one registry, one exception
classifier shared by the passive path and the retry policy."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
from openai.types.responses import ResponseTextDeltaEvent
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from steadystream.instrumentation.core.checkpoint import Checkpoint
from steadystream.instrumentation.core.machine import CorePolicy, StreamCore
from steadystream.instrumentation.policy.retry import Backoff, classify
from steadystream.instrumentation.providers import (
    content_text,
    is_incomplete,
    read_item,
    register,
    unregister,
)
from steadystream.instrumentation.providers.base import (
    CONTENT,
    END,
    ERROR,
    LIFECYCLE,
    MISS,
    UNKNOWN,
    BaseFormat,
    FastPath,
    Reading,
)
from steadystream.instrumentation.providers.failures import classify_failure, error_class
from steadystream.instrumentation.providers.registry import fast_path, formats
from telemetry_support import Recorder
from test_resume import delta as sdk_delta

INSTRUMENTATION = Path(ss.__file__).parent / "instrumentation"
REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/responses")


# ------------------------------------------------------------------------- the classifier


@pytest.mark.parametrize("module", [httpx, httpx2])
def test_pool_timeout_is_network_not_connect_timeout(module: Any) -> None:
    """A PoolTimeout (no free pooled connection: nothing was dialled) is a network failure on
    the passive path and in the retry policy alike, never a connect (dial) timeout."""
    request = module.Request("GET", "http://127.0.0.1/")
    pool = module.PoolTimeout("pool exhausted", request=request)
    assert error_class(pool) == c.ERROR_CLASS_NETWORK
    verdict = classify(pool)
    assert (verdict.retry, verdict.reason, verdict.error_class) == (
        True,
        c.RETRY_REASON_NETWORK,
        c.ERROR_CLASS_NETWORK,
    )
    try:
        try:
            raise pool
        except module.PoolTimeout as inner:
            raise openai.APITimeoutError(REQUEST) from inner
    except openai.APITimeoutError as wrapped:
        assert error_class(wrapped) == c.ERROR_CLASS_NETWORK
        assert classify(wrapped).error_class == c.ERROR_CLASS_NETWORK


def _status_error(status: int) -> openai.APIStatusError:
    response = httpx2.Response(status, request=REQUEST)
    return openai.APIStatusError(f"HTTP {status}", response=response, body=None)


def _chained_connect_timeout() -> BaseException:
    try:
        try:
            raise httpx2.ConnectTimeout("dial", request=REQUEST)
        except httpx2.ConnectTimeout as inner:
            raise openai.APITimeoutError(REQUEST) from inner
    except openai.APITimeoutError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_status_error(429), c.ERROR_CLASS_RATE_LIMITED),
        (_status_error(503), c.ERROR_CLASS_UPSTREAM_5XX),
        (_status_error(404), c.ERROR_CLASS_UPSTREAM_4XX),
        (httpx2.ConnectTimeout("dial", request=REQUEST), c.ERROR_CLASS_CONNECT_TIMEOUT),
        (_chained_connect_timeout(), c.ERROR_CLASS_CONNECT_TIMEOUT),
        (httpx2.ReadTimeout("read", request=REQUEST), c.ERROR_CLASS_NETWORK),
        (httpx2.RemoteProtocolError("cut", request=REQUEST), c.ERROR_CLASS_NETWORK),
        (openai.APIConnectionError(request=REQUEST), c.ERROR_CLASS_NETWORK),
        (ConnectionResetError(), c.ERROR_CLASS_NETWORK),
        (TimeoutError(), c.ERROR_CLASS_NETWORK),
        (httpx2.UnsupportedProtocol("ftp", request=REQUEST), c.ERROR_CLASS_OTHER),
        (ValueError("bug"), c.ERROR_CLASS_OTHER),
    ],
)
def test_passive_and_retry_paths_agree(exc: BaseException, expected: str) -> None:
    """The core's error label and the retry verdict come from the same classifier."""
    assert classify_failure(exc).error_class == expected
    assert error_class(exc) == expected
    assert classify(exc).error_class == expected
    core = StreamCore(CorePolicy(), Recorder())
    core.on_open(0.0)
    core.begin_attempt(0.0)
    assert core.on_error(exc, 1.0) == expected


def test_active_mode_counts_no_dial_timeout_for_a_pool_timeout() -> None:
    """A PoolTimeout is retried as a network failure and not counted under phase="dial"."""
    registry = CollectorRegistry()
    monitor = ss.StreamMonitor(
        ss.default_spec("pool"), registry=registry, backoff=Backoff(base=0.0, cap=0.0, jitter=0.0)
    )
    calls: list[Checkpoint | None] = []

    def opener(checkpoint: Checkpoint | None) -> Iterator[str]:
        calls.append(checkpoint)
        if len(calls) == 1:
            raise httpx2.PoolTimeout("pool exhausted", request=REQUEST)
        return iter(["a", "b"])

    assert "".join(monitor.stream(opener, model="m")) == "ab"
    labels = {"service": "pool", "model": "m", "provider": c.UNKNOWN}
    dial = registry.get_sample_value("stream_timeouts_total", {**labels, "phase": "dial"})
    retries = registry.get_sample_value("stream_retry_total", {**labels, "reason": "network"})
    assert (dial, retries) == (0.0, 1.0)


# ------------------------------------------------------------------------- reading


def test_helpers_for_the_rest_of_the_package() -> None:
    """content_text and is_incomplete answer for any format without naming its events."""
    assert content_text({"type": "response.output_text.delta", "delta": "hé"}) == "hé"
    assert content_text({"choices": [{"delta": {"content": "x"}}]}) == "x"
    assert content_text("plain") == "plain"
    assert content_text({"type": "response.created", "response": {"id": "r"}}) == ""
    assert is_incomplete({"type": "response.incomplete", "response": {"id": "r"}}) is True
    assert is_incomplete({"type": "response.failed", "response": {"id": "r"}}) is False
    assert is_incomplete({"type": "response.completed"}) is False


def test_fast_path_agrees_with_the_general_reading() -> None:
    """For every built-in shape, feeding the fast path counts what the general reading says."""
    items: list[Any] = [
        "text",
        {"type": "response.output_text.delta", "delta": "ab", "sequence_number": 3},
        {"type": "response.created", "response": {"id": "resp_1"}, "sequence_number": 0},
        {"choices": [{"delta": {"content": "cd"}}], "id": "chat_1"},
    ]
    for item in items:
        fast_core = StreamCore(CorePolicy(), Recorder())
        slow_core = StreamCore(CorePolicy(), Recorder())
        for core in (fast_core, slow_core):
            core.on_open(0.0)
            core.begin_attempt(0.0)
        out = fast_path(item)(fast_core, item, 0.5)
        if out is MISS:
            fast_core.on_reading(read_item(item), 0.5)
        slow_core.on_reading(read_item(item), 0.5)
        assert (fast_core.content_bytes, fast_core.sequence_number) == (
            slow_core.content_bytes,
            slow_core.sequence_number,
        )


class _Beeps(BaseFormat):
    """A made-up wire format: ``{"beep": text}`` is content, ``{"beep_end": True}`` the end."""

    name = "beeps"

    def read(self, item: Any) -> Reading | None:
        if isinstance(item, dict) and "beep" in item:
            return Reading(CONTENT, item["beep"]) if item["beep"] else Reading(LIFECYCLE)
        if isinstance(item, dict) and "beep_end" in item:
            return Reading(END)
        return None

    def fast_path(self, item: Any) -> FastPath | None:
        return _fast_beep if isinstance(item, dict) and "beep" in item else None


def _fast_beep(core: Any, item: dict[str, Any], t: float) -> Any:
    text = item.get("beep")
    return core.on_content(text, None, t) if type(text) is str and text else MISS


def test_a_new_format_is_one_class_and_a_registration() -> None:
    """A registered format is read by monitor.wrap with no change to the core; unregistering
    restores the built-ins."""
    beeps = _Beeps()
    register(beeps)
    try:
        assert formats()[0] is beeps
        registry = CollectorRegistry()
        monitor = ss.StreamMonitor(ss.default_spec("beeps"), registry=registry)
        items = [{"beep": "hé"}, {"beep": ""}, {"beep": "llo"}, {"beep_end": True}]
        assert list(monitor.wrap(iter(items), model="m", provider="beeps")) == items
        labels = {"service": "beeps", "model": "m", "provider": "beeps"}
        assert registry.get_sample_value("stream_bytes_total", labels) == len("héllo".encode())
        ok = registry.get_sample_value("stream_requests_total", {**labels, "outcome": "ok"})
        assert ok == 1.0
    finally:
        unregister(beeps)
    assert beeps not in formats()
    assert read_item({"beep": "x"}).kind == UNKNOWN  # no format knows it now


class _Shouts(BaseFormat):
    """A made-up format that claims the openai SDK's Responses text deltas before the built-in
    one does, counting the items its fast path took."""

    name = "shouts"

    def __init__(self) -> None:
        self.asked = 0
        self.fast_items = 0

    def read(self, item: Any) -> Reading | None:
        return None

    def fast_path(self, item: Any) -> FastPath | None:
        self.asked += 1
        return self._fast if isinstance(item, ResponseTextDeltaEvent) else None

    def _fast(self, core: Any, item: Any, t: float) -> Any:
        self.fast_items += 1
        return core.on_content(item.delta.upper(), item.sequence_number, t)


def test_the_fast_path_of_a_class_is_kept_until_the_formats_change() -> None:
    """The fast path picked for an item class is remembered across streams; registering or
    removing a format forgets it, so the new format is asked. Generic classes (dict) are asked
    per item class and stream as before: a dict stream of one format does not decide the next
    dict stream's. And an item unlike the one its class was learnt from still reads right."""
    event = sdk_delta("ab", 1)
    builtin = fast_path(event)
    assert fast_path(sdk_delta("cd", 2)) is builtin

    shouts = _Shouts()
    register(shouts)
    try:
        registry = CollectorRegistry()
        monitor = ss.StreamMonitor(ss.default_spec("shouts"), registry=registry)
        items = [sdk_delta("ab", 1), sdk_delta("cd", 2)]
        for _ in range(3):
            assert list(monitor.wrap(iter(items), model="m", provider="p")) == items
        assert shouts.fast_items == 6
        assert shouts.asked == 1  # once for the class, not once per stream
    finally:
        unregister(shouts)
    assert fast_path(event) is builtin

    responses_dict = {"type": "response.output_text.delta", "delta": "x", "sequence_number": 1}
    anthropic_dict = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "y"},
    }
    assert fast_path(responses_dict) is not fast_path(anthropic_dict)
    for item in (responses_dict, anthropic_dict):
        core = StreamCore(CorePolicy(), Recorder())
        core.on_open(0.0)
        core.begin_attempt(0.0)
        assert fast_path(item)(core, item, 0.5) is None  # taken as content
        assert core.content_bytes == 1

    # Learnt from a whole delta; this one lacks its text (built without validation).
    odd = ResponseTextDeltaEvent.model_construct(
        type="response.output_text.delta", sequence_number=7
    )
    fast_core = StreamCore(CorePolicy(), Recorder())
    slow_core = StreamCore(CorePolicy(), Recorder())
    for core in (fast_core, slow_core):
        core.on_open(0.0)
        core.begin_attempt(0.0)
    if fast_path(odd)(fast_core, odd, 0.5) is MISS:
        fast_core.on_reading(read_item(odd), 0.5)
    slow_core.on_reading(read_item(odd), 0.5)
    assert (fast_core.content_bytes, fast_core.chunks, fast_core.sequence_number) == (
        slow_core.content_bytes,
        slow_core.chunks,
        slow_core.sequence_number,
    )


def _sdk_event(payload: dict[str, Any]) -> Any:
    """A Responses stream event as the openai SDK builds it from the wire."""
    from openai._models import construct_type
    from openai.types.responses import ResponseStreamEvent

    return construct_type(type_=ResponseStreamEvent, value=payload)


def _response(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1_700_000_000,
        "model": "gpt-test-2025",
        "status": status,
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        **extra,
    }


def _responses_stream(end: dict[str, Any]) -> list[Any]:
    """A Responses stream of SDK events: lifecycle, text, a refusal and function-call
    arguments, then ``end``."""
    part = {"type": "output_text", "text": "", "annotations": []}
    ids = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    payloads: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response("queued")},
        {"type": "response.queued", "response": _response("queued")},
        {"type": "response.in_progress", "response": {**_response("in_progress"), "id": "r2"}},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            },
        },
        {"type": "response.content_part.added", **ids, "part": part},
        {"type": "response.output_text.delta", **ids, "delta": "héllo", "logprobs": []},
        {"type": "response.output_text.delta", **ids, "delta": "", "logprobs": []},
        {"type": "response.refusal.delta", **ids, "delta": "no"},
        {
            "type": "response.function_call_arguments.delta",
            "item_id": "fc_1",
            "output_index": 1,
            "delta": '{"a": 1}',
        },
        {"type": "response.output_text.done", **ids, "text": "héllo", "logprobs": []},
        {"type": "response.content_part.done", **ids, "part": {**part, "text": "héllo"}},
        end,
    ]
    return [_sdk_event({**p, "sequence_number": i}) for i, p in enumerate(payloads)]


_USAGE = {
    "input_tokens": 5,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 7,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 12,
}


@pytest.mark.parametrize(
    "end",
    [
        {"type": "response.completed", "response": _response("completed", usage=_USAGE)},
        {
            "type": "response.incomplete",
            "response": _response(
                "incomplete", usage=_USAGE, incomplete_details={"reason": "max_output_tokens"}
            ),
        },
        {"type": "response.failed", "response": _response("failed")},
        {"type": "error", "code": "server_error", "message": "boom", "param": None},
    ],
    ids=["completed", "incomplete", "failed", "error"],
)
def test_sdk_responses_events_read_the_same_on_the_fast_path(end: dict[str, Any]) -> None:
    """Every event of a Responses stream of SDK objects, fed as the shells feed it, tells the
    core exactly what the general reading does (see ``_fast_and_general``)."""
    events = _responses_stream(end)
    core, rec, handled = _fast_and_general(events)
    # The fast path took every ``response.*`` event but the empty delta (a keep-alive).
    assert handled == sum(e.type.startswith("response.") for e in events) - 1
    assert core.chunks == 3  # text, refusal, arguments; the empty delta is a keep-alive
    assert [args[0] for args in rec.named("response_id")][:2] == ["resp_1", "r2"]
    (ended,) = rec.named("ended")
    if end["type"] == "response.completed":
        assert ended[0] == c.OUTCOME_OK
        assert (ended[4]["input_tokens"], ended[4]["output_tokens"]) == (5, 7)
        assert ended[4]["response_model"] == "gpt-test-2025"


def _fast_and_general(items: list[Any]) -> tuple[StreamCore, Recorder, int]:
    """Feed ``items`` to two cores at the same times: as the shells do (the fast path of each
    item's class, the general reading for what it hands back) and through the general reading
    alone. Asserts that both tell the core the same (the observer calls, counts, sequence
    number, response id, and the end: outcome, error class, usage, finish reasons, model);
    returns the first core, its recorder and how many items the fast path took."""
    cores = []
    handled = 0
    for fast in (True, False):
        rec = Recorder()
        core = StreamCore(CorePolicy(), rec)
        core.on_open(0.0)
        core.begin_attempt(0.0)
        for i, item in enumerate(items):
            t = 0.25 * (i + 1)
            core.on_wait(t - 0.125)
            out = fast_path(item)(core, item, t) if fast else MISS
            handled += fast and out is not MISS
            if out is MISS:
                out = core.on_reading(read_item(item), t)
            assert out is None
        core.close(10.0)
        cores.append((core, rec))
    (fast_core, fast_rec), (slow_core, slow_rec) = cores
    assert fast_rec.calls == slow_rec.calls
    for name in ("chunks", "content_bytes", "sequence_number", "response_id", "outcome"):
        assert getattr(fast_core, name) == getattr(slow_core, name), name
    return fast_core, fast_rec, handled


def _chat_chunk(choices: list[dict[str, Any]], **extra: Any) -> Any:
    from openai.types.chat import ChatCompletionChunk

    return ChatCompletionChunk.model_validate(
        {
            "id": extra.pop("id", "chatcmpl-1"),
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "gpt-test-2025",
            "choices": choices,
            **extra,
        }
    )


def _choice(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def test_sdk_chat_chunks_read_the_same_on_the_fast_path() -> None:
    """Every kind of Chat Completions chunk, as SDK objects: the role, text, a refusal, tool
    call arguments, reasoning content (an extra field), two choices, a new completion id, the
    last text with its finish reason, the finish alone and the usage chunk without choices."""
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": '{"a"'},
    }
    chunks = [
        _chat_chunk([_choice({"role": "assistant", "content": ""})]),
        _chat_chunk([_choice({"content": "héllo"})]),
        _chat_chunk([_choice({"content": " wörld"})]),
        _chat_chunk([_choice({"refusal": "no"})]),
        _chat_chunk([_choice({"tool_calls": [call]})]),
        _chat_chunk([_choice({"content": "", "reasoning_content": "hm"})]),
        _chat_chunk([_choice({"content": "a"}), _choice({"content": "b"}, index=1)]),
        _chat_chunk([_choice({"content": "new"})], id="chatcmpl-2"),
        _chat_chunk([_choice({"content": "end"}, "length")]),
        _chat_chunk([_choice({}, "stop")]),
        _chat_chunk([], usage={"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}),
    ]
    core, rec, handled = _fast_and_general(chunks)
    assert handled == len(chunks)  # the Chat fast path reads every chunk itself
    assert core.chunks == 8  # the role, the finish and the usage chunks carry no text
    ids = ["chatcmpl-1", "chatcmpl-2", "chatcmpl-1"]  # the chunks after "new" are chatcmpl-1
    assert [args[0] for args in rec.named("response_id")] == ids
    (ended,) = rec.named("ended")
    assert (ended[4]["input_tokens"], ended[4]["output_tokens"]) == (5, 7)
    assert ended[4]["finish_reasons"] == ("length", "stop")


class _Claims(BaseFormat):
    """A made-up format, registered, that reads the openai SDK's Responses events (every one
    of them) and has no fast path: counts what it was asked to read."""

    name = "claims"

    def __init__(self) -> None:
        self.read_types: list[str] = []

    def read(self, item: Any) -> Reading | None:
        typ = getattr(item, "type", None)
        if not isinstance(item, dict) and isinstance(typ, str) and typ.startswith("response."):
            self.read_types.append(typ)
            if typ == "response.output_text.delta":
                return Reading(CONTENT, item.delta.upper(), item.sequence_number)
            return Reading(LIFECYCLE, "", item.sequence_number)
        return None


def test_a_registered_format_without_a_fast_path_reads_every_item_it_claims() -> None:
    """A format registered in front of the built-in ones reads the items it claims, deltas
    and lifecycle events alike, even though the built-in Responses format has a fast path for
    their classes; unregistered, the built-in fast path is back."""
    events = _responses_stream(
        {"type": "response.completed", "response": _response("completed", usage=_USAGE)}
    )
    builtin = fast_path(events[0])
    claims = _Claims()
    register(claims)
    try:
        registry = CollectorRegistry()
        monitor = ss.StreamMonitor(ss.default_spec("claims"), registry=registry)
        for _ in range(2):  # the second stream uses what the first one learnt per class
            assert list(monitor.wrap(iter(events), model="m", provider="p")) == events
        labels = {"service": "claims", "model": "m", "provider": "p"}
        # The deltas it read as content, upper-cased: its reading, not the built-in one.
        assert registry.get_sample_value("stream_bytes_total", labels) == 2 * len("HÉLLO".encode())
        asked = [e.type for e in events if e.type.startswith("response.")]
        assert claims.read_types[-len(asked) :] == asked
    finally:
        unregister(claims)
    assert fast_path(events[0]) is builtin


def test_in_band_errors_of_each_format() -> None:
    """Each format's in-band error reads as ERROR with its own class."""
    failed = read_item({"type": "response.failed", "response": {"id": "r"}, "sequence_number": 4})
    assert (failed.kind, failed.error_class, failed.sequence_number, failed.response_id) == (
        ERROR,
        c.ERROR_CLASS_RESPONSE_FAILED,
        4,
        "r",
    )
    chat = read_item({"error": {"message": "overloaded"}})
    assert (chat.kind, chat.error_class) == (ERROR, c.ERROR_CLASS_UPSTREAM_EVENT)


# ------------------------------------------------------------------------- where names live

_WIRE_NAMES = (
    "response.output_text.delta",
    "response.created",
    "response.completed",
    "response.failed",
    "response.incomplete",
    "response.in_progress",
    "response.queued",
    "[DONE]",
    "message_start",
    "content_block_delta",
    "message_stop",
    "overloaded_error",
)


def _string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    doc_nodes = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if id(node) not in doc_nodes
    }


def test_only_the_provider_layer_names_wire_events() -> None:
    """No module of the instrumentation outside providers/ has a wire event type in its code."""
    offenders = []
    for path in sorted(INSTRUMENTATION.rglob("*.py")):
        if "providers" in path.relative_to(INSTRUMENTATION).parts:
            continue
        constants = _string_constants(path)
        for name in _WIRE_NAMES:
            if any(name in value for value in constants):
                offenders.append(f"{path.relative_to(INSTRUMENTATION)}: {name}")
    assert offenders == []
