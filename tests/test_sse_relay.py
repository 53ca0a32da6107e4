"""steadystream.instrumentation.sse against a real Starlette app, driven by a real httpx client
(in-process ASGI transport), with the fault-injecting simulator as the upstream."""

from __future__ import annotations

import asyncio
import json
import re
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import steadystream as ss
from steadystream.instrumentation.openai import responses_stream, without_retries
from steadystream.instrumentation.sse import (
    error_frame,
    event_id,
    frame,
    http_status,
    parse_event_id,
    sse_response,
)
from steadystream.simulate import Upstream, expected_text

ROOT = Path(__file__).resolve().parent.parent
MODEL = "gpt-4.1"
FAULT = "x-steadystream-fault"


def make_spec(**stream: Any) -> ss.Spec:
    return ss.Spec.model_validate(
        {
            "version": 1,
            "service": "gateway",
            "stream": {
                "timeouts": {"first_token": "20s", "stream_idle": "20s", "total": "60s"},
                **stream,
            },
        }
    )


def gateway(up: Upstream, spec: ss.Spec) -> tuple[Starlette, CollectorRegistry]:
    """A gateway like examples/relay_app.py; ``?fault=`` goes to the upstream on the create
    only (resumes are clean)."""
    registry = CollectorRegistry()
    monitor = ss.StreamMonitor(spec, registry=registry)
    client = openai.AsyncOpenAI(base_url=up.base_url, api_key="test")
    quiet = without_retries(client, monitor)

    async def chat(request: Request) -> Response:
        prompt = request.query_params.get("prompt", "")
        fault = request.query_params.get("fault", "none")
        return sse_response(
            request,
            monitor,
            start=lambda: responses_stream(
                monitor, client, model=MODEL, input=prompt, extra_headers={FAULT: fault}
            ),
            resume=lambda cp: quiet.responses.retrieve(
                cp.response_id, stream=True, starting_after=cp.sequence_number
            ),
            model=MODEL,
            provider="openai",
        )

    return Starlette(routes=[Route("/chat", chat)]), registry


def client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway", timeout=120
    )


def events_of(body: str, *, raw: bool = False) -> list[dict[str, Any]]:
    """Parse an SSE body as a browser would (fields per event; ``data`` lines joined, read as
    JSON unless ``raw``)."""
    out = []
    assert body.endswith("\n\n") or body == ""
    for block in body.split("\n\n"):
        if not block:
            continue
        fields: dict[str, Any] = {"data": []}
        for line in block.split("\n"):
            key, _, val = line.partition(": ")
            if key == "data":
                fields["data"].append(val)
            else:
                assert key not in fields, block
                fields[key] = val
        data = "\n".join(fields["data"])
        fields["data"] = data if raw else json.loads(data)
        out.append(fields)
    return out


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["data"]["delta"] for e in events if e["event"] == "response.output_text.delta")


# ------------------------------------------------------------------------------- resume
async def test_every_event_has_the_resume_id_of_what_the_browser_has(upstream: Upstream) -> None:
    app, _ = gateway(upstream, make_spec())
    async with client_for(app) as client:
        r = await client.get("/chat", params={"prompt": "ids"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"
    assert "content-length" not in r.headers  # a stream, not a body of known length
    events = events_of(r.text)
    rid = events[0]["data"]["response"]["id"]
    assert [e["id"] for e in events] == [f"{rid}:{e['data']['sequence_number']}" for e in events]
    assert [e["event"] for e in events] == [e["data"]["type"] for e in events]
    assert text_of(events) == expected_text("ids", seed=0)


async def test_last_event_id_resumes_each_byte_exactly_once(upstream: Upstream) -> None:
    """Reconnecting after any event delivers exactly the rest: no byte lost or repeated."""
    app, _ = gateway(upstream, make_spec())
    expected = expected_text("resume me", seed=0)
    async with client_for(app) as client:
        whole = events_of((await client.get("/chat", params={"prompt": "resume me"})).text)
        for cut in (0, 4, 5, 11, len(whole) - 2, len(whole) - 1):
            r = await client.get("/chat", headers={"Last-Event-ID": whole[cut]["id"]})
            assert r.status_code == 200
            rest = events_of(r.text)
            assert [e["id"] for e in rest] == [e["id"] for e in whole[cut + 1 :]]
            got = text_of(whole[: cut + 1]).encode() + text_of(rest).encode()
            assert got == expected.encode()


async def test_a_cut_mid_stream_is_an_error_frame_and_last_event_id_continues(
    upstream: Upstream,
) -> None:
    """The upstream drops mid-stream and retries are off: the browser gets an error frame
    whose id is what it received, the response ends cleanly, and a reconnect with that id
    delivers the rest exactly once."""
    app, registry = gateway(upstream, make_spec(retry={"max_retries": 0}))
    async with client_for(app) as client:
        r = await client.get("/chat", params={"prompt": "cut here", "fault": "drop_after=14"})
        assert r.status_code == 200
        events = events_of(r.text)
        error = events[-1]
        assert error["event"] == "error"
        assert all(e["event"] != "error" for e in events[:-1])
        assert error["data"]["type"] == "UpstreamError" and error["data"]["retryable"] is True
        delivered = text_of(events)
        assert delivered  # the cut came after content
        assert error["data"]["checkpoint"]["offset"] == len(delivered.encode())
        assert error["id"] == events[-2]["id"]

        r = await client.get("/chat", headers={"Last-Event-ID": error["id"]})
        assert r.status_code == 200
        rest = events_of(r.text)
    assert rest[0]["data"]["sequence_number"] == events[-2]["data"]["sequence_number"] + 1
    assert rest[-1]["event"] == "response.completed"
    assert delivered + text_of(rest) == expected_text("cut here", seed=0)
    labels = {"service": "gateway", "model": MODEL, "provider": "openai"}
    assert registry.get_sample_value("stream_requests_total", {**labels, "outcome": "ok"}) == 1


async def test_an_in_band_error_mid_stream_is_an_error_frame(upstream: Upstream) -> None:
    """The upstream's ``error`` event after content: one error frame, then a clean end."""
    app, _ = gateway(upstream, make_spec(retry={"max_retries": 0}))
    async with client_for(app) as client:
        r = await client.get("/chat", params={"prompt": "in band", "fault": "error_event=12"})
    assert r.status_code == 200
    events = events_of(r.text)
    assert [e["event"] for e in events].count("error") == 1
    error = events[-1]
    assert error["event"] == "error"
    assert error["data"]["type"] == "UpstreamError"
    assert error["data"]["error_class"] == "upstream_error_event"
    assert "(simulated)" in error["data"]["message"]
    # The id is where a reconnect would continue: after the error event itself (event 12).
    cp = error["data"]["checkpoint"]
    assert cp["sequence_number"] == 12
    assert error["id"] == f"{cp['response_id']}:12"
    assert error["data"]["checkpoint"]["offset"] == len(text_of(events).encode())


async def test_a_resume_that_finds_a_gap_is_refused_not_patched(upstream: Upstream) -> None:
    """A resume opener that skips events (here: one too many) fails with ResumeFailed before
    the first byte, a 502 without Retry-After: never a silent gap."""
    registry = CollectorRegistry()
    monitor = ss.StreamMonitor(make_spec(retry={"max_retries": 0}), registry=registry)
    client = openai.AsyncOpenAI(base_url=upstream.base_url, api_key="test")
    quiet = without_retries(client, monitor)

    async def chat(request: Request) -> Response:
        return sse_response(
            request,
            monitor,
            start=lambda: responses_stream(monitor, client, model=MODEL, input="gap"),
            resume=lambda cp: quiet.responses.retrieve(
                cp.response_id, stream=True, starting_after=cp.sequence_number + 1
            ),
        )

    app = Starlette(routes=[Route("/chat", chat)])
    async with client_for(app) as http:
        whole = events_of((await http.get("/chat")).text)
        r = await http.get("/chat", headers={"Last-Event-ID": whole[6]["id"]})
    assert r.status_code == 502
    assert "retry-after" not in r.headers
    assert r.json()["error"]["type"] == "ResumeFailed"


async def test_last_event_id_without_resume_or_unreadable(upstream: Upstream) -> None:
    """No ``resume``: 204 (EventSource stops reconnecting); an id that does not parse: 400."""
    monitor = ss.StreamMonitor(make_spec(), registry=CollectorRegistry())

    async def chat(request: Request) -> Response:
        return sse_response(request, monitor, start=lambda: _never_called())

    app = Starlette(routes=[Route("/chat", chat)])
    async with client_for(app) as client:
        assert (await client.get("/chat", headers={"Last-Event-ID": "resp_1:3"})).status_code == 204
        r = await client.get("/chat", headers={"Last-Event-ID": "resp_1:three"})
    assert r.status_code == 400
    assert "Last-Event-ID 'resp_1:three'" in r.json()["error"]["message"]


def _never_called() -> Any:
    raise AssertionError("start() must not run for a Last-Event-ID request")


async def test_a_browser_that_goes_away_ends_the_stream_as_abandoned(upstream: Upstream) -> None:
    """The upstream stalls after 10 events; the browser disconnects after 3 frames. The app
    returns without waiting for the stall (which outlasts the test's deadline) and the stream
    ends as abandoned (the relay closed it)."""
    spec = make_spec(timeouts={"first_token": "300s", "stream_idle": "300s", "total": "600s"})
    app, registry = gateway(upstream, spec)
    frames: list[bytes] = []
    gone = asyncio.Event()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/chat",
        "raw_path": b"/chat",
        "query_string": b"prompt=gone&fault=stall%3D300s%4010",
        "headers": [],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
    }
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body") and not gone.is_set():
            frames.append(message["body"])
            if len(frames) == 3:
                gone.set()

    await asyncio.wait_for(app(scope, receive, send), timeout=120)
    assert len(frames) == 3
    labels = {"service": "gateway", "model": MODEL, "provider": "openai", "outcome": "abandoned"}
    await _until(
        lambda: registry.get_sample_value("stream_requests_total", labels) == 1,
        "the stream to end as abandoned",
    )


# ------------------------------------------------------------------- before the first byte
@pytest.mark.parametrize(
    ("fault", "retry_after"),
    [("503", "1"), ("503,retry_after=3s", "3"), ("429,retry_after=2s", "2"), ("500", "1")],
)
async def test_upstream_down_before_the_first_byte_is_503(
    upstream: Upstream, fault: str, retry_after: str
) -> None:
    app, registry = gateway(upstream, make_spec(retry={"max_retries": 0}))
    async with client_for(app) as client:
        r = await client.get("/chat", params={"prompt": "x", "fault": fault})
    assert r.status_code == 503
    assert r.headers["retry-after"] == retry_after
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["type"] == "UpstreamError"
    assert error["checkpoint"] is None or error["checkpoint"]["offset"] == 0
    labels = {"service": "gateway", "model": MODEL, "provider": "openai", "outcome": "error"}
    assert registry.get_sample_value("stream_requests_total", labels) == 1


async def test_ingress_rejection_is_429_with_retry_after(upstream: Upstream) -> None:
    """One stream holds the only ingress slot; the next request is 429 with Retry-After, and
    the first one still completes."""
    registry = CollectorRegistry()
    monitor = ss.StreamMonitor(make_spec(ingress={"max_concurrent": 1}), registry=registry)
    release = asyncio.Event()

    def opener(checkpoint: ss.Checkpoint | None) -> AsyncIterator[str]:
        async def items() -> AsyncIterator[str]:
            yield "held "
            await release.wait()
            yield "then released"

        return items()

    async def chat(request: Request) -> Response:
        return sse_response(
            request, monitor, start=lambda: opener, model="m", provider="p", retry_after=2.5
        )

    app = Starlette(routes=[Route("/chat", chat)])
    in_flight = {"service": "gateway", "model": "m", "provider": "p"}
    async with client_for(app) as client:
        first = asyncio.create_task(client.get("/chat"))
        await _until(
            lambda: registry.get_sample_value("stream_in_flight", in_flight) == 1,
            "the first stream to hold the ingress slot",
        )
        r = await client.get("/chat")
        assert r.status_code == 429
        assert r.headers["retry-after"] == "3"  # whole seconds, rounded up
        error = r.json()["error"]
        assert error["type"] == "IngressRejected" and error["retryable"] is True
        release.set()
        held = await first
    assert held.status_code == 200
    assert [e["data"] for e in events_of(held.text, raw=True)] == ["held ", "then released"]
    rejected = registry.get_sample_value(
        "stream_rejected_total", {**in_flight, "reason": "concurrency"}
    )
    assert rejected == 1


async def _until(check: Callable[[], bool], what: str, deadline: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not check():
        if loop.time() > end:
            raise AssertionError(f"timed out after {deadline}s waiting for {what}")
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------------- the building blocks
def test_frames_ids_and_statuses() -> None:
    assert (
        frame({"type": "t", "x": 1}, id="r:1")
        == b'id: r:1\nevent: t\ndata: {"type": "t", "x": 1}\n\n'
    )
    assert frame("two\nlines") == b"event: message\ndata: two\ndata: lines\n\n"
    assert frame({"type": "bad\ntype"}).startswith(b"event: message\n")
    cp = ss.Checkpoint(offset=3, sequence_number=7, response_id="resp_9")
    assert event_id(cp) == "resp_9:7"
    assert event_id(ss.Checkpoint(sequence_number=7)) is None
    assert event_id(ss.Checkpoint(sequence_number=7, response_id="a\nb")) is None
    back = parse_event_id("resp_9:7")
    assert (back.response_id, back.sequence_number, back.offset) == ("resp_9", 7, 0)
    assert parse_event_id("a:b:12").response_id == "a:b"
    for bad in ("", "resp", ":3", "resp:", "resp:-1", "resp:x"):
        with pytest.raises(ValueError, match="Last-Event-ID"):
            parse_event_id(bad)
    err = ss.UpstreamError("x", status=503, retry_after=0.2, checkpoint=cp, retryable=True)
    assert http_status(err) == (503, 1)
    assert http_status(ss.UpstreamError("x", status=400)) == (502, None)
    assert http_status(ss.ResumeFailed("x")) == (502, None)
    assert http_status(ss.FirstTokenTimeout("x"), retry_after=4) == (503, 4)
    assert http_status(ss.RetryBudgetExhausted("x")) == (503, 1)
    body = error_frame(err, id="resp_9:7").decode()
    assert body.startswith("id: resp_9:7\nevent: error\ndata: ")
    data = json.loads(body.split("data: ", 1)[1])
    assert data["checkpoint"]["offset"] == 3 and data["retryable"] is True


# ------------------------------------------------------------------------------ the docs
def test_the_docs_snippet_is_the_tested_example() -> None:
    """docs/instrumentation.md shows the heart of examples/relay_app.py, verbatim (the example
    runs in tests/test_relay_app.py)."""
    example = (ROOT / "examples" / "relay_app.py").read_text()
    found = re.search(r"# \[docs/instrumentation\.md: relay\]\n(.*?)\n *# \[end\]", example, re.S)
    assert found, "the marked region of examples/relay_app.py"
    region = textwrap.dedent(found.group(1)).strip()
    docs = (ROOT / "docs" / "instrumentation.md").read_text()
    block = re.search(
        r"<!-- the marked region of examples/relay_app.py -->\n```python\n(.*?)```", docs, re.S
    )
    assert block, "the relay snippet in docs/instrumentation.md"
    assert block.group(1).strip() == region
