"""A Starlette gateway that relays a resilient OpenAI Responses stream to browsers as SSE.

What it shows:

* ``responses_stream`` opens the upstream with ``background=True``, retries within the monitor's
  budget and resumes dropped connections exactly;
* ``monitor.relay`` (here :func:`steadystream.instrumentation.policy.relay.relay`) puts a bounded
  buffer between that stream and the browser, so a client on a bad network (or one that stopped
  reading) costs at most ``flow_control.max_buffer`` bytes of memory, and the overflow policy
  from the spec applies;
* every SSE event carries ``id: <response id>:<sequence number>``. A browser's ``EventSource``
  sends it back as ``Last-Event-ID`` when it reconnects, and the gateway resumes exactly after
  that event with ``responses.retrieve(..., starting_after=N)``. With the ``terminate`` policy a
  slow client gets an ``error`` event with ``retryable: true`` and the same resume point.
* ``/metrics`` serves the Prometheus metrics.

Run it against the fault-injecting simulator (uvicorn is not a steadystream dependency)::

    steadystream simulate --port 8787 --faults flaky &
    OPENAI_BASE_URL=http://127.0.0.1:8787/v1 OPENAI_API_KEY=test \\
        uvicorn --factory examples.relay_app:app_from_env
    curl -N 'http://127.0.0.1:8000/chat?prompt=hello'

In a page: ``new EventSource("/chat?prompt=hello").addEventListener("response.output_text.delta",
e => out.textContent += JSON.parse(e.data).delta)``.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Mount, Route

import steadystream as ss
from steadystream.exporters import metrics_asgi_app
from steadystream.instrumentation.core.checkpoint import Checkpoint
from steadystream.instrumentation.monitor import StreamMonitor
from steadystream.instrumentation.openai import responses_stream, without_retries
from steadystream.instrumentation.policy.relay import Relay, relay

MODEL = "gpt-4.1"


def parse_last_event_id(value: str | None) -> tuple[str, int] | None:
    """``"resp_123:17"`` -> ``("resp_123", 17)``; anything else -> ``None``."""
    if not value or ":" not in value:
        return None
    response_id, _, seq = value.rpartition(":")
    try:
        return response_id, int(seq)
    except ValueError:
        return None


def sse_frame(event: Any, response_id: str | None) -> bytes:
    """One SSE frame for an SDK event: ``event:`` its type, ``data:`` its JSON, ``id:`` the
    resume point."""
    data = event.model_dump_json() if hasattr(event, "model_dump_json") else json.dumps(event)
    typ = getattr(event, "type", None) or "message"
    lines = [f"event: {typ}"]
    seq = getattr(event, "sequence_number", None)
    if response_id is not None and seq is not None:
        lines.append(f"id: {response_id}:{seq}")
    lines.append(f"data: {data}")
    return ("\n".join(lines) + "\n\n").encode()


def error_frame(exc: ss.StreamError) -> bytes:
    """An SSE ``error`` event a client can act on: retryable or not, and where to resume."""
    cp: Checkpoint | None = exc.checkpoint
    body: dict[str, Any] = {
        "type": type(exc).__name__,
        "error_class": exc.error_class,
        "retryable": exc.retryable,
        "message": str(exc),
    }
    lines = ["event: error"]
    if cp is not None:
        body["checkpoint"] = {
            "offset": cp.offset,
            "sha256": cp.sha256,
            "sequence_number": cp.sequence_number,
            "response_id": cp.response_id,
        }
        if cp.response_id is not None and cp.sequence_number is not None:
            lines.append(f"id: {cp.response_id}:{cp.sequence_number}")
    lines.append(f"data: {json.dumps(body)}")
    return ("\n".join(lines) + "\n\n").encode()


def create_app(client: Any, monitor: StreamMonitor) -> Starlette:
    """The gateway for an ``AsyncOpenAI`` ``client`` under ``monitor``.

    ``app.state.relays`` holds the relays being served (weakly), so an operator endpoint or a
    test can look at their buffers.
    """
    relays: weakref.WeakSet[Relay] = weakref.WeakSet()
    quiet = without_retries(client, monitor)

    def open_relay(request: Request) -> tuple[Relay, str | None]:
        resume = parse_last_event_id(request.headers.get("last-event-id"))
        if resume is not None:
            response_id, after = resume

            def reattach(checkpoint: Checkpoint | None) -> Any:
                start = after
                if checkpoint is not None and checkpoint.sequence_number is not None:
                    start = checkpoint.sequence_number
                return quiet.responses.retrieve(response_id, stream=True, starting_after=start)

            return relay(monitor, reattach, model=MODEL, provider="openai"), response_id
        prompt = request.query_params.get("prompt", "")
        stream = responses_stream(monitor, client, model=MODEL, input=prompt)
        return relay(monitor, stream), None

    async def chat(request: Request) -> Any:
        if not request.query_params.get("prompt") and "last-event-id" not in request.headers:
            return JSONResponse({"error": "give ?prompt=..."}, status_code=400)
        relayed, known_id = open_relay(request)
        relays.add(relayed)

        async def body() -> AsyncIterator[bytes]:
            response_id = known_id
            async with relayed:
                try:
                    async for event in relayed:
                        response = getattr(event, "response", None)
                        response_id = getattr(response, "id", None) or response_id
                        yield sse_frame(event, response_id)
                except ss.StreamError as exc:
                    yield error_frame(exc)

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    app = Starlette(
        routes=[
            Route("/chat", chat),
            Mount("/metrics", app=metrics_asgi_app(monitor.registry)),
        ]
    )
    app.state.relays = relays
    app.state.monitor = monitor
    return app


def app_from_env() -> Starlette:
    """``uvicorn --factory examples.relay_app:app_from_env``: the openai client reads
    ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``; the spec is ``SLO_SPEC`` or the default."""
    import os

    import openai

    path = os.environ.get("SLO_SPEC")
    spec = ss.load_spec(path) if path else ss.default_spec("chat-gateway")
    return create_app(openai.AsyncOpenAI(), StreamMonitor(spec))
