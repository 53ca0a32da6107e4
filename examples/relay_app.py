"""A Starlette gateway that relays a resilient OpenAI Responses stream to browsers as SSE.

What it shows:

* ``responses_stream`` opens the upstream with ``background=True``, retries within the monitor's
  budget and resumes dropped connections exactly;
* ``sse_response`` (:mod:`steadystream.instrumentation.sse`) serves it: through ``monitor.relay``
  (a bounded buffer, so a client on a bad network, or one that stopped reading, costs at most
  ``flow_control.max_buffer`` bytes and the spec's overflow policy applies), one SSE frame per
  event with ``id: <response id>:<sequence number>``;
* a browser's ``EventSource`` sends that id back as ``Last-Event-ID`` when it reconnects, and
  the gateway continues exactly after that event with
  ``responses.retrieve(..., starting_after=N)``. With the ``terminate`` policy a slow client
  gets an ``error`` event with ``retryable: true`` and the same resume point;
* a failure before the first byte is a real status: 429 when the gateway's ingress limits
  refuse the stream, 503 when the upstream is down or overloaded, both with ``Retry-After``;
* ``/metrics`` serves the Prometheus metrics (a route, so it answers without a redirect).

Run it against the fault-injecting simulator (uvicorn is not a steadystream dependency)::

    steadystream simulate --port 8787 --faults flaky &
    OPENAI_BASE_URL=http://127.0.0.1:8787/v1 OPENAI_API_KEY=test \\
        uvicorn --factory examples.relay_app:app_from_env
    curl -N 'http://127.0.0.1:8000/chat?prompt=hello'

In a page: ``new EventSource("/chat?prompt=hello").addEventListener("response.output_text.delta",
e => out.textContent += JSON.parse(e.data).delta)``.
"""

from __future__ import annotations

# [docs/instrumentation.md: relay]
import weakref
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import steadystream as ss
from steadystream.exporters import metrics_asgi_app
from steadystream.instrumentation.openai import responses_stream, without_retries
from steadystream.instrumentation.policy.relay import Relay
from steadystream.instrumentation.sse import sse_response

MODEL = "gpt-4.1"


def create_app(client: Any, monitor: ss.StreamMonitor) -> Starlette:
    """The gateway for an ``AsyncOpenAI`` ``client`` under ``monitor``.

    ``app.state.relays`` holds the relays of new streams being served (weakly), so an operator
    endpoint or a test can look at their buffers.
    """
    relays: weakref.WeakSet[Relay] = weakref.WeakSet()

    def tracked(relayed: Relay) -> Relay:
        relays.add(relayed)
        return relayed

    quiet = without_retries(client, monitor)  # resumes are retried by the monitor

    async def chat(request: Request) -> Response:
        prompt = request.query_params.get("prompt", "")
        if not prompt and "last-event-id" not in request.headers:
            return JSONResponse({"error": "give ?prompt=..."}, status_code=400)
        return sse_response(
            request,
            monitor,
            start=lambda: tracked(
                monitor.relay(responses_stream(monitor, client, model=MODEL, input=prompt))
            ),
            # Last-Event-ID: continue that background response after that event.
            resume=lambda cp: quiet.responses.retrieve(
                cp.response_id, stream=True, starting_after=cp.sequence_number
            ),
            model=MODEL,
            provider="openai",
        )

    app = Starlette(
        routes=[
            Route("/chat", chat),
            Route("/metrics", metrics_asgi_app(monitor.registry)),
        ]
    )
    app.state.relays = relays
    app.state.monitor = monitor
    return app
    # [end]


def app_from_env() -> Starlette:
    """``uvicorn --factory examples.relay_app:app_from_env``: the openai client reads
    ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``; the spec is ``SLO_SPEC`` or the default."""
    import os

    import openai

    path = os.environ.get("SLO_SPEC")
    spec = ss.load_spec(path) if path else ss.default_spec("chat-gateway")
    return create_app(openai.AsyncOpenAI(), ss.StreamMonitor(spec))
