"""Resilient OpenAI streams: Responses (retries and exact resume) and Chat Completions (retries).

Responses
=========

::

    from steadystream.instrumentation.openai import responses_stream

    for event in responses_stream(monitor, client, model="gpt-4.1", input="hi"):          # OpenAI
        ...
    async for event in responses_stream(monitor, aclient, model="gpt-4.1", input="hi"):  # Async
        ...

What it does on top of ``client.responses.create(..., stream=True)``:

* creates the response with ``background=True``, so the generation continues server-side when
  the connection breaks, and sends one ``Idempotency-Key`` (``extra_headers``) for the logical
  request, reused by every retry, so a retried create cannot start a second generation;
* turns the client's own retries off on a copy (``client.with_options(max_retries=0)``), so the
  monitor's retries and budget are the only ones and the two never multiply; the copy also gets
  the spec's connect timeout (see :mod:`.policy.timeouts`) and a read timeout one and a half
  times the longer of ``first_token`` and ``stream_idle`` as a backstop (the monitor's own
  timers fire first and raise typed errors), unless you pass ``timeout=``;
* after an interruption (dropped connection, idle timeout, 5xx, a stream cut before its
  terminal event) re-attaches with ``client.responses.retrieve(id, stream=True,
  starting_after=<last sequence_number>)``, within ``max_retries`` and the monitor's retry
  budget. Events are deduplicated by sequence number, so the consumer sees every content byte
  exactly once; a gap raises :class:`~steadystream.ResumeFailed`;
* retries a create that failed before anything arrived (429 with ``Retry-After``, 408, 5xx,
  network errors) with backoff;
* ends with a typed error (:class:`~steadystream.UpstreamError`, a timeout,
  :class:`~steadystream.RetryBudgetExhausted`, ...) carrying the checkpoint when it cannot
  recover. ``error`` events and ``response.failed`` are final: the response itself failed, and
  the idempotency key would return the same failure.

The client is recognised by duck typing: an ``AsyncOpenAI`` (whose ``responses.create`` is a
coroutine function) gives an async iterable, anything else a sync one. ``openai`` is not
imported by this module.

Chat Completions
================

::

    from steadystream.instrumentation.openai import chat_stream

    kw = dict(model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])
    for chunk in chat_stream(monitor, client, **kw):          # OpenAI
        ...
    async for chunk in chat_stream(monitor, aclient, **kw):  # AsyncOpenAI
        ...

What it does on top of ``client.chat.completions.create(..., stream=True)``, with the same
attempt, retry, budget and timeout machinery (:mod:`.active`):

* turns the client's own retries off on a copy, with the spec's timeouts (as above);
* retries what failed before content: 429 (honouring ``retry-after``), 408, 5xx, network
  errors, first-token timeouts, an in-band ``server_error`` chunk, and a stream that ended
  before every choice's ``finish_reason`` (and, with ``stream_options: {"include_usage":
  true}``, before its usage chunk): a cut can look like a clean end, because the SDK swallows
  the ``data: [DONE]`` whose absence would tell;
* the consumer sees the chunks of one completion only: the opening chunks that carry no
  content (the assistant role) are held back until the attempt's first content or closing
  chunk, so an attempt that fails before content leaves nothing behind, and the chunks
  delivered all carry the same ``id``;
* never resumes a stream cut after content. Chat Completions has no server-side resume, and
  neither way around that is exact: repeating the request regenerates the answer (a
  different one, unless the server is deterministic), and continuing from an assistant
  message holding the delivered text is not supported by OpenAI (the model answers the
  message instead of continuing it). So a failure after content that would otherwise be
  retried (a dropped connection, an idle timeout, an in-band error, an EOF without
  ``finish_reason``) ends with :class:`~steadystream.ResumeFailed`: its ``checkpoint`` holds
  exactly what the consumer received (offset and sha256), its ``__cause__`` the failure. It
  counts in ``stream_resume_failure_total`` and ``stream_errors_total{error_class=
  "resume_failed"}``. Never silently corrupted output; retry the whole request yourself if a
  new answer is acceptable.

OpenAI-compatible servers (vLLM, the LiteLLM proxy, Azure OpenAI, ...) work the same: pass the
client built for them (``OpenAI(base_url=...)``, ``AzureOpenAI(...)``); see
docs/instrumentation.md.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .. import conventions as c
from .active import ActiveStream, creates_async, missing_terminal, stream_active
from .core.shell import upstream_items
from .errors import ResumeFailed
from .policy.timeouts import timeout_parts
from .providers.openai_chat import carries_content, finishes, in_band_error, reports_usage
from .sinks.telemetry import server_attributes

if TYPE_CHECKING:
    from .core.checkpoint import Checkpoint
    from .monitor import StreamMonitor

__all__ = [
    "chat_stream",
    "is_async_chat_client",
    "is_async_client",
    "responses_stream",
    "without_retries",
]


def is_async_client(client: Any) -> bool:
    """True for ``AsyncOpenAI`` (or anything whose ``responses.create`` is a coroutine)."""
    return creates_async(client, "responses", "OpenAI")


def without_retries(client: Any, monitor: StreamMonitor, *, timeout: Any = None) -> Any:
    """A copy of ``client`` with its own retries off and the spec's timeouts.

    ``timeout``: keep this instead (``None``: build one from the spec in the SDK's own
    ``Timeout`` type, found on the client so neither httpx nor httpx2 is imported here).
    """
    options: dict[str, Any] = {"max_retries": 0}
    if timeout is None:
        current = getattr(client, "timeout", None)
        timeout_type = type(current) if hasattr(current, "connect") else None
        if timeout_type is not None:
            # The read timeout is only a backstop (timeouts.read_backstop): the monitor enforces
            # first-token and idle budgets itself and raises typed errors with the checkpoint.
            timeout = timeout_type(**timeout_parts(monitor.spec))
    if timeout is not None:
        options["timeout"] = timeout
    return client.with_options(**options)


def responses_stream(
    monitor: StreamMonitor,
    client: Any,
    *,
    model: str,
    input: Any,
    idempotency_key: str | None = None,
    provider: str = "openai",
    timeout: Any = None,
    **kwargs: Any,
) -> ActiveStream:
    """A resilient Responses API stream under ``monitor`` (see the module docstring).

    ``kwargs`` go to ``client.responses.create`` (``instructions``, ``tools``,
    ``max_output_tokens``, ``extra_headers``, ...); ``stream`` and ``background`` are set here.
    ``extra_headers`` and the ``Idempotency-Key`` are sent on creates and resumes alike (a
    GET is idempotent anyway; the key lets the upstream's logs tie a resume to its request).
    Returns the :class:`~.active.ActiveStream`: iterate it with ``for`` (``OpenAI``) or
    ``async for`` (``AsyncOpenAI``); it yields the SDK's event objects unchanged.
    """
    for reserved in ("stream", "background"):
        if reserved in kwargs:
            raise TypeError(f"responses_stream() sets {reserved!r} itself")
    key = idempotency_key or f"ss-{uuid.uuid4().hex}"
    quiet = without_retries(client, monitor, timeout=timeout)
    extra_headers: Mapping[str, str] = dict(kwargs.pop("extra_headers", None) or {})
    create_headers = {**extra_headers, c.HEADER_IDEMPOTENCY_KEY: key}
    responses = quiet.responses
    # Resolved now, so a client without the API fails here and not on the first retry.
    is_async_client(client)

    def opener(checkpoint: Checkpoint | None) -> Any:
        if checkpoint is not None and checkpoint.response_id is not None:
            resume: dict[str, Any] = {"stream": True, "extra_headers": create_headers}
            if checkpoint.sequence_number is not None:
                resume["starting_after"] = checkpoint.sequence_number
            return responses.retrieve(checkpoint.response_id, **resume)
        return responses.create(
            model=model,
            input=input,
            stream=True,
            background=True,
            extra_headers=create_headers,
            **kwargs,
        )

    return stream_active(
        monitor,
        opener,
        model=model,
        provider=provider,
        resumable=True,
        idempotency_key=key,
        attributes=server_attributes(getattr(client, "base_url", None)),
    )


# ------------------------------------------------------------------------- Chat Completions

_CHAT_NO_RESUME = (
    "Chat Completions cannot resume a stream exactly (no server-side resume; a repeated "
    "request generates a new answer)"
)


_HOLD: Any = object()


class _ChatAttempt:
    """One attempt's SDK chunk stream as the consumer will see it: the leading chunks without
    content held back until the first content or closing chunk (so a failed attempt leaves
    nothing behind), the SDK's in-band ``APIError`` handed back as the error chunk it was (the
    provider layer reads it), and an end before the closing chunks raised as a cut."""

    def __init__(self, upstream: Any, include_usage: bool, choices: int) -> None:
        self.upstream = upstream
        # The watchdog shuts down the socket under the SDK stream's response.
        self.response = getattr(upstream, "response", None)
        self._include_usage = include_usage
        self._open_choices = choices
        self._held: list[Any] = []
        self._out: list[Any] = []
        self._open = False
        self._finished = False
        self._ended = False
        self._it: Any = None

    def _admit(self, item: Any) -> Any:
        """Take one upstream chunk: returns the chunk to hand over now, or :data:`_HOLD`."""
        if not self._finished:
            closed = finishes(item)
            if closed:
                self._open_choices -= closed
                self._finished = self._open_choices <= 0
        if self._finished and not self._ended:
            self._ended = not self._include_usage or reports_usage(item)
        if self._open:
            return item
        if not (self._finished or carries_content(item)):
            self._held.append(item)
            return _HOLD
        self._open = True
        if not self._held:
            return item
        first, *rest = self._held
        self._out.extend(rest)
        self._out.append(item)
        self._held.clear()
        return first

    def _exhausted(self) -> None:
        if not self._ended:
            detail = " (finish_reason" + (" and usage)" if self._include_usage else ")")
            raise missing_terminal(detail)
        self._out.extend(self._held)
        self._held.clear()

    def _error(self, exc: Exception) -> Any:
        chunk = in_band_error(exc)
        if chunk is None:
            raise exc
        return chunk


class _SyncChatAttempt(_ChatAttempt):
    def __iter__(self) -> Iterator[Any]:
        self._it = upstream_items(self.upstream, is_async=False)
        return self

    def __next__(self) -> Any:
        if self._out:
            return self._out.pop(0)
        while True:
            try:
                item = next(self._it)
            except StopIteration:
                self._exhausted()
                if self._out:
                    return self._out.pop(0)
                raise
            except Exception as exc:
                return self._error(exc)
            out = self._admit(item)
            if out is not _HOLD:
                return out

    def close(self) -> None:
        close = getattr(self.upstream, "close", None)
        if callable(close):
            close()


class _AsyncChatAttempt(_ChatAttempt):
    def __aiter__(self) -> AsyncIterator[Any]:
        self._it = upstream_items(self.upstream, is_async=True)
        return self

    async def __anext__(self) -> Any:
        if self._out:
            return self._out.pop(0)
        while True:
            try:
                item = await self._it.__anext__()
            except StopAsyncIteration:
                self._exhausted()
                if self._out:
                    return self._out.pop(0)
                raise
            except Exception as exc:
                return self._error(exc)
            out = self._admit(item)
            if out is not _HOLD:
                return out

    async def aclose(self) -> None:
        close = getattr(self.upstream, "close", None)
        if callable(close):
            result = close()
            if inspect.isawaitable(result):
                await result


def is_async_chat_client(client: Any) -> bool:
    """True for ``AsyncOpenAI`` (anything whose ``chat.completions.create`` is a coroutine)."""
    chat = getattr(client, "chat", None)
    if chat is None:
        raise TypeError(f"{type(client).__name__} has no chat.completions: not an OpenAI client")
    return creates_async(chat, "completions", "OpenAI")


def chat_stream(
    monitor: StreamMonitor,
    client: Any,
    *,
    provider: str = "openai",
    timeout: Any = None,
    **create_kwargs: Any,
) -> ActiveStream:
    """A resilient Chat Completions stream under ``monitor`` (see the module docstring).

    ``create_kwargs`` go to ``client.chat.completions.create`` (``model`` and ``messages`` are
    required by the API; ``stream_options``, ``max_completion_tokens``, ``tools``,
    ``extra_headers``, ...); ``stream`` is set here. ``timeout``: the client's timeout instead
    of the spec's. Returns the :class:`~.active.ActiveStream`: iterate it with ``for``
    (``OpenAI``) or ``async for`` (``AsyncOpenAI``); it yields the SDK's chunk objects
    unchanged.
    """
    if "stream" in create_kwargs:
        raise TypeError("chat_stream() sets 'stream' itself")
    if "messages" not in create_kwargs:
        raise TypeError("chat_stream() needs messages=[...]")
    model = create_kwargs.get("model")
    options = create_kwargs.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    n = create_kwargs.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    async_client = is_async_chat_client(client)
    create = without_retries(client, monitor, timeout=timeout).chat.completions.create
    kwargs = {**create_kwargs, "stream": True}

    def opener(checkpoint: Checkpoint | None) -> Any:
        if checkpoint is not None and checkpoint.offset:
            # Never reached (a cut after content ends the stream first): kept so no request
            # can ever regenerate text behind the consumer's back.
            raise ResumeFailed(_CHAT_NO_RESUME, checkpoint=checkpoint)
        if async_client:

            async def open_async() -> _AsyncChatAttempt:
                return _AsyncChatAttempt(await create(**kwargs), include_usage, choices)

            return open_async()
        return _SyncChatAttempt(create(**kwargs), include_usage, choices)

    return stream_active(
        monitor,
        opener,
        model=model if isinstance(model, str) else None,
        provider=provider,
        resumable=False,
        resume_refusal=_CHAT_NO_RESUME,
        attributes=server_attributes(getattr(client, "base_url", None)),
    )
