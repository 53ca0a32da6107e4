"""Serve a monitored stream to browsers as Server-Sent Events, from Starlette or FastAPI
(extra ``steadystream[starlette]``; Starlette is imported when a response is built).

::

    from steadystream.instrumentation.sse import sse_response

    async def chat(request):
        return sse_response(
            request,
            monitor,
            start=lambda: responses_stream(monitor, aclient, model="gpt-4.1", input=prompt),
            resume=lambda cp: quiet.responses.retrieve(
                cp.response_id, stream=True, starting_after=cp.sequence_number
            ),
        )

What :func:`sse_response` does:

* **Relays** the stream through ``monitor.relay`` (a :class:`~.policy.relay.Relay` given by
  ``start`` is used as it is), so a browser that reads slowly costs at most
  ``flow_control.max_buffer`` and the spec's overflow policy applies.
* **Frames** every item as one SSE event: ``id:`` (below), ``event:`` the item's ``type``
  (``message`` when it has none) and ``data:`` its JSON (an SDK object's ``model_dump_json()``,
  a mapping's ``json.dumps``, a string as it is, one ``data:`` line per line).
* **Ids for exact resume.** An event's ``id`` is ``<response id>:<sequence number>`` of the
  checkpoint after it (:func:`event_id`): exactly what the browser has received. Sources
  without both (Chat Completions, plain iterables) send no ids, so a reconnect there starts a
  new stream rather than pretending to resume.
* **Last-Event-ID.** A reconnecting ``EventSource`` sends the last id back. The helper reads it
  as a :class:`~steadystream.Checkpoint` (``response_id``, ``sequence_number``) and opens the
  stream with ``resume(checkpoint)``, an opener as for ``monitor.stream``: it is called with
  that checkpoint for the first attempt and with the stream's own (absolute sequence number,
  same response id) on a retry. The first attempt's items go through the
  :class:`~.policy.resume.Resumer`, so events up to the sequence number are skipped and a gap
  is a ``ResumeFailed``: every byte reaches the browser exactly once. Without ``resume`` such a
  request answers ``204`` (which tells ``EventSource`` to stop reconnecting); an id that does
  not parse answers ``400``.
* **Failures before the first byte** are a real HTTP status with a JSON body
  ``{"error": {...}}`` (the fields of the error frame below): ``429`` for an ingress
  rejection (rate, concurrency, queue), ``503`` for an upstream that is unavailable or
  overloaded (an upstream 429 or 5xx, a network failure, a timeout, an exhausted retry
  budget), both with ``Retry-After`` (the upstream's when known, else ``retry_after``);
  ``502`` for any other stream error (an upstream 4xx, a failed resume). See
  :func:`http_status`.
* **Failures mid-stream** become one ``event: error`` frame whose ``data`` is
  ``{"type", "error_class", "retryable", "message", "checkpoint"}`` and whose ``id`` is the
  resume point (what was delivered), then the response ends cleanly. Exceptions that are not
  a :class:`~steadystream.StreamError` (a bug) propagate.

Sources must be async (``AsyncOpenAI``, an async opener or iterable): the relay reads them in
a task.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from .core.checkpoint import Checkpoint
from .errors import (
    IngressRejected,
    RetryBudgetExhausted,
    StreamError,
    StreamTimeout,
    UpstreamError,
)

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from .monitor import StreamMonitor
    from .policy.relay import Relay

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "SSE_HEADERS",
    "error_body",
    "error_frame",
    "event_id",
    "frame",
    "http_status",
    "parse_event_id",
    "sse_response",
]

#: ``Retry-After`` (seconds) of a 429 or 503 when the error carries none.
DEFAULT_RETRY_AFTER: Final = 1.0
#: Headers of every SSE response: no caching, and no buffering in nginx-style proxies.
SSE_HEADERS: Final[Mapping[str, str]] = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_MEDIA_TYPE: Final = "text/event-stream"
_ID_SEPARATOR: Final = ":"
_NOTHING: Final = object()  # the stream ended before its first item


# ----------------------------------------------------------------------------- event ids
def event_id(checkpoint: Checkpoint) -> str | None:
    """``"<response id>:<sequence number>"`` for a checkpoint that has both, else ``None`` (an
    id must not hold a line break or NUL: such a response id gets no id)."""
    rid, seq = checkpoint.response_id, checkpoint.sequence_number
    if rid is None or seq is None or any(ch in rid for ch in "\r\n\0"):
        return None
    return f"{rid}{_ID_SEPARATOR}{seq}"


def parse_event_id(value: str) -> Checkpoint:
    """The checkpoint a ``Last-Event-ID`` names (``response_id`` and ``sequence_number``; no
    content yet on this connection). ``ValueError`` when it is not an :func:`event_id`."""
    rid, sep, seq = value.strip().rpartition(_ID_SEPARATOR)
    if not sep or not rid or not seq.isdigit():
        raise ValueError(f"Last-Event-ID {value!r} is not '<response id>:<sequence number>'")
    return Checkpoint(sequence_number=int(seq), response_id=rid)


# ------------------------------------------------------------------------------- framing
def _data_of(item: Any) -> str:
    dump = getattr(item, "model_dump_json", None)
    if callable(dump):
        return str(dump())
    if isinstance(item, str):
        return item
    if isinstance(item, bytes | bytearray):
        return bytes(item).decode("utf-8", "replace")
    return json.dumps(item, ensure_ascii=False, default=str)


def _type_of(item: Any) -> str:
    typ = item.get("type") if isinstance(item, Mapping) else getattr(item, "type", None)
    if not isinstance(typ, str) or not typ or any(ch in typ for ch in "\r\n\0"):
        return "message"
    return typ


def frame(item: Any, *, id: str | None = None, event: str | None = None) -> bytes:
    """One SSE event for ``item`` (see the module documentation), UTF-8."""
    lines = []
    if id is not None:
        lines.append(f"id: {id}")
    lines.append(f"event: {event or _type_of(item)}")
    data = _data_of(item)
    lines.extend(
        f"data: {line}" for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    )
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def error_body(exc: StreamError) -> dict[str, Any]:
    """The JSON an error frame (and a pre-stream error response) carries for ``exc``."""
    body: dict[str, Any] = {
        "type": type(exc).__name__,
        "error_class": exc.error_class,
        "retryable": exc.retryable,
        "message": str(exc),
        "checkpoint": None,
    }
    cp = exc.checkpoint
    if cp is not None:
        body["checkpoint"] = {
            "offset": cp.offset,
            "sha256": cp.sha256,
            "chunks": cp.chunks,
            "sequence_number": cp.sequence_number,
            "response_id": cp.response_id,
        }
    return body


def error_frame(exc: StreamError, *, id: str | None = None) -> bytes:
    """The ``event: error`` frame for a mid-stream failure; ``id``: the resume point."""
    return frame(json.dumps(error_body(exc), ensure_ascii=False), id=id, event="error")


# ------------------------------------------------------------------------------ statuses
#: Upstream statuses that say "unavailable or overloaded" even when not retried.
_OVERLOADED: Final = frozenset({408, 429, 500, 502, 503, 504, 529})


def _retry_after(exc: BaseException) -> float | None:
    after = getattr(exc, "retry_after", None)
    if after is None and isinstance(exc, RetryBudgetExhausted) and exc.cause is not None:
        after = getattr(exc.cause, "retry_after", None)
    if isinstance(after, int | float) and math.isfinite(after) and after >= 0:
        return float(after)
    return None


def http_status(
    exc: StreamError, *, retry_after: float = DEFAULT_RETRY_AFTER
) -> tuple[int, int | None]:
    """The HTTP status for ``exc`` raised before the first byte, and its ``Retry-After`` in
    whole seconds (rounded up; ``None``: no header).

    ``429``: :class:`~steadystream.IngressRejected` (this service is over its own limits).
    ``503``: the upstream is unavailable or overloaded: an :class:`~steadystream.UpstreamError`
    with status 429, 5xx or none (network), a timeout, an exhausted retry budget, or any other
    retryable error. ``502``: everything else (an upstream 4xx, a failed resume).
    """
    upstream_down = isinstance(exc, UpstreamError) and (
        exc.status is None or exc.status in _OVERLOADED
    )
    if isinstance(exc, IngressRejected):
        status = 429
    elif upstream_down or exc.retryable or isinstance(exc, RetryBudgetExhausted | StreamTimeout):
        status = 503
    else:
        return 502, None
    after = _retry_after(exc)
    return status, math.ceil(after if after is not None else retry_after)


# ------------------------------------------------------------------------------ response
def _continued(start: Checkpoint, checkpoint: Checkpoint | None) -> Checkpoint:
    """The checkpoint a resumed connection's opener gets: the browser's on the first attempt,
    else the stream's own with the response id (and number) filled in from the browser's."""
    if checkpoint is None:
        return start
    return replace(
        checkpoint,
        response_id=checkpoint.response_id or start.response_id,
        sequence_number=(
            checkpoint.sequence_number
            if checkpoint.sequence_number is not None
            else start.sequence_number
        ),
    )


def _resume_opener(resume: Callable[[Checkpoint], Any], start: Checkpoint) -> Callable[..., Any]:
    from .active import _Replay
    from .policy.resume import Resumer

    async def opener(checkpoint: Checkpoint | None) -> Any:
        upstream = resume(_continued(start, checkpoint))
        if inspect.isawaitable(upstream):
            upstream = await upstream
        if checkpoint is None:
            # The first attempt continues the browser's checkpoint: skip what it has, refuse
            # a gap. Later attempts are resumed by the monitor from its own checkpoint.
            return _Replay(upstream, Resumer(start))
        return upstream

    return opener


def sse_response(
    request: Request,
    monitor: StreamMonitor,
    *,
    start: Callable[[], Any],
    resume: Callable[[Checkpoint], Any] | None = None,
    model: str | None = None,
    provider: str | None = None,
    retry_after: float = DEFAULT_RETRY_AFTER,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A Starlette response streaming one monitored stream as SSE (module documentation).

    ``start()`` returns the stream of a new request: a ``responses_stream(...)`` result, a
    ``monitor.relay(...)``, an opener or an async iterable (anything ``monitor.relay``
    takes). ``resume(checkpoint)`` opens the continuation a ``Last-Event-ID`` asks for.
    ``model`` / ``provider`` label streams the helper opens from an opener or iterable.
    ``retry_after``: seconds for ``Retry-After`` when the error carries none. ``headers``
    are added to the response (whatever its status).

    Nothing is read here: the response waits for the stream's first item when the server
    sends it, and only then chooses between the SSE stream and an error status, so the relay
    never fills its buffer before anybody reads it.
    """
    try:
        from starlette.responses import JSONResponse, Response
    except ImportError:
        raise ImportError(
            "the SSE relay helper needs Starlette: pip install 'steadystream[starlette]'"
        ) from None
    from .policy.relay import Relay

    extra = dict(headers or {})
    last = request.headers.get("last-event-id")
    resumed: Checkpoint | None = None
    if last:
        try:
            resumed = parse_event_id(last)
        except ValueError as exc:
            return JSONResponse({"error": {"message": str(exc)}}, status_code=400, headers=extra)
        if resume is None:
            return Response(status_code=204, headers=extra)
        relayed: Relay = monitor.relay(
            _resume_opener(resume, resumed), model=model, provider=provider
        )
    else:
        source = start()
        relayed = (
            source
            if isinstance(source, Relay)
            else monitor.relay(source, model=model, provider=provider)
        )
    return _response_class()(relayed, resumed, retry_after, extra)


_RESPONSE_CLASS: list[type] = []


def _response_class() -> type:
    """The Starlette ``Response`` subclass :func:`sse_response` returns (built on first use, so
    importing this module needs no Starlette; a subclass, so FastAPI passes it through)."""
    if _RESPONSE_CLASS:
        return _RESPONSE_CLASS[0]
    from starlette.requests import ClientDisconnect
    from starlette.responses import JSONResponse, Response

    class SSEResponse(Response):
        media_type = _MEDIA_TYPE

        def __init__(
            self,
            relayed: Relay,
            resumed: Checkpoint | None,
            retry_after: float,
            headers: dict[str, str],
        ) -> None:
            super().__init__(status_code=200, headers={**SSE_HEADERS, **headers})
            # A stream has no length (Response counts its empty body as "content-length: 0").
            self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
            self.relayed = relayed
            self._resumed = resumed
            self._retry_after = retry_after
            self._extra = headers

        def _id_after(self) -> str | None:
            cp = self.relayed.checkpoint
            if self._resumed is not None:
                cp = _continued(self._resumed, cp)
            return event_id(cp)

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            relayed = self.relayed
            try:
                first = await relayed.__anext__()
            except StopAsyncIteration:
                first = _NOTHING
            except StreamError as exc:
                await relayed.aclose()
                status, after = http_status(exc, retry_after=self._retry_after)
                extra = dict(self._extra)
                if after is not None:
                    extra["retry-after"] = str(after)
                failed = JSONResponse({"error": error_body(exc)}, status_code=status, headers=extra)
                await failed(scope, receive, send)
                return
            except BaseException:
                await relayed.aclose()
                raise
            await self._stream(first, receive, send)

        async def _stream(self, first: Any, receive: Any, send: Any) -> None:
            """Send the SSE response from this task (a task started for it would give the
            relay's reader a turn to fill the buffer before anybody reads it)."""
            relayed = self.relayed
            gone = asyncio.Event()

            async def watch() -> None:  # the client going away stops the stream
                while (await receive())["type"] != "http.disconnect":
                    pass
                gone.set()
                await relayed.aclose()

            watcher = asyncio.get_running_loop().create_task(watch())
            try:
                async with relayed:
                    await send(
                        {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                    )
                    if first is not _NOTHING:
                        await self._send(send, frame(first, id=self._id_after()))
                        try:
                            async for item in relayed:
                                if gone.is_set():
                                    return
                                await self._send(send, frame(item, id=self._id_after()))
                        except StreamError as exc:
                            cp = exc.checkpoint
                            if cp is not None and self._resumed is not None:
                                cp = _continued(self._resumed, cp)
                            at = event_id(cp) if cp is not None else self._id_after()
                            await self._send(send, error_frame(exc, id=at))
                    if not gone.is_set():
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError as exc:  # ASGI 2.4: send() raises once the client is gone
                raise ClientDisconnect() from exc
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)

        @staticmethod
        async def _send(send: Any, chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

    _RESPONSE_CLASS.append(SSEResponse)
    return SSEResponse
