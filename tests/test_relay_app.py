"""The Starlette relay example, driven as an ASGI server would drive it: a browser that reads
everything, one that reconnects with Last-Event-ID, and one whose socket stops taking bytes."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import openai
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream.instrumentation.monitor import StreamMonitor
from steadystream.instrumentation.policy.relay import ITEM_OVERHEAD
from steadystream.simulate import Upstream, expected_text

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "relay_app.py"
CAP = 2048


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("relay_app_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


example = load_example()


def make_app(up: Upstream, policy: str = "terminate") -> tuple[Any, CollectorRegistry]:
    spec = ss.Spec.model_validate(
        {
            "version": 1,
            "service": "gateway",
            "stream": {
                "timeouts": {"first_token": "20s", "stream_idle": "20s", "total": "60s"},
                "flow_control": {"max_buffer": f"{CAP}B", "on_overflow": policy},
            },
        }
    )
    registry = CollectorRegistry()
    monitor = StreamMonitor(spec, registry=registry)
    client = openai.AsyncOpenAI(base_url=up.base_url, api_key="test")
    return example.create_app(client, monitor), registry


class Browser:
    """A minimal ASGI HTTP client. With ``stop_after``, its socket stops accepting body bytes
    after that many chunks until :meth:`read_again` (what a stuck client looks like to the
    server: ``send`` does not return)."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after
        self.status: int | None = None
        self.chunks: list[bytes] = []
        self._reading = asyncio.Event()
        self._gone = asyncio.Event()
        if stop_after is None:
            self._reading.set()

    def read_again(self) -> None:
        self._reading.set()

    async def get(self, app: Any, path: str, query: str = "", **headers: str) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "root_path": "",
        }
        sent_request = False

        async def receive() -> dict[str, Any]:
            nonlocal sent_request
            if not sent_request:
                sent_request = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self._gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
            elif message["type"] == "http.response.body":
                if self.stop_after is not None and len(self.chunks) >= self.stop_after:
                    await self._reading.wait()
                if message.get("body"):
                    self.chunks.append(message["body"])

        try:
            await app(scope, receive, send)
        finally:
            self._gone.set()

    def events(self) -> list[dict[str, Any]]:
        out = []
        for frame in b"".join(self.chunks).decode().split("\n\n"):
            if not frame.strip():
                continue
            fields: dict[str, Any] = {}
            for line in frame.split("\n"):
                key, _, val = line.partition(": ")
                fields[key] = val
            fields["data"] = json.loads(fields["data"])
            out.append(fields)
        return out


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["data"]["delta"] for e in events if e["event"] == "response.output_text.delta")


async def test_browser_gets_the_whole_stream_with_resume_ids(upstream: Upstream) -> None:
    """A reading browser gets every event as SSE, each with a response:sequence id."""
    app, registry = make_app(upstream)
    browser = Browser()
    await browser.get(app, "/chat", "prompt=hello")
    assert browser.status == 200
    events = browser.events()
    assert text_of(events) == expected_text("hello", seed=0)
    response_id = events[0]["data"]["response"]["id"]
    assert [e["id"] for e in events] == [f"{response_id}:{i}" for i in range(len(events))]
    labels = {"service": "gateway", "model": "gpt-4.1", "provider": "openai", "outcome": "ok"}
    assert registry.get_sample_value("stream_requests_total", labels) == 1


async def test_reconnect_with_last_event_id_resumes_exactly(upstream: Upstream) -> None:
    """EventSource's Last-Event-ID re-attaches after that event: no gap, no repeat."""
    app, _ = make_app(upstream)
    first = Browser()
    await first.get(app, "/chat", "prompt=resume%20me")
    events = first.events()
    cut = 9
    again = Browser()
    await again.get(app, "/chat", last_event_id=events[cut]["id"])
    rest = again.events()
    assert [e["id"] for e in rest] == [e["id"] for e in events[cut + 1 :]]
    assert text_of(events[: cut + 1]) + text_of(rest) == expected_text("resume me", seed=0)


async def test_browser_that_stops_reading_is_cut_and_can_resume(upstream: Upstream) -> None:
    """A stuck socket triggers the terminate policy within the cap; the client resumes."""
    app, registry = make_app(upstream, "terminate")
    browser = Browser(stop_after=3)
    task = asyncio.create_task(browser.get(app, "/chat", "prompt=slow%20reader"))
    for _ in range(1000):  # bounded: the relay appears as soon as the request is routed
        if len(app.state.relays):
            break
        await asyncio.sleep(0.005)
    (relayed,) = list(app.state.relays)
    await relayed.wait_stalled()
    assert relayed.breaches == 1
    assert relayed.peak <= CAP + ITEM_OVERHEAD + 64
    labels = {"service": "gateway", "model": "gpt-4.1", "provider": "openai"}
    assert registry.get_sample_value("stream_abort_client_slow_total", labels) == 1

    browser.read_again()
    await task
    events = browser.events()
    error = events[-1]
    assert error["event"] == "error"
    assert error["data"]["type"] == "ClientTooSlow" and error["data"]["retryable"] is True
    delivered = text_of(events)
    assert error["data"]["checkpoint"]["offset"] == len(delivered.encode())

    again = Browser()
    await again.get(app, "/chat", last_event_id=error["id"])
    expected = expected_text("slow reader", seed=0)
    assert delivered + text_of(again.events()) == expected
