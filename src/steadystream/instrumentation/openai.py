"""Resilient OpenAI Responses streams: background responses, retries and exact resume.

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
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import conventions as c
from .active import ActiveStream, creates_async, stream_active
from .policy.timeouts import timeout_parts

if TYPE_CHECKING:
    from .core.checkpoint import Checkpoint
    from .monitor import StreamMonitor

__all__ = ["is_async_client", "responses_stream", "without_retries"]


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
    )
