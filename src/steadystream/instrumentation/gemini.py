"""Resilient Gemini streams (``google-genai``): retries of the whole request before content.

::

    from google import genai
    from steadystream.instrumentation.gemini import generate_content_stream

    client = genai.Client(api_key=...)
    kw = dict(model="gemini-2.5-flash", contents="hi")
    for chunk in generate_content_stream(monitor, client, **kw):            # sync
        ...
    async for chunk in generate_content_stream(monitor, client.aio, **kw):  # async
        ...

What it does on top of ``client.models.generate_content_stream(...)``, with the same attempt,
retry, budget and timeout machinery as ``responses_stream`` (:mod:`.active`):

* turns the SDK's own retries off for these requests (``http_options.retry_options`` with one
  attempt, merged into the request's ``config``), so the monitor's retries and retry budget are
  the only ones, and gives each request a timeout (``http_options.timeout``) of the spec's read
  backstop (1.5 x the longer of ``first_token`` and ``stream_idle``), unless the config sets one
  or you pass ``timeout=`` (seconds; the SDK applies one timeout to connecting and reading
  alike, so the spec's ``dial`` budget is not enforced separately here). The SDK also sends
  that timeout to the server as its deadline (``X-Server-Timeout``), which would end a long
  answer server-side; so the deadline sent is the spec's ``total`` budget instead (the monitor
  never waits past it), unless the config's headers set one;
* retries the whole request while nothing reached the consumer: 429 (honouring a
  ``retry-after`` header or a ``google.rpc.RetryInfo`` in the error body), 408, 500/502/503/504,
  network errors, first-token timeouts, an ``{"error": ...}`` chunk of a transient code, and a
  stream that ended without a finish reason (a cut that looks like a clean end);
* does **not** resume a stream cut after content. Gemini has no server-side resume, and a
  continuation (the delivered text sent back as a last, ``model``-role content) is not exact:
  the model may re-tokenise, repeat or drop text at the seam, and thought summaries and
  function calls cannot be replayed. So once any chunk reached the consumer, a failure that
  would otherwise be retried (a dropped connection, an idle timeout, a ``503`` chunk, an end
  without a finish reason) ends the stream with :class:`~steadystream.ResumeFailed` carrying
  the exact checkpoint (offset and sha256 of the text delivered), counted in
  ``stream_resume_failure_total`` (after one ``stream_retry_total{reason}``: the failure was
  transient, the resume is what failed). Never a silently repeated or corrupted answer: retry
  the logical request yourself if a fresh answer is acceptable.

The chunks are the SDK's own ``GenerateContentResponse`` objects, unchanged. The client is
recognised by duck typing (``models.generate_content_stream`` a coroutine function: the async
``client.aio``); ``google.genai`` is not imported here.

Sync streams and timeouts: the SDK's sync stream is a generator over an httpx response it does
not expose, so the watchdog cannot shut its socket. A first-token or idle deadline that passes
during a blocked read is raised (with the checkpoint) when the read returns: when data arrives,
or at the request timeout above at the latest. Async streams are cancelled at the deadline.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from .active import ActiveStream, stream_active
from .core.shell import upstream_items
from .errors import ResumeFailed, UpstreamError
from .policy.timeouts import read_backstop
from .providers.gemini import is_final
from .sinks.telemetry import server_attributes

if TYPE_CHECKING:
    from .core.checkpoint import Checkpoint
    from .monitor import StreamMonitor

__all__ = ["generate_content_stream", "is_async_client", "quiet_config"]

_NO_FINISH = "the stream ended before a chunk with its finish reason"
# The request header the SDK derives from its timeout: the server's deadline for the request.
_SERVER_TIMEOUT = "X-Server-Timeout"


def _method(client: Any) -> Any:
    method = getattr(getattr(client, "models", None), "generate_content_stream", None)
    if method is None:
        raise TypeError(
            f"{type(client).__name__} has no models.generate_content_stream: not a google-genai "
            "Client (pass client, or client.aio for async)"
        )
    return method


def is_async_client(client: Any) -> bool:
    """True for ``client.aio`` (anything whose ``models.generate_content_stream`` is a
    coroutine function)."""
    method = _method(client)
    return inspect.iscoroutinefunction(method) or inspect.iscoroutinefunction(
        getattr(method, "__wrapped__", None)
    )


def _fields(obj: Any) -> dict[str, Any]:
    """A config or options object (dict or pydantic model) as a shallow dict of set fields."""
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return dict(obj)
    return {k: v for k, v in obj if v is not None}


def quiet_config(config: Any, timeout: float | None, deadline: float | None = None) -> Any:
    """``config`` (``None``, a dict or a ``GenerateContentConfig``) with the SDK's retries off
    and, unless its ``http_options`` set them, a request timeout of ``timeout`` seconds and a
    server deadline (``X-Server-Timeout``) of ``deadline`` seconds. The caller's object is not
    changed; a model comes back as the same model type."""
    options = _fields(_get(config, "http_options"))
    options["retry_options"] = {"attempts": 1}
    if timeout is not None and options.get("timeout") is None:
        options["timeout"] = max(1, math.ceil(timeout * 1000.0))  # HttpOptions.timeout is in ms
    headers = dict(options.get("headers") or {})
    if deadline is not None and not any(k.lower() == _SERVER_TIMEOUT.lower() for k in headers):
        headers[_SERVER_TIMEOUT] = str(max(1, math.ceil(deadline)))
    if headers:
        options["headers"] = headers
    fields = _fields(config)
    fields["http_options"] = options
    if config is None or isinstance(config, dict):
        return fields
    return type(config)(**fields)


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


class _State:
    """What the consumer of one logical stream has received."""

    def __init__(self) -> None:
        self.delivered = 0  # chunks the consumer received


class _Tracked:
    """One attempt's SDK stream: counts the chunks the consumer received (a chunk counts once
    the next one is asked for; one refused by a timeout never does) and turns an end without a
    finish reason into a retryable failure."""

    def __init__(self, upstream: Any, state: _State) -> None:
        self.upstream = upstream
        self._state = state
        self._pending = False
        self._final = False
        self._it: Any = None

    def _received(self) -> None:
        if self._pending:
            self._pending = False
            self._state.delivered += 1

    def _took(self, item: Any) -> Any:
        self._pending = True
        if not self._final and is_final(item):
            self._final = True
        return item

    def _ended(self) -> None:
        if not self._final:
            raise UpstreamError(_NO_FINISH, retryable=True)


class _SyncTracked(_Tracked):
    def __iter__(self) -> Iterator[Any]:
        self._it = upstream_items(self.upstream, is_async=False)
        return self

    def __next__(self) -> Any:
        self._received()
        try:
            item = next(self._it)
        except StopIteration:
            self._ended()
            raise
        return self._took(item)

    def close(self) -> None:
        close = getattr(self.upstream, "close", None)
        if callable(close):
            close()


class _AsyncTracked(_Tracked):
    def __aiter__(self) -> AsyncIterator[Any]:
        self._it = upstream_items(self.upstream, is_async=True)
        return self

    async def __anext__(self) -> Any:
        self._received()
        try:
            item = await self._it.__anext__()
        except StopAsyncIteration:
            self._ended()
            raise
        return self._took(item)

    async def aclose(self) -> None:
        close = getattr(self.upstream, "aclose", None)
        if callable(close):
            result = close()
            if inspect.isawaitable(result):
                await result


def generate_content_stream(
    monitor: StreamMonitor,
    client: Any,
    *,
    model: str,
    contents: Any,
    config: Any = None,
    provider: str = "gemini",
    timeout: float | None = None,
) -> ActiveStream:
    """A resilient Gemini stream under ``monitor`` (see the module docstring).

    ``client``: a ``google.genai.Client`` (iterate with ``for``) or its ``client.aio``
    (``async for``). ``model``, ``contents`` and ``config`` go to
    ``models.generate_content_stream``; ``config`` (a dict or a ``GenerateContentConfig``)
    gets the SDK's retries turned off and a request timeout (``timeout`` seconds, default the
    spec's read backstop) in its ``http_options``. Returns the :class:`~.active.ActiveStream`,
    which yields the SDK's ``GenerateContentResponse`` chunks.
    """
    method = _method(client)
    async_client = is_async_client(client)
    request_config = quiet_config(
        config,
        timeout if timeout is not None else read_backstop(monitor.spec),
        monitor.policy.total,
    )
    state = _State()

    def opener(checkpoint: Checkpoint | None) -> Any:
        if state.delivered:
            raise ResumeFailed(
                "Gemini has no server-side resume, and continuing from the delivered text is "
                f"not exact: the stream broke after {state.delivered} chunk(s) reached the "
                "consumer",
                checkpoint=checkpoint,
            )
        kwargs = {"model": model, "contents": contents, "config": request_config}
        if async_client:

            async def open_async() -> _AsyncTracked:
                return _AsyncTracked(await method(**kwargs), state)

            return open_async()
        return _SyncTracked(method(**kwargs), state)

    return stream_active(
        monitor,
        opener,
        model=model,
        provider=provider,
        resumable=True,
        attributes=server_attributes(_base_url(client)),
    )


def _base_url(client: Any) -> Any:
    """The base URL a google-genai client (or its ``aio``) sends to. The SDK has no public
    accessor: it is read from the client's HTTP options, and is ``None`` (no server
    attributes) if a release moves it."""
    options = getattr(getattr(client, "_api_client", None), "_http_options", None)
    return getattr(options, "base_url", None)
