"""GenAI semantic conventions on spans and OpenTelemetry metrics, and ``stream_tokens_total``,
with the real openai and anthropic SDKs (sync and async, passive ``monitor.wrap`` and the
resilient helpers) against the simulator.

Expectations are derived from the simulator, not hard-coded: it echoes the request's model,
reports ``simulated_input_tokens(prompt)`` input tokens and one output token per generated
piece, and ends a healthy answer with ``completed`` (Responses status), ``stop`` (Chat) or
``end_turn`` (Anthropic). Server address and port are the simulator's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import anthropic
import httpx
import httpx2
import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

import steadystream as ss
import telemetry_support
from anthropic_support import delta
from steadystream import conventions as c
from steadystream.instrumentation.anthropic import messages_stream
from steadystream.instrumentation.openai import chat_stream, responses_stream
from steadystream.instrumentation.providers import register, unregister
from steadystream.instrumentation.providers.base import (
    CONTENT,
    END,
    STARTED,
    BaseFormat,
    Reading,
    ResponseMeta,
    get,
)
from steadystream.simulate import Upstream
from telemetry_support import is_stream_span, simulated_input_tokens, token_deltas
from test_anthropic_resilient import Script
from test_chat_resilient import MODEL as CHAT_MODEL
from test_coexistence import (
    client_spans,
    instrumented,  # noqa: F401 (the fixture, used by name)
)

MODEL = "sim-model-1"
TOKENS = 12
PROMPT = "hi"
APIS = ["responses", "chat", "anthropic"]
MODES = ["sync", "async"]
PATHS = ["passive", "resilient"]
PROVIDER = {"responses": "openai", "chat": "openai", "anthropic": "anthropic"}
#: How the simulator ends a healthy answer, in each API's own words.
FINISH = {"responses": ("completed",), "chat": ("stop",), "anthropic": ("end_turn",)}


def make_spec() -> ss.Spec:
    """Generous timeouts (a loaded CI machine never crosses them); fast retries."""
    return ss.Spec.model_validate(
        {
            "version": 1,
            "service": "svc",
            "stream": {
                "timeouts": {"first_token": "20s", "stream_idle": "20s", "total": "60s"},
                "retry": {"base_backoff": "10ms", "max_backoff": "50ms", "budget": "100%"},
            },
        }
    )


class Telemetry(telemetry_support.Telemetry):
    labels: ClassVar[dict[str, str]] = {"service": "svc", "model": MODEL, "provider": ""}
    default_spec = staticmethod(make_spec)


@pytest.fixture
def up() -> Iterator[Upstream]:
    with Upstream() as upstream:
        yield upstream


def server(up: Upstream) -> tuple[str, int]:
    parts = urlsplit(up.url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


# ------------------------------------------------------------------------------ running


def _request(api: str) -> dict[str, Any]:
    if api == "responses":
        return {"input": PROMPT, "max_output_tokens": TOKENS}
    messages = [{"role": "user", "content": PROMPT}]
    if api == "chat":
        return {
            "messages": messages,
            "max_completion_tokens": TOKENS,
            "stream_options": {"include_usage": True},
        }
    return {"messages": messages, "max_tokens": TOKENS}


def _client(api: str, mode: str, up: Upstream, script: Script) -> Any:
    """An SDK client whose requests carry the script's faults, one per request in turn."""
    if mode == "sync":
        http: Any = httpx2.Client(event_hooks={"request": [script.hook]})
    else:
        http = httpx2.AsyncClient(event_hooks={"request": [script.ahook]})
    if api == "anthropic":
        cls = anthropic.Anthropic if mode == "sync" else anthropic.AsyncAnthropic
        return cls(base_url=up.url, api_key="test", max_retries=0, http_client=http)
    cls = openai.OpenAI if mode == "sync" else openai.AsyncOpenAI
    return cls(base_url=up.base_url, api_key="test", max_retries=0, http_client=http)


def _create(api: str, client: Any) -> Any:
    if api == "responses":
        return client.responses.create
    if api == "chat":
        return client.chat.completions.create
    return client.messages.create


def _resilient(api: str, tel: Telemetry, client: Any, kw: dict[str, Any]) -> Any:
    if api == "responses":
        return responses_stream(tel.monitor, client, model=MODEL, **kw)
    if api == "chat":
        return chat_stream(tel.monitor, client, model=MODEL, **kw)
    return messages_stream(tel.monitor, client, model=MODEL, **kw)


def run(
    api: str, mode: str, path: str, tel: Telemetry, up: Upstream, *faults: str
) -> tuple[list[Any], BaseException | None]:
    """Stream one answer (``faults``: the fault of each request in turn, then none); returns
    what the consumer received and the error it ended with."""
    kw = _request(api)
    script = Script(*faults)
    items: list[Any] = []
    error: BaseException | None = None
    if mode == "sync":
        client = _client(api, mode, up, script)
        try:
            if path == "passive":
                stream = _create(api, client)(model=MODEL, stream=True, **kw)
                iterable = tel.monitor.wrap(stream, model=MODEL, provider=PROVIDER[api])
            else:
                iterable = _resilient(api, tel, client, kw)
            for item in iterable:
                items.append(item)
        except Exception as exc:
            error = exc
        finally:
            client.close()
        return items, error

    async def main() -> None:
        nonlocal error
        client = _client(api, mode, up, script)
        try:
            if path == "passive":
                stream = await _create(api, client)(model=MODEL, stream=True, **kw)
                iterable = tel.monitor.wrap(stream, model=MODEL, provider=PROVIDER[api])
            else:
                iterable = _resilient(api, tel, client, kw)
            async for item in iterable:
                items.append(item)
        except Exception as exc:
            error = exc
        finally:
            await client.close()

    asyncio.run(main())
    return items, error


# ------------------------------------------------------------------------------ reading back


def metric_points(tel: Telemetry, name: str) -> list[Any]:
    """Every data point of OpenTelemetry metric ``name`` recorded so far."""
    data = tel.reader.get_metrics_data()
    assert data is not None
    return [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    ]


def only_stream_span(tel: Telemetry) -> Any:
    (span,) = tel.stream_spans()
    return span


def genai_attributes(api: str, up: Upstream) -> dict[str, Any]:
    """The attributes every GenAI client metric point of a stream carries."""
    address, port = server(up)
    return {
        c.ATTR_OPERATION: c.OPERATION_CHAT,
        c.ATTR_PROVIDER: PROVIDER[api],
        c.ATTR_REQUEST_MODEL: MODEL,
        c.ATTR_SERVER_ADDRESS: address,
        c.ATTR_SERVER_PORT: port,
    }


def token_points(tel: Telemetry) -> dict[str, Any]:
    points = metric_points(tel, c.GENAI_TOKEN_USAGE)
    by_type = {p.attributes[c.ATTR_TOKEN_TYPE]: p for p in points}
    assert len(by_type) == len(points)
    return by_type


# ------------------------------------------------------------------------------ healthy


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("api", APIS)
def test_healthy_stream_follows_the_conventions(
    api: str, mode: str, path: str, up: Upstream
) -> None:
    tel = Telemetry()
    before = tel.snapshot()
    items, error = run(api, mode, path, tel, up)
    assert error is None and items
    input_tokens, output_tokens = simulated_input_tokens(PROMPT), TOKENS
    address, port = server(up)

    span = only_stream_span(tel)
    assert span.name == f"{c.OPERATION_CHAT} {MODEL}"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs[c.ATTR_OPERATION] == c.OPERATION_CHAT
    assert attrs[c.ATTR_PROVIDER] == PROVIDER[api]
    assert attrs[c.ATTR_REQUEST_MODEL] == MODEL
    assert attrs[c.ATTR_RESPONSE_MODEL] == MODEL  # the simulator answers as the model asked
    assert tuple(attrs[c.ATTR_FINISH_REASONS]) == FINISH[api]
    assert attrs[c.ATTR_INPUT_TOKENS] == input_tokens
    assert attrs[c.ATTR_OUTPUT_TOKENS] == output_tokens
    assert attrs[c.ATTR_SERVER_ADDRESS] == address
    assert attrs[c.ATTR_SERVER_PORT] == port
    assert c.ATTR_ERROR_TYPE not in attrs
    assert span.status.status_code is not StatusCode.ERROR

    # Prometheus: exact deltas of the token counter.
    d = delta(before, tel.snapshot())
    tokens = {k: v for k, v in d.items() if k.startswith(c.TOKENS_TOTAL)}
    assert tokens == token_deltas(input_tokens, output_tokens)
    assert d["stream_requests_total,outcome=ok"] == 1

    # OpenTelemetry: the same counter, and the two GenAI client histograms, once each.
    counted = {
        p.attributes[c.LABEL_TOKEN_TYPE]: p.value for p in metric_points(tel, c.TOKENS_TOTAL)
    }
    assert counted == {c.TOKEN_INPUT: input_tokens, c.TOKEN_OUTPUT: output_tokens}
    base = {**genai_attributes(api, up), c.ATTR_RESPONSE_MODEL: MODEL}
    usage = token_points(tel)
    assert set(usage) == {c.TOKEN_INPUT, c.TOKEN_OUTPUT}
    for token_type, expected in ((c.TOKEN_INPUT, input_tokens), (c.TOKEN_OUTPUT, output_tokens)):
        point = usage[token_type]
        assert dict(point.attributes) == {**base, c.ATTR_TOKEN_TYPE: token_type}
        assert (point.count, point.sum) == (1, expected)
        assert tuple(point.explicit_bounds) == c.GENAI_BUCKETS[c.GENAI_TOKEN_USAGE]
    (duration,) = metric_points(tel, c.GENAI_OPERATION_DURATION)
    assert dict(duration.attributes) == base
    assert duration.count == 1 and duration.sum > 0
    assert tuple(duration.explicit_bounds) == c.GENAI_BUCKETS[c.GENAI_OPERATION_DURATION]


# ------------------------------------------------------------------------------ failures

#: A final 400 for the resilient helpers (nothing to retry); for passive streams the SDK
#: raises it from ``create`` before there is a stream to wrap, so passive failures are
#: in-band: ``response.failed`` (Responses), an ``error`` chunk (Chat), an ``error`` event
#: (Anthropic).
PASSIVE_FAILURE = {
    "responses": ("failed=6", c.ERROR_CLASS_RESPONSE_FAILED),
    # The SDK raises Chat's error chunk as an APIError without a status; the classifier
    # reads its body as the chunk it was.
    "chat": ("error_event=3", c.ERROR_CLASS_UPSTREAM_EVENT),
    "anthropic": ("error_event=6", c.ERROR_CLASS_UPSTREAM_EVENT),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("api", APIS)
def test_failed_stream_has_error_type(api: str, mode: str, path: str, up: Upstream) -> None:
    tel = Telemetry()
    if path == "resilient":
        fault, error_class = "400", c.ERROR_CLASS_UPSTREAM_4XX
    else:
        fault, error_class = PASSIVE_FAILURE[api]
    _, error = run(api, mode, path, tel, up, fault)
    # Passive streams hand an in-band failure over as it came: the SDK raises Chat's and
    # Anthropic's, Responses' response.failed is an event the consumer reads.
    assert (error is None) == (path == "passive" and api == "responses")

    span = only_stream_span(tel)
    attrs = dict(span.attributes or {})
    assert attrs[c.ATTR_ERROR_TYPE] == c.error_type(error_class)
    assert attrs[c.ATTR_ERROR_CLASS] == error_class
    assert span.status.status_code is StatusCode.ERROR
    assert span.name == f"{c.OPERATION_CHAT} {MODEL}"
    address, port = server(up)
    assert (attrs[c.ATTR_SERVER_ADDRESS], attrs[c.ATTR_SERVER_PORT]) == (address, port)

    (duration,) = metric_points(tel, c.GENAI_OPERATION_DURATION)
    assert duration.attributes[c.ATTR_ERROR_TYPE] == c.error_type(error_class)
    assert duration.count == 1
    # Whatever usage a failed stream reported (an Anthropic message_start before its error
    # event) is recorded, never invented: the span and both metrics agree.
    usage = {t: p.sum for t, p in token_points(tel).items()}
    span_usage = {
        t: attrs[a]
        for t, a in ((c.TOKEN_INPUT, c.ATTR_INPUT_TOKENS), (c.TOKEN_OUTPUT, c.ATTR_OUTPUT_TOKENS))
        if a in attrs
    }
    assert usage == span_usage
    counted = {
        p.attributes[c.LABEL_TOKEN_TYPE]: p.value for p in metric_points(tel, c.TOKENS_TOTAL)
    }
    assert {t: v for t, v in counted.items() if v} == span_usage
    if path == "resilient":  # refused before anything was generated: nothing to count
        assert span_usage == {}
        assert c.ATTR_FINISH_REASONS not in attrs


# ------------------------------------------------------------------------------ continuation


@pytest.mark.parametrize("mode", MODES)
def test_anthropic_continuation_sums_usage_over_its_requests(mode: str, up: Upstream) -> None:
    """A Messages stream cut after 5 pieces and continued: input tokens of both requests,
    output tokens of both (the cut one reported only its message_start's 1)."""
    tel = Telemetry()
    before = tel.snapshot()
    # 3 lifecycle events (message_start, content_block_start, ping), 5 deltas, then the cut.
    items, error = run("anthropic", mode, "resilient", tel, up, "drop_after=8")
    assert error is None and items
    input_tokens = 2 * simulated_input_tokens(PROMPT)
    output_tokens = 1 + (TOKENS - 5)
    attrs = dict(only_stream_span(tel).attributes or {})
    assert attrs[c.ATTR_ATTEMPT] == 2
    assert (attrs[c.ATTR_INPUT_TOKENS], attrs[c.ATTR_OUTPUT_TOKENS]) == (
        input_tokens,
        output_tokens,
    )
    assert tuple(attrs[c.ATTR_FINISH_REASONS]) == ("end_turn",)
    d = delta(before, tel.snapshot())
    assert {k: v for k, v in d.items() if k.startswith(c.TOKENS_TOTAL)} == token_deltas(
        input_tokens, output_tokens
    )
    assert {t: (p.count, p.sum) for t, p in token_points(tel).items()} == {
        c.TOKEN_INPUT: (1, input_tokens),
        c.TOKEN_OUTPUT: (1, output_tokens),
    }


@pytest.mark.parametrize("mode", MODES)
def test_responses_resume_counts_the_response_once(mode: str, up: Upstream) -> None:
    """A Responses stream cut after content resumes the same response: its usage is reported
    once, by the resumed request's response.completed."""
    tel = Telemetry()
    items, error = run("responses", mode, "resilient", tel, up, "drop_after=8")
    assert error is None and items
    attrs = dict(only_stream_span(tel).attributes or {})
    assert attrs[c.ATTR_ATTEMPT] == 2
    assert attrs[c.ATTR_INPUT_TOKENS] == simulated_input_tokens(PROMPT)
    assert attrs[c.ATTR_OUTPUT_TOKENS] == TOKENS


# ------------------------------------------------------------------------------ other sources


def test_httpx_sse_stream_names_its_server(up: Upstream) -> None:
    """Passive httpx: server address and port come from the response's URL."""
    tel = Telemetry()
    body = {"model": MODEL, "input": PROMPT, "max_output_tokens": TOKENS, "stream": True}
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", f"{up.base_url}/responses", json=body) as response,
    ):
        events = list(tel.monitor.wrap(response, model=MODEL, provider="openai"))
    assert events
    attrs = dict(only_stream_span(tel).attributes or {})
    assert (attrs[c.ATTR_SERVER_ADDRESS], attrs[c.ATTR_SERVER_PORT]) == server(up)
    assert attrs[c.ATTR_OUTPUT_TOKENS] == TOKENS


def test_without_a_model_the_span_is_named_by_the_operation() -> None:
    tel = Telemetry()
    list(tel.monitor.wrap(iter(["a", "b"])))
    span = only_stream_span(tel)
    assert span.name == c.OPERATION_CHAT
    attrs = dict(span.attributes or {})
    assert c.ATTR_REQUEST_MODEL not in attrs
    assert c.ATTR_SERVER_ADDRESS not in attrs  # a plain iterable has no server
    # No usage reported, so no usage recorded (the conventions forbid inventing it).
    assert metric_points(tel, c.GENAI_TOKEN_USAGE) == []
    assert c.ATTR_INPUT_TOKENS not in attrs
    (duration,) = metric_points(tel, c.GENAI_OPERATION_DURATION)
    assert c.ATTR_REQUEST_MODEL not in duration.attributes


def test_attempt_spans_are_internal_children_without_genai_attributes(up: Upstream) -> None:
    tel = Telemetry()
    retries = make_spec().stream.retry.max_retries
    _, error = run("chat", "sync", "resilient", tel, up, *["500"] * (1 + retries))
    assert isinstance(error, ss.UpstreamError)  # every attempt got the 500
    spans = tel.spans.get_finished_spans()
    (stream,) = [s for s in spans if is_stream_span(s)]
    attempts = [s for s in spans if telemetry_support.is_attempt_span(s)]
    assert len(attempts) == 1 + retries
    for attempt in attempts:
        assert attempt.name == c.SPAN_ATTEMPT
        assert attempt.kind is SpanKind.INTERNAL
        assert attempt.parent is not None
        assert attempt.parent.span_id == stream.context.span_id
        attrs = dict(attempt.attributes or {})
        assert not [k for k in attrs if k.startswith("gen_ai.")]
        assert attrs[c.ATTR_ERROR_TYPE] == c.ERROR_CLASS_UPSTREAM_5XX


def test_chat_chunk_with_the_last_text_and_its_finish_reason() -> None:
    """vLLM puts the last text and the finish_reason in one chunk: the fast path leaves that
    chunk to the general path, which reads both."""
    from openai.types.chat import ChatCompletionChunk

    def chunk(content: str | None, finish: str | None, usage: Any = None) -> Any:
        return ChatCompletionChunk.model_validate(
            {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "served-model",
                "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]
                if usage is None
                else [],
                "usage": usage,
            }
        )

    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    items = [chunk("Hel", None), chunk("lo", "length"), chunk(None, None, usage)]
    tel = Telemetry()
    out = list(tel.monitor.wrap(iter(items), model="asked-model", provider="vllm"))
    assert out == items
    attrs = dict(only_stream_span(tel).attributes or {})
    assert tuple(attrs[c.ATTR_FINISH_REASONS]) == ("length",)
    assert attrs[c.ATTR_RESPONSE_MODEL] == "served-model"
    assert (attrs[c.ATTR_INPUT_TOKENS], attrs[c.ATTR_OUTPUT_TOKENS]) == (3, 2)
    assert attrs[c.ATTR_BYTES] == len(b"Hello")


class _AcmeFormat(BaseFormat):
    """A registered format reporting usage through the public hook (``Reading.meta``)."""

    name = "acme-usage"

    def read(self, item: Any) -> Reading | None:
        kind = get(item, "kind")
        if kind == "text":
            return Reading(CONTENT, get(item, "text") or "")
        if kind == "start":
            return Reading(STARTED, meta=ResponseMeta(response_model=get(item, "model")))
        if kind == "done":
            meta = ResponseMeta(
                input_tokens=get(item, "in"),
                output_tokens=get(item, "out"),
                finish_reasons=(get(item, "why"),),
            )
            return Reading(END, meta=meta)
        return None


def test_a_registered_format_reports_usage_through_the_hook() -> None:
    fmt = _AcmeFormat()
    register(fmt)
    try:
        tel = Telemetry()
        before = tel.snapshot()
        items = [
            {"kind": "start", "model": "acme-2"},
            {"kind": "text", "text": "hey"},
            {"kind": "done", "in": 7, "out": 1, "why": "eos"},
        ]
        assert list(tel.monitor.wrap(iter(items), model="acme", provider="acme")) == items
    finally:
        unregister(fmt)
    span = only_stream_span(tel)
    assert span.name == "chat acme"
    attrs = dict(span.attributes or {})
    assert attrs[c.ATTR_RESPONSE_MODEL] == "acme-2"
    assert tuple(attrs[c.ATTR_FINISH_REASONS]) == ("eos",)
    assert (attrs[c.ATTR_INPUT_TOKENS], attrs[c.ATTR_OUTPUT_TOKENS]) == (7, 1)
    d = delta(before, tel.snapshot())
    assert {k: v for k, v in d.items() if k.startswith(c.TOKENS_TOTAL)} == token_deltas(7, 1)
    # stream_tokens_total is labelled like every stream metric: service, model, provider, type.
    assert (
        tel.registry.get_sample_value(
            c.TOKENS_TOTAL, {"service": "svc", "model": "acme", "provider": "acme", "type": "input"}
        )
        == 7
    )


def test_gemini_style_operation_names_the_span_and_metrics() -> None:
    """A provider whose operation is not ``chat`` passes it as an attribute (the conventions'
    ``generate_content`` for Gemini): the span name and the GenAI metrics follow."""
    tel = Telemetry()
    core = tel.monitor.open_stream(
        "gemini-x", "gcp.gemini", attributes={c.ATTR_OPERATION: "generate_content"}
    )
    core.begin_attempt(tel.monitor.clock())
    core.close(tel.monitor.clock())
    span = only_stream_span(tel)
    assert span.name == "generate_content gemini-x"
    (duration,) = metric_points(tel, c.GENAI_OPERATION_DURATION)
    assert duration.attributes[c.ATTR_OPERATION] == "generate_content"


# ------------------------------------------------------------------------------ beside others

#: What openai-v2 and OpenLLMetry may record on their CLIENT span that ours records too.
SHARED = (
    c.ATTR_SERVER_ADDRESS,
    c.ATTR_SERVER_PORT,
    c.ATTR_REQUEST_MODEL,
    c.ATTR_RESPONSE_MODEL,
    c.ATTR_INPUT_TOKENS,
    c.ATTR_OUTPUT_TOKENS,
    c.ATTR_FINISH_REASONS,
)


def test_beside_other_instrumentation_the_shared_attributes_agree(
    instrumented: telemetry_support.Telemetry,  # noqa: F811 (the imported fixture)
    upstream: Upstream,
) -> None:
    """Under openai-v2's or OpenLLMetry's CLIENT span (found through their stream wrapper),
    ours is an INTERNAL child named by the conventions, and every attribute both record has
    the same value: the same server, model and usage, read independently."""
    tel = instrumented
    client = openai.OpenAI(base_url=upstream.base_url, api_key="test", max_retries=0)
    stream = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=TOKENS,
        stream=True,
        stream_options={"include_usage": True},
    )
    list(tel.monitor.wrap(stream, model=CHAT_MODEL, provider="openai"))
    (call,) = client_spans(tel)
    (ours,) = tel.stream_spans()
    assert ours.kind is SpanKind.INTERNAL
    assert ours.name == f"{c.OPERATION_CHAT} {CHAT_MODEL}"
    attrs = dict(ours.attributes or {})
    address, port = server(upstream)
    assert (attrs[c.ATTR_SERVER_ADDRESS], attrs[c.ATTR_SERVER_PORT]) == (address, port)
    assert (attrs[c.ATTR_INPUT_TOKENS], attrs[c.ATTR_OUTPUT_TOKENS]) == (
        simulated_input_tokens(PROMPT),
        TOKENS,
    )
    theirs = dict(call.attributes or {})
    both = [k for k in SHARED if k in theirs]
    assert c.ATTR_INPUT_TOKENS in both  # both read the usage chunk: a real comparison
    assert {k: _plain(attrs[k]) for k in both} == {k: _plain(theirs[k]) for k in both}


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value
