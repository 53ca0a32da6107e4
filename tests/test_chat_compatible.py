"""Chat Completions beyond the resilient path: passive wrap of the real openai SDK and of raw
httpx SSE against the simulator, and the shapes OpenAI-compatible servers send.

vLLM and Azure OpenAI do not run here, so their wire shapes are served to the real openai SDK
by httpx2's ``MockTransport`` (httpx's own in-process transport): the bytes are what those
servers send, everything above the socket is the real client and the real chat_stream.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

import httpx
import httpx2
import openai
import pytest

import steadystream as ss
from anthropic_support import delta, sha
from steadystream import conventions as c
from steadystream.instrumentation.openai import chat_stream
from steadystream.simulate import Upstream, expected_text
from telemetry_support import simulated_input_tokens, token_deltas
from test_anthropic_resilient import without_gauges
from test_chat_resilient import MESSAGES, MODEL, TOKENS, Telemetry, ok_deltas

EXPECTED = expected_text("hi", tokens=TOKENS)


def text_of(chunks: list[Any]) -> str:
    return "".join(
        choice.delta.content or "" for ch in chunks for choice in ch.choices if choice.delta
    )


# ------------------------------------------------------------------------------- passive


def passive_deltas() -> dict[str, float]:
    """A healthy resilient stream's metric deltas, but the stream was opened before the
    wrapper saw it and never admitted at ingress: no ``open`` and no ``queue`` phase."""
    out = ok_deltas(EXPECTED)
    for phase in (c.PHASE_OPEN, c.PHASE_QUEUE):
        del out[f"stream_phase_duration_ms_count,phase={phase}"]
    return out


def test_passive_sdk_stream_is_measured_exactly(upstream: Upstream) -> None:
    tel = Telemetry()
    client = openai.OpenAI(base_url=upstream.base_url, api_key="test", max_retries=0)
    before = tel.snapshot()
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=TOKENS, stream=True
    )
    chunks = list(tel.monitor.wrap(stream, model=MODEL, provider="openai"))
    assert sha(text_of(chunks)) == sha(EXPECTED)
    assert without_gauges(delta(before, tel.snapshot())) == passive_deltas()
    assert len(tel.stream_spans()) == 1


async def test_passive_async_sdk_stream_is_measured_exactly(aupstream: Upstream) -> None:
    tel = Telemetry()
    client = openai.AsyncOpenAI(base_url=aupstream.base_url, api_key="test", max_retries=0)
    before = tel.snapshot()
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=TOKENS,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [ch async for ch in tel.monitor.wrap(stream, model=MODEL, provider="openai")]
    assert sha(text_of(chunks)) == sha(EXPECTED)
    # include_usage: the usage chunk reports the prompt's tokens and one per piece
    usage = token_deltas(simulated_input_tokens("hi"), TOKENS)
    assert without_gauges(delta(before, tel.snapshot())) == {**passive_deltas(), **usage}
    assert len(tel.stream_spans()) == 1


def test_passive_httpx_sse_ends_at_done(upstream: Upstream) -> None:
    tel = Telemetry()
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": TOKENS, "stream": True}
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", f"{upstream.base_url}/chat/completions", json=body) as response,
    ):
        events = list(tel.monitor.wrap(response, model=MODEL, provider="openai"))
    assert events[-1].data == "[DONE]"
    text = "".join(
        json.loads(e.data)["choices"][0]["delta"].get("content", "") for e in events[:-1]
    )
    assert sha(text) == sha(EXPECTED)
    assert tel.value("stream_bytes_total") == len(EXPECTED.encode())
    assert tel.value("stream_requests_total", outcome="ok") == 1


def test_passive_httpx_sse_error_chunk_is_an_upstream_error_event(upstream: Upstream) -> None:
    tel = Telemetry()
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": TOKENS, "stream": True}
    headers = {c.HEADER_FAULT: "error_event=5"}
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST", f"{upstream.base_url}/chat/completions", json=body, headers=headers
        ) as response,
    ):
        events = list(tel.monitor.wrap(response, model=MODEL, provider="openai"))
    assert json.loads(events[-1].data)["error"]["type"] == "server_error"
    assert tel.value("stream_errors_total", error_class=c.ERROR_CLASS_UPSTREAM_EVENT) == 1
    assert tel.value("stream_bytes_total") == len(expected_text("hi", tokens=4).encode())


# ---------------------------------------------------------- OpenAI-compatible servers


def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-compat",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": choices,
        **extra,
    }


def choice(
    content: str | None = None,
    *,
    index: int = 0,
    role: str | None = None,
    finish: str | None = None,
) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if role is not None:
        d["role"] = role
    if content is not None:
        d["content"] = content
    return {"index": index, "delta": d, "logprobs": None, "finish_reason": finish}


PIECES = ["Hello", ", ", "wörld", " 🚀"]


def vllm_chunks() -> list[dict[str, Any]]:
    """vLLM: the opening chunk, then text; the last text arrives with the finish_reason."""
    out = [chunk([choice("", role="assistant")])]
    out += [chunk([choice(p)]) for p in PIECES[:-1]]
    out.append(chunk([choice(PIECES[-1], finish="stop")]))
    return out


def azure_chunks() -> list[dict[str, Any]]:
    """Azure OpenAI: a first chunk without choices (the prompt filter's results), then the
    usual stream, each choice with its content filter's results."""
    filters = {"hate": {"filtered": False, "severity": "safe"}}
    out = [
        {
            "id": "",
            "object": "",
            "created": 0,
            "model": "",
            "choices": [],
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filters}],
        }
    ]
    out.append(chunk([{**choice("", role="assistant"), "content_filter_results": {}}]))
    out += [chunk([{**choice(p), "content_filter_results": filters}]) for p in PIECES]
    out.append(chunk([{**choice(finish="stop"), "content_filter_results": {}}]))
    return out


def two_choice_chunks() -> list[dict[str, Any]]:
    """``n=2``: the choices interleave and close one after the other."""
    out = [chunk([choice("", role="assistant", index=i)]) for i in (0, 1)]
    for p in PIECES:
        out += [chunk([choice(p, index=0)]), chunk([choice(p.upper(), index=1)])]
    out += [chunk([choice(finish="stop", index=0)]), chunk([choice(finish="stop", index=1)])]
    return out


def sse(chunks: list[dict[str, Any]], *, done: bool = True) -> bytes:
    body = "".join(f"data: {json.dumps(ch, ensure_ascii=False)}\n\n" for ch in chunks)
    return (body + ("data: [DONE]\n\n" if done else "")).encode()


class Server:
    """Serves one SSE body per request, in turn (the last one again when they run out)."""

    def __init__(self, *bodies: bytes) -> None:
        self.bodies = list(bodies)
        self.requests = 0

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = self.bodies[min(self.requests, len(self.bodies) - 1)]
        self.requests += 1
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    async def ahandle(self, request: httpx2.Request) -> httpx2.Response:
        return self.handle(request)


def stream_from(server: Server, mode: str, tel: Telemetry, **kw: Any) -> tuple[list[Any], Any]:
    kwargs = {"model": MODEL, "messages": MESSAGES, **kw}
    chunks: list[Any] = []
    error: BaseException | None = None
    base_url = "http://compat.invalid/v1"
    if mode == "sync":
        http = httpx2.Client(transport=httpx2.MockTransport(server.handle))
        client = openai.OpenAI(base_url=base_url, api_key="test", http_client=http)
        try:
            for ch in chat_stream(tel.monitor, client, provider="vllm", **kwargs):
                chunks.append(ch)
        except ss.StreamError as exc:
            error = exc
        return chunks, error

    async def main() -> BaseException | None:
        transport = httpx2.MockTransport(server.ahandle)
        async with httpx2.AsyncClient(transport=transport) as http:
            client = openai.AsyncOpenAI(base_url=base_url, api_key="test", http_client=http)
            try:
                async for ch in chat_stream(tel.monitor, client, provider="vllm", **kwargs):
                    chunks.append(ch)
            except ss.StreamError as exc:
                return exc
        return None

    error = asyncio.run(main())
    return chunks, error


class CompatTelemetry(Telemetry):
    labels: ClassVar[dict[str, str]] = {"service": "svc", "model": MODEL, "provider": "vllm"}


MODES = ["sync", "async"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [vllm_chunks, azure_chunks])
def test_compatible_server_shapes_stream_whole(mode: str, shape: Any) -> None:
    tel = CompatTelemetry()
    server = Server(sse(shape()))
    chunks, error = stream_from(server, mode, tel)
    assert error is None
    assert text_of(chunks) == "".join(PIECES)
    assert [ch.model_dump(exclude_unset=True) for ch in chunks] == shape()  # unchanged
    assert tel.value("stream_requests_total", outcome="ok") == 1
    assert tel.value("stream_bytes_total") == len("".join(PIECES).encode())
    assert server.requests == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_compatible_stream_cut_before_its_finish_is_resume_failed(mode: str) -> None:
    tel = CompatTelemetry()
    cut = vllm_chunks()[:-1]  # the last text and the finish_reason never came; no [DONE]
    chunks, error = stream_from(Server(sse(cut, done=False)), mode, tel)
    assert isinstance(error, ss.ResumeFailed)
    assert error.checkpoint.offset == len("".join(PIECES[:-1]).encode())
    assert text_of(chunks) == "".join(PIECES[:-1])


@pytest.mark.parametrize("mode", MODES)
def test_an_azure_filter_chunk_then_a_cut_is_retried_cleanly(mode: str) -> None:
    """The prompt-filter chunk and the opening chunk of a cut attempt are held back, so the
    retry's stream is the only one the consumer sees."""
    tel = CompatTelemetry()
    server = Server(sse(azure_chunks()[:2], done=False), sse(azure_chunks()))
    chunks, error = stream_from(server, mode, tel)
    assert error is None
    assert [ch.model_dump(exclude_unset=True) for ch in chunks] == azure_chunks()
    assert tel.value("stream_retry_total", reason="network") == 1
    assert server.requests == 2


@pytest.mark.parametrize("mode", MODES)
def test_n_choices_end_when_every_choice_finished(mode: str) -> None:
    tel = CompatTelemetry()
    chunks, error = stream_from(Server(sse(two_choice_chunks())), mode, tel, n=2)
    assert error is None and len(chunks) == len(two_choice_chunks())
    tel = CompatTelemetry()
    cut = two_choice_chunks()[:-1]  # choice 1 never finished
    chunks, error = stream_from(Server(sse(cut, done=False)), mode, tel, n=2)
    assert isinstance(error, ss.ResumeFailed)
