"""Resilient Anthropic Messages streams: retries, and resume by continuation.

::

    from steadystream.instrumentation.anthropic import messages_stream

    messages = [{"role": "user", "content": "hi"}]
    kw = dict(model="claude-sonnet-4-6", max_tokens=1024, messages=messages)
    for event in messages_stream(monitor, client, **kw):          # anthropic.Anthropic
        ...
    async for event in messages_stream(monitor, aclient, **kw):  # anthropic.AsyncAnthropic
        ...

What it does on top of ``client.messages.create(..., stream=True)``, with the same attempt,
retry, budget and timeout machinery as ``responses_stream`` (:mod:`.active`):

* turns the client's own retries off on a copy (``client.with_options(max_retries=0)``, with
  the spec's connect timeout and a read-timeout backstop), so the monitor's retries and retry
  budget are the only ones;
* retries what failed before content: 429 and 529 (honouring ``retry-after``), 408, 5xx,
  network errors, first-token timeouts, and an ``error`` event standing for a transient status
  (``overloaded_error``: 529; ``api_error``: 500);
* resumes a stream cut after content (connection dropped, idle timeout, an EOF without
  ``message_stop``, a transient ``error`` event) by *continuation*: Anthropic has no server-side
  resume, so the next request repeats the conversation with one more, assistant, message
  holding exactly the text the consumer already received (its trailing whitespace stripped, as
  the API requires; the same whitespace is dropped from the continuation when it repeats it).
  The delivered text is checked against the checkpoint (offset and sha256) first. The new
  stream's events are rewritten so the consumer sees one well-formed sequence: one
  ``message_start``, the content deltas (block indexes continuing the delivered ones), one
  ``message_stop``; the text is the full answer with nothing lost or repeated, and the resume
  counts in ``stream_resume_success_total``;
* where a continuation cannot be exact it is not attempted: once a non-text block
  (``tool_use``, ``thinking``, ``redacted_thinking``, server tools) reached the consumer, a
  text prefill cannot reproduce it, so the stream ends with :class:`~steadystream.ResumeFailed`
  (with the checkpoint), never with silently corrupted output.

The events are the SDK's own objects; rewritten ones are copies (``model_copy``). The
``message_delta`` usage of a continued stream counts the continuation's output tokens only, and
``max_tokens`` applies to each request. The stream's telemetry counts every request: its
``gen_ai.usage.*`` and ``stream_tokens_total`` are the sums over the first request and each
continuation (the input tokens of each request, the output tokens each reported). The client
is recognised by duck typing (``messages.create`` a coroutine function: async); ``anthropic``
is not imported here.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from .active import ActiveStream, creates_async, stream_active
from .core.shell import upstream_items
from .errors import ResumeFailed
from .openai import without_retries
from .providers.anthropic_messages import Continuation, ContinuationError
from .providers.base import MISS
from .providers.registry import read_item
from .sinks.telemetry import server_attributes

if TYPE_CHECKING:
    from .core.checkpoint import Checkpoint
    from .monitor import StreamMonitor

__all__ = ["is_async_client", "messages_stream"]

_NOTHING: Any = object()


def is_async_client(client: Any) -> bool:
    """True for ``AsyncAnthropic`` (anything whose ``messages.create`` is a coroutine)."""
    return creates_async(client, "messages", "Anthropic")


class _Tracked:
    """One attempt's SDK stream, as the consumer will see it: the continuation's events
    rewritten (or dropped), and every event the consumer received recorded in the
    :class:`Continuation`. An event counts as received once the next one is asked for (an event
    refused by a timeout, or an in-band error, never is). ``prefix``: the text already
    delivered, handed over first so the resume gate verifies it against the checkpoint and
    skips it."""

    def __init__(
        self,
        upstream: Any,
        state: Continuation,
        adapt: Callable[[Any], Any],
        prefix: str | None,
        stream: ActiveStream | None = None,
    ) -> None:
        self.upstream = upstream
        self._stream = stream
        # The watchdog shuts down the socket under the SDK stream's response.
        self.response = getattr(upstream, "response", None)
        self._state = state
        self._adapt = adapt
        self._prefix = prefix
        self._pending: Any = _NOTHING
        self._it: Any = None

    def _received(self) -> None:
        if self._pending is not _NOTHING:
            self._state.observe(self._pending)
            self._pending = _NOTHING

    def _rewrite(self, item: Any) -> Any:
        try:
            out = self._adapt(item)
        except ContinuationError as exc:
            raise ResumeFailed(str(exc)) from None
        if out is not MISS:
            self._pending = out
        elif self._stream is not None and self._stream.core is not None:
            # An event the consumer already has (the continuation's own message_start) still
            # reports this request's usage: the stream's usage is the sum over its requests.
            meta = read_item(item).meta
            if meta is not None:
                self._stream.core.record_meta(meta)
        return out

    def _take_prefix(self) -> str | None:
        prefix, self._prefix = self._prefix, None
        return prefix


class _SyncTracked(_Tracked):
    def __iter__(self) -> Iterator[Any]:
        self._it = upstream_items(self.upstream, is_async=False)
        return self

    def __next__(self) -> Any:
        self._received()
        prefix = self._take_prefix()
        if prefix is not None:
            return prefix
        while True:
            out = self._rewrite(next(self._it))
            if out is not MISS:
                return out

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
        prefix = self._take_prefix()
        if prefix is not None:
            return prefix
        while True:
            out = self._rewrite(await self._it.__anext__())
            if out is not MISS:
                return out

    async def aclose(self) -> None:
        close = getattr(self.upstream, "close", None)
        if callable(close):
            result = close()
            if inspect.isawaitable(result):
                await result


def _delivered(state: Continuation, checkpoint: Checkpoint) -> str:
    """The delivered text, checked against the checkpoint (exactly what the consumer has)."""
    text = state.text
    data = text.encode()
    if len(data) != checkpoint.offset or hashlib.sha256(data).hexdigest() != checkpoint.sha256:
        raise ResumeFailed(
            f"continuation cannot be exact: the delivered text ({len(data)} bytes) does not "
            f"match the checkpoint ({checkpoint.offset} bytes)",
            checkpoint=checkpoint,
        )
    return text


def messages_stream(
    monitor: StreamMonitor,
    client: Any,
    *,
    provider: str = "anthropic",
    timeout: Any = None,
    **create_kwargs: Any,
) -> ActiveStream:
    """A resilient Messages stream under ``monitor`` (see the module docstring).

    ``create_kwargs`` go to ``client.messages.create`` (``model``, ``max_tokens`` and
    ``messages`` are required by the API; ``system``, ``temperature``, ``extra_headers``, ...);
    ``stream`` is set here. ``timeout``: the client's timeout instead of the spec's. Returns the
    :class:`~.active.ActiveStream`: iterate it with ``for`` (``Anthropic``) or ``async for``
    (``AsyncAnthropic``); it yields the SDK's event objects.
    """
    if "stream" in create_kwargs:
        raise TypeError("messages_stream() sets 'stream' itself")
    if "messages" not in create_kwargs:
        raise TypeError("messages_stream() needs messages=[...]")
    messages = list(create_kwargs.pop("messages"))
    model = create_kwargs.get("model")
    async_client = is_async_client(client)
    create = without_retries(client, monitor, timeout=timeout).messages.create
    state = Continuation(messages)
    active: ActiveStream | None = None

    def opener(checkpoint: Checkpoint | None) -> Any:
        request_messages: list[Any] = messages
        stripped = ""
        prefix: str | None = None
        if checkpoint is not None:
            # A retry or a continuation: the request carries what the consumer already has.
            try:
                request_messages, stripped = state.messages()
            except ContinuationError as exc:
                raise ResumeFailed(str(exc), checkpoint=checkpoint) from None
            if checkpoint.offset:
                prefix = _delivered(state, checkpoint)
        adapt = state.adapter(stripped)
        kwargs = {**create_kwargs, "messages": request_messages, "stream": True}
        if async_client:

            async def open_async() -> _AsyncTracked:
                return _AsyncTracked(await create(**kwargs), state, adapt, prefix, active)

            return open_async()
        return _SyncTracked(create(**kwargs), state, adapt, prefix, active)

    active = stream_active(
        monitor,
        opener,
        model=model if isinstance(model, str) else None,
        provider=provider,
        resumable=True,
        attributes=server_attributes(getattr(client, "base_url", None)),
    )
    return active
