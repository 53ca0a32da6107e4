"""Shared set-up of the Gemini tests: a monitor with in-memory telemetry, google-genai clients
pointed at the simulator, a per-request fault script, and readers of chunks."""

from __future__ import annotations

import threading
from typing import Any

import httpx2
from google import genai
from google.genai import types

import telemetry_support
from anthropic_support import delta, make_spec, sha
from steadystream import conventions as c
from steadystream.simulate import ROUTE_GEMINI_STREAM, Upstream

__all__ = [
    "CONTENTS",
    "LABELS",
    "MODEL",
    "TOKENS",
    "Script",
    "Telemetry",
    "async_client",
    "bodies",
    "delta",
    "make_spec",
    "sha",
    "sync_client",
    "text_of",
]

MODEL = "gemini-sim"
CONTENTS = "hi"
TOKENS = 24
LABELS = {"service": "svc", "model": MODEL, "provider": "gemini"}


class Telemetry(telemetry_support.Telemetry):
    labels = LABELS
    default_spec = staticmethod(make_spec)


class Script:
    """The fault header of each request in turn (``"none"`` after the list), set by an httpx2
    request hook on the SDK's HTTP client, so a test scripts exactly which attempt fails how.
    ``strip_retry_headers``: a response hook removes ``retry-after`` / ``retry-after-ms``, so
    only the body's ``RetryInfo`` says when to retry."""

    def __init__(self, *faults: str, strip_retry_headers: bool = False) -> None:
        self._faults = list(faults)
        self._lock = threading.Lock()
        self._strip = strip_retry_headers

    def _next(self) -> str:
        with self._lock:
            return self._faults.pop(0) if self._faults else "none"

    def hook(self, request: httpx2.Request) -> None:
        request.headers[c.HEADER_FAULT] = self._next()

    async def ahook(self, request: httpx2.Request) -> None:
        self.hook(request)

    def response_hook(self, response: httpx2.Response) -> None:
        if self._strip:
            for name in ("retry-after", "retry-after-ms"):
                if name in response.headers:
                    del response.headers[name]

    async def aresponse_hook(self, response: httpx2.Response) -> None:
        self.response_hook(response)


def sync_client(
    up: Upstream, script: Script | None = None, **options: Any
) -> tuple[genai.Client, httpx2.Client]:
    """A google-genai client on the simulator (close the httpx2 client after use); with a
    ``script``, its hooks set each request's fault."""
    hooks = {"request": [script.hook], "response": [script.response_hook]} if script else {}
    http = httpx2.Client(event_hooks=hooks)
    opts = types.HttpOptions(base_url=up.url, httpx_client=http, **options)
    return genai.Client(api_key="test", http_options=opts), http


def async_client(
    up: Upstream, script: Script | None = None, **options: Any
) -> tuple[Any, httpx2.AsyncClient]:
    """``client.aio`` of a google-genai client on the simulator (close the httpx2 client
    after use, inside the event loop); with a ``script``, its hooks set each request's
    fault."""
    hooks = {"request": [script.ahook], "response": [script.aresponse_hook]} if script else {}
    http = httpx2.AsyncClient(event_hooks=hooks)
    opts = types.HttpOptions(base_url=up.url, httpx_async_client=http, **options)
    return genai.Client(api_key="test", http_options=opts).aio, http


def text_of(chunks: list[Any]) -> str:
    """The answer text of Gemini chunks (SDK objects or dicts): non-thought text parts of the
    first candidate."""
    out = []
    for chunk in chunks:
        cands = chunk.get("candidates") if isinstance(chunk, dict) else chunk.candidates
        if not cands:
            continue
        cand = cands[0]
        content = cand.get("content") if isinstance(cand, dict) else cand.content
        parts = (content.get("parts") if isinstance(content, dict) else content.parts) or []
        for part in parts:
            if isinstance(part, dict):
                if part.get("text") and not part.get("thought"):
                    out.append(part["text"])
            elif part.text and not part.thought:
                out.append(part.text)
    return "".join(out)


def bodies(up: Upstream) -> list[dict[str, Any]]:
    """The bodies of the streamed Gemini requests the simulator received, in order."""
    return [r.json() for r in up.recorded_requests if r.route == ROUTE_GEMINI_STREAM]
