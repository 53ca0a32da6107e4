"""Active mode: the monitor opens the stream itself, so it can retry, resume and shed load.

``monitor.stream(opener, model=...)`` (implemented by :func:`stream_active`) calls
``opener(checkpoint)`` to open each attempt. ``checkpoint`` is ``None`` the first time and
afterwards exactly what the consumer has received (:class:`~steadystream.Checkpoint`). The opener
returns an iterable, an async iterable, or an awaitable of either. If it takes a parameter called
``idempotency_key``, it also gets the key of the logical request, the same on every attempt, to
send as the ``Idempotency-Key`` header.

What happens around the opener, for sync and async consumers alike:

1. **Ingress.** The stream is admitted by the monitor's :class:`~.policy.ingress.IngressGuard`
   (``spec.stream.ingress``) or rejected at once with :class:`~steadystream.IngressRejected`.
2. **Attempts.** Each attempt is read through the same shells as ``monitor.wrap``, so the
   first-token, idle and total timeouts, the phases, checkpoints and spans (one per logical
   stream, a child span per attempt) are the core's.
3. **Retries.** A failed attempt is classified (:mod:`.policy.retry`). It is retried only when the
   failure is transient, ``max_retries`` is not used up, the total budget leaves room for the
   backoff, and the monitor's shared :class:`~.policy.budget.RetryBudget` grants a token. Otherwise
   the consumer gets a typed error carrying the checkpoint: :class:`~steadystream.UpstreamError`,
   a timeout, or :class:`~steadystream.RetryBudgetExhausted` when the budget refused.
4. **Resume.** After content (or once the upstream numbered its events), the next attempt
   resumes. Its items pass through a :class:`~.policy.resume.Resumer` *before* the core sees
   them, so a replayed prefix is skipped and verified, nothing is counted twice, and the
   consumer gets every content byte exactly once, or :class:`~steadystream.ResumeFailed`. A
   resume the upstream refuses (a 4xx such as 404: the response is gone) also ends in
   ``ResumeFailed``, with the upstream's :class:`~steadystream.UpstreamError` as
   ``__cause__``. Every resume that does not catch up counts once in
   ``stream_resume_failure_total``. A stream that can never be resumed exactly
   (``resume_refusal``: Chat Completions) ends a failure after content that would otherwise
   be retried in ``ResumeFailed`` at once, with the checkpoint and the failure as
   ``__cause__``, and counts it there too: no request is sent whose answer could not be
   continued exactly.
5. **In-band failures.** An item the provider layer (:mod:`.providers`) reads as an in-band
   error ends the stream with ``UpstreamError`` carrying its ``error_class`` (e.g.
   ``upstream_error_event``, ``response_failed``); the item itself is not yielded. It is
   final, unless the format gives the HTTP status it stands for and that status is transient
   (Anthropic's ``overloaded_error`` event: 529), which is retried like the status. An
   incomplete response is a legitimate, truncated end and is yielded. A stream that announced
   its start and ends without its terminal item was cut short, and is resumed like a dropped
   connection.

The retry budget, backoff and ingress guard belong to the monitor (``StreamMonitor(...,
budget=, ingress=, backoff=)``, built from the spec when not given), so every stream of a
monitor shares them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import FunctionType
from typing import TYPE_CHECKING, Any

from .. import conventions as c
from .core.shell import AsyncStreamWrapper, SyncStreamWrapper, upstream_items
from .core.watchdog import LagExcuse, LagMeter, loop_lag
from .errors import (
    IngressRejected,
    ResumeFailed,
    RetryBudgetExhausted,
    StreamError,
    UpstreamError,
)
from .policy.pool import pool_wait
from .policy.resume import SKIP, Resumer
from .policy.retry import Verdict, classify, lag_caused
from .providers import registry as wire
from .providers.base import END, ERROR, STARTED
from .providers.failures import connect_timeout_phase, reason_for_status
from .providers.failures import error_class as failure_class
from .sinks.telemetry import report_telemetry_error

if TYPE_CHECKING:
    from .core.checkpoint import Checkpoint
    from .core.machine import StreamCore
    from .monitor import StreamMonitor
    from .policy.ingress import IngressTicket

__all__ = ["ActiveStream", "creates_async", "missing_terminal", "stream_active"]

_MISSING_TERMINAL = "the stream ended before its terminal event"
# Byte items (an SSE body read raw): one isinstance with a tuple, per item.
_BYTES = (bytes, bytearray, memoryview)


def missing_terminal(detail: str = "") -> UpstreamError:
    """The error of a stream that ended cleanly before its terminal item: it was cut short
    (a dropped connection can look like a clean end), and is retried like a dropped
    connection. ``detail`` names the terminal item the format expected."""
    return UpstreamError(f"{_MISSING_TERMINAL}{detail}", retryable=True)


# ---------------------------------------------------------------------------------- attempts


class _Replay:
    """Puts a :class:`Resumer` between a resumed attempt's upstream and the shell, so skipped
    and trimmed items never reach the core. Exposes the upstream's ``response`` so the watchdog
    can still find (and shut down) the socket under it."""

    def __init__(self, upstream: Any, resumer: Resumer) -> None:
        self.upstream = upstream
        self.response = getattr(upstream, "response", None)
        self.resumer = resumer
        self._it: Any = None

    def __iter__(self) -> Iterator[Any]:
        self._it = upstream_items(self.upstream, is_async=False)
        return self

    def __next__(self) -> Any:
        admit = self.resumer.admit
        while True:
            try:
                item = next(self._it)
            except StopIteration:
                self.resumer.finish()
                raise
            out = admit(item)
            if out is not SKIP:
                return out

    def __aiter__(self) -> AsyncIterator[Any]:
        self._it = upstream_items(self.upstream, is_async=True)
        return self

    async def __anext__(self) -> Any:
        admit = self.resumer.admit
        while True:
            try:
                item = await self._it.__anext__()
            except StopAsyncIteration:
                self.resumer.finish()
                raise
            out = admit(item)
            if out is not SKIP:
                return out

    def close(self) -> Any:
        close = getattr(self.upstream, "close", None)
        return close() if callable(close) else None

    async def aclose(self) -> None:
        close = getattr(self.upstream, "aclose", None) or getattr(self.upstream, "close", None)
        if callable(close):
            result = close()
            if inspect.isawaitable(result):
                await result


def creates_async(client: Any, resource: str, sdk: str) -> bool:
    """Whether ``client.<resource>.create`` is a coroutine function (an async SDK client),
    by duck typing, so no SDK is imported. A client without it is a :class:`TypeError` naming
    the ``sdk`` expected."""
    create = getattr(getattr(client, resource, None), "create", None)
    if create is None:
        raise TypeError(f"{type(client).__name__} has no {resource}.create: not an {sdk} client")
    return inspect.iscoroutinefunction(create) or inspect.iscoroutinefunction(
        getattr(create, "__wrapped__", None)
    )


# The kinds of parameter a keyword argument can fill.
_BY_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _accepts_key(opener: Callable[..., Any]) -> bool:
    """Whether ``opener`` takes an ``idempotency_key`` keyword argument (a parameter of that
    name that is not positional-only)."""
    if (
        type(opener) is FunctionType
        and not {"__wrapped__", "__signature__"} & opener.__dict__.keys()
    ):
        # A plain function (the openers the provider helpers make on every stream): its code
        # names its parameters, as inspect.signature would, at a fraction of the cost.
        code = opener.__code__
        first, end = code.co_posonlyargcount, code.co_argcount + code.co_kwonlyargcount
        return "idempotency_key" in code.co_varnames[first:end]
    try:
        param = inspect.signature(opener).parameters.get("idempotency_key")
    except (TypeError, ValueError):
        return False
    return param is not None and param.kind in _BY_KEYWORD


# ---------------------------------------------------------------------------------- the run


class _Run:
    """One logical active stream: the decisions both drivers share (no I/O here)."""

    def __init__(
        self,
        monitor: StreamMonitor,
        opener: Callable[..., Any],
        *,
        model: str | None,
        provider: str | None,
        resumable: bool,
        expect_json: bool,
        idempotency_key: str,
        resume_refusal: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self.monitor = monitor
        self.attributes = attributes
        self.opener = opener
        self.model = model
        self.provider = provider
        self.resumable = resumable and resume_refusal is None
        self.resume_refusal = resume_refusal
        self.expect_json = expect_json
        self.idempotency_key = idempotency_key
        self.pass_key = _accepts_key(opener)
        self.clock = monitor.clock
        self.retry_spec = monitor.spec.stream.retry
        self.core: StreamCore | None = None
        self.excuse: LagExcuse | None = None
        self.ticket: IngressTicket | None = None
        self.t_open = 0.0
        self.retries = 0
        self.resumer: Resumer | None = None
        self.resume_pending = False
        self.saw_bytes = False
        self.saw_sequence = False
        self.saw_end = False
        # The upstream announced its start (so it must send its terminal item).
        self.saw_start = False
        # Content chunks the core had counted when the last item was handed over.
        self.chunks_seen = 0
        self.closed = False
        #: Called with the core as soon as it exists (relay mode moves byte counting).
        self.on_core: Callable[[StreamCore], None] | None = None

    # -- lifecycle

    def start(self) -> StreamCore:
        """Admit the stream (ingress), open its core, deposit into the retry budget."""
        watchdog = self.monitor.watchdog
        meter = watchdog.lag if watchdog is not None else None
        if meter is not None:
            self.monitor.ingress.watch_lag(meter)
        try:
            self.ticket = self.monitor.ingress.acquire()
        except IngressRejected as exc:
            self.monitor.record_rejected(exc.reason, self.model, self.provider)
            raise
        core = self._admitted(meter)
        self.monitor.budget.deposit()
        return core

    async def start_async(self) -> StreamCore:
        """:meth:`start` for async consumers: a shared guard and budget are awaited."""
        try:
            self.ticket = await self.monitor.ingress.acquire_async()
        except IngressRejected as exc:
            self.monitor.record_rejected(exc.reason, self.model, self.provider)
            raise
        core = self._admitted(loop_lag())
        try:
            await self.monitor.budget.deposit_async()
        except BaseException:  # cancelled while Redis answered: the slot must not leak
            self.finish(abandoned=True)
            raise
        return core

    def _admitted(self, meter: LagMeter | None) -> StreamCore:
        """Open the admitted stream's core (its ticket is released if that fails); its first-
        token and idle deadlines answer to ``meter``'s lag (see :mod:`.core.watchdog`)."""
        queued = self.ticket.queued if self.ticket is not None else None
        try:
            core = self.monitor.open_stream(
                self.model,
                self.provider,
                expect_json=self.expect_json,
                queued=queued,
                attributes=self.attributes,
            )
        except BaseException:
            self.ticket.release()
            raise
        self.core = core
        if meter is not None:
            meter.on_sample(self.monitor.record_lag)
            policy = core.policy
            self.excuse = core.lag_excuse = LagExcuse(
                meter,
                self.monitor.spec.stream.ingress.overload.lag,
                {c.TIMEOUT_FIRST_TOKEN: policy.first_token, c.TIMEOUT_IDLE: policy.idle},
            )
        if self.on_core is not None:
            try:
                self.on_core(core)
            except Exception:
                report_telemetry_error("StreamCore", "on_core")
        self.t_open = self.clock() - (queued or 0.0)
        return core

    def begin_attempt(self) -> tuple[Any, ...]:
        """Start the next attempt; returns the opener's arguments."""
        core = self._core
        t = self.clock()
        checkpoint: Checkpoint | None = None
        if core.attempt:
            checkpoint = core.current_checkpoint()
            core.clear_expired()
        if self.excuse is not None:
            self.excuse.new_attempt()
        core.begin_attempt(t)
        self.resumer = None
        if checkpoint is not None and (checkpoint.offset or checkpoint.sequence_number is not None):
            self.resumer = Resumer(checkpoint)
            self.resume_pending = True
        return (checkpoint,)

    def opening(self) -> None:
        """The opener is about to run: the attempt's first-token (or total) deadline already
        covers it (see :func:`stream_active` on how far a sync open can be bounded)."""
        try:
            self._core.opening(self.clock())
        except Exception:
            report_telemetry_error("StreamCore", "opening")

    def call_opener(self, args: tuple[Any, ...]) -> Any:
        if self.pass_key:
            return self.opener(*args, idempotency_key=self.idempotency_key)
        return self.opener(*args)

    def wrap_upstream(self, upstream: Any) -> Any:
        self._core.attempt_opened(self.clock())
        waited = pool_wait(upstream)
        if waited is not None:
            self._core.pool_waited(waited)
        if self.resumer is not None and not self.resumer.done:
            return _Replay(upstream, self.resumer)
        return upstream

    @property
    def _core(self) -> StreamCore:
        assert self.core is not None, "start() first"
        return self.core

    # -- items

    def on_item(self, item: Any) -> Any:
        """An item the shell is about to hand over: returns it, or raises an in-band failure."""
        if self.resume_pending and self.resumer is not None and self.resumer.done:
            self._resumed()
        cls = type(item)
        if cls is str:
            return item
        if isinstance(item, _BYTES):
            self.saw_bytes = True
            return item
        core = self.core  # read directly, not through the _core property: per item
        assert core is not None, "start() first"
        # Nearly every item is content, and the shell has just fed it to the core: when the
        # core counted a chunk, there is nothing to decide.
        chunks = core.chunks
        if chunks != self.chunks_seen:
            self.chunks_seen = chunks
            if not self.saw_sequence and core.sequence_number is not None:
                self.saw_sequence = True
            return item
        reading = wire.read_item(item)
        if reading.sequence_number is not None:
            self.saw_sequence = True
        kind = reading.kind
        if kind == END:
            self.saw_end = True
        elif kind == ERROR:
            if reading.error_class == c.ERROR_CLASS_RESPONSE_INCOMPLETE:
                # A legitimate (if truncated) end: the consumer gets the event and its reason.
                self.saw_end = True
                return item
            # Final, unless the format says the error stands for a transient HTTP status
            # (Anthropic's overloaded_error event: 529).
            status = reading.status
            raise UpstreamError(
                wire.describe_error(item),
                status=status,
                error_class=reading.error_class,
                checkpoint=core.current_checkpoint(),
                retryable=status is not None and reason_for_status(status) is not None,
            )
        elif kind == STARTED:
            self.saw_start = True
        return item

    def _resumed(self) -> None:
        self.resume_pending = False
        try:
            self._core.record_resume(True, self.clock())
        except Exception:
            report_telemetry_error("StreamCore", "record_resume")

    def on_exhausted(self) -> None:
        """The attempt's upstream ended cleanly. Raises when that end was premature."""
        if self.resume_pending:
            # The replay caught up (Resumer.finish passed) and simply had nothing new.
            self._resumed()
        if (self.saw_sequence or self.saw_start) and not self.saw_end:
            raise missing_terminal()

    # -- failures

    def on_failure(self, exc: BaseException) -> float:
        """An attempt failed: returns the delay before the next attempt, or raises the error
        the consumer gets (typed, with the exact checkpoint)."""
        plan = self.plan_retry(exc)
        return self.retry_granted(plan, plan[1].free or self.monitor.budget.try_withdraw())

    async def on_failure_async(self, exc: BaseException) -> float:
        """:meth:`on_failure` for async consumers: a shared budget is awaited, not blocked on."""
        plan = self.plan_retry(exc)
        if plan[1].free:
            return self.retry_granted(plan, True)
        return self.retry_granted(plan, await self.monitor.budget.try_withdraw_async())

    def plan_retry(self, exc: BaseException) -> tuple[BaseException, Verdict, float, float]:
        """Everything :meth:`on_failure` decides before asking the retry budget: raises the
        final error, or returns (failure, verdict, delay, time) for :meth:`retry_granted`."""
        core = self._core
        t = self.clock()
        if core.waiting and failure_class(exc) == c.ERROR_CLASS_NETWORK:
            # The opener failed on the network (typically the HTTP client's read timeout while
            # waiting for response headers) after the attempt's deadline: that attempt ran out
            # of its first-token budget, and is counted and retried as such.
            expired = core.check(t)
            if expired is not None:
                expired.__cause__ = exc
                exc = expired
        try:
            core.on_error(exc, t)
        except Exception:
            report_telemetry_error("StreamCore", "on_error")
        if isinstance(exc, ResumeFailed):
            self._resume_failed(t)
            raise self._final(exc, None) from None
        verdict = classify(
            exc,
            delivered=core.content_bytes > 0,
            resumable=self.resumable and not self.saw_bytes,
            retry_after_cap=self.retry_spec.retry_after_cap,
            now=self.monitor.wall_clock(),
        )
        if verdict.error_class == c.ERROR_CLASS_CONNECT_TIMEOUT and self.excuse is not None:
            lag = self.excuse.lagging()
            if lag is not None:
                # The connect timer fired while this process lagged: not the upstream's dial.
                verdict = lag_caused(verdict, lag)
        if verdict.error_class == c.ERROR_CLASS_CONNECT_TIMEOUT:
            # The dial or TLS budget ran out inside the HTTP client (see .timeouts).
            try:
                core.record_timeout(connect_timeout_phase(exc), t)
            except Exception:
                report_telemetry_error("StreamCore", "record_timeout")
        if self.resume_refusal is not None and verdict.reason is not None and core.content_bytes:
            # A transient failure after content, on a stream that cannot be continued exactly:
            # retrying would re-generate text behind the consumer's back.
            self.resume_pending = True
            self._resume_failed(t)
            cause = self._final(exc, verdict)
            if cause is not exc:
                cause.__cause__ = exc
            raise ResumeFailed(
                f"{self.resume_refusal}; the stream was cut after content by {_describe(exc)}",
                checkpoint=self._checkpoint(),
            ) from cause
        if self.resume_pending and verdict.reason is None and verdict.status is not None:
            # The upstream refused the resume itself (404: the background response expired or
            # was never stored): the stream cannot continue. That is a resume failure, not a
            # plain upstream error, whatever the status says.
            self._resume_failed(t)
            cause = self._final(exc, verdict)
            cause.__cause__ = exc
            raise ResumeFailed(
                f"the upstream refused to resume the stream: {_describe(exc)}",
                checkpoint=self._checkpoint(),
            ) from cause
        if not verdict.retry or self.retries >= self.retry_spec.max_retries:
            raise self._final(exc, verdict) from exc
        delay = self.monitor.backoff.delay(self.retries, verdict.retry_after)
        if self.clock() + delay >= self.t_open + self.monitor.policy.total:
            raise self._final(exc, verdict) from exc
        return exc, verdict, delay, t

    def retry_granted(
        self, plan: tuple[BaseException, Verdict, float, float], granted: bool
    ) -> float:
        """The retry budget answered: the delay before the next attempt, or
        :class:`~steadystream.RetryBudgetExhausted`."""
        exc, verdict, delay, t = plan
        core = self._core
        if not granted:
            try:
                core.record_budget_exhausted(t)
            except Exception:
                report_telemetry_error("StreamCore", "record_budget_exhausted")
            raise RetryBudgetExhausted(
                f"retry budget exhausted after: {_describe(exc)}",
                checkpoint=self._checkpoint(),
                cause=exc,
            ) from exc
        self.retries += 1
        assert verdict.reason is not None
        try:
            core.record_retry(verdict.reason, t)
        except Exception:
            report_telemetry_error("StreamCore", "record_retry")
        return delay

    def _resume_failed(self, t: float) -> None:
        if self.resume_pending:
            self.resume_pending = False
            try:
                self._core.record_resume(False, t)
            except Exception:
                report_telemetry_error("StreamCore", "record_resume")

    def _checkpoint(self) -> Checkpoint | None:
        core = self._core
        if not core.chunks and core.sequence_number is None:
            return core.checkpoint
        return core.current_checkpoint()

    def _final(self, exc: BaseException, verdict: Verdict | None) -> BaseException:
        """The error the consumer gets for ``exc``: typed, with the exact checkpoint."""
        cp = self._checkpoint()
        if isinstance(exc, StreamError):
            if exc.checkpoint is None or (cp is not None and exc.checkpoint != cp):
                exc.checkpoint = cp
            return exc
        assert verdict is not None
        return UpstreamError(
            _describe(exc),
            status=verdict.status,
            error_class=verdict.error_class,
            checkpoint=cp,
            retryable=verdict.reason is not None,
            retry_after=verdict.retry_after,
        )

    # -- the end

    def finish(self, *, error: BaseException | None = None, abandoned: bool = False) -> None:
        """End the logical stream exactly once (ok, error or abandoned) and free its slot."""
        if self.closed:
            return
        self.closed = True
        try:
            if self.core is not None:
                t = self.clock()
                if error is not None:
                    self._resume_failed(t)
                # A failed resume names the failure class, whatever the failed attempt said
                # (a refused resume's attempt failed as upstream_4xx).
                # So does a failure this process's own lag explained (process_lag).
                error_class = (
                    error.error_class
                    if isinstance(error, ResumeFailed)
                    or getattr(error, "error_class", None) == c.ERROR_CLASS_PROCESS_LAG
                    else None
                )
                try:
                    self.core.close(t, error=error, abandoned=abandoned, error_class=error_class)
                except Exception:
                    report_telemetry_error("StreamCore", "close")
        finally:
            if self.ticket is not None:
                self.ticket.release()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---------------------------------------------------------------------------------- drivers


def _run_sync(run: _Run) -> Iterator[Any]:
    monitor = run.monitor
    run.start()
    attempt: SyncStreamWrapper[Any] | None = None
    try:
        while True:
            args = run.begin_attempt()
            run.opening()
            try:
                upstream = run.call_opener(args)
            except Exception as exc:
                time.sleep(run.on_failure(exc))
                continue
            if inspect.isawaitable(upstream) or hasattr(upstream, "__aiter__"):
                _discard(upstream)
                raise TypeError("the opener returned an async stream; iterate with 'async for'")
            attempt = SyncStreamWrapper(
                run._core,
                run.wrap_upstream(upstream),
                monitor.clock,
                watchdog=monitor.watchdog,
                attempt_only=True,
            )
            try:
                for item in attempt:
                    yield run.on_item(item)
                run.on_exhausted()
            except Exception as exc:
                attempt.close()
                attempt = None
                time.sleep(run.on_failure(exc))
                continue
            attempt = None
            run.finish()
            return
    except GeneratorExit:
        # break, close() or garbage collection: the consumer stopped early.
        if attempt is not None:
            attempt.close()
        run.finish(abandoned=True)
        raise
    except BaseException as exc:
        if attempt is not None:
            attempt.close()
        if isinstance(exc, Exception):
            run.finish(error=exc)
        else:
            run.finish(abandoned=True)  # KeyboardInterrupt, SystemExit
        raise
    finally:
        run.finish(abandoned=True)  # a no-op unless an exit path above was missed


async def _run_async(run: _Run) -> AsyncIterator[Any]:
    monitor = run.monitor
    await run.start_async()
    attempt: AsyncStreamWrapper[Any] | None = None
    try:
        while True:
            args = run.begin_attempt()
            run.opening()
            try:
                upstream = run.call_opener(args)
                if inspect.isawaitable(upstream):
                    upstream = await _open_within_deadline(run, upstream)
            except Exception as exc:
                await asyncio.sleep(await run.on_failure_async(exc))
                continue
            if not hasattr(upstream, "__aiter__"):
                if not hasattr(upstream, "__iter__"):
                    raise TypeError(f"the opener returned {type(upstream).__name__}, not a stream")
                upstream = _AsyncFromSync(upstream)
            attempt = AsyncStreamWrapper(
                run._core, run.wrap_upstream(upstream), monitor.clock, attempt_only=True
            )
            try:
                async for item in attempt:
                    yield run.on_item(item)
                run.on_exhausted()
            except Exception as exc:
                await attempt.aclose()
                attempt = None
                await asyncio.sleep(await run.on_failure_async(exc))
                continue
            attempt = None
            run.finish()
            return
    except (GeneratorExit, asyncio.CancelledError):
        # aclose(), break + garbage collection, or task cancellation: abandoned.
        run.finish(abandoned=True)
        if attempt is not None:
            try:
                await attempt.aclose()
            except Exception:
                report_telemetry_error("AsyncStreamWrapper", "aclose")
        raise
    except BaseException as exc:
        if attempt is not None:
            await attempt.aclose()
        if isinstance(exc, Exception):
            run.finish(error=exc)
        else:
            run.finish(abandoned=True)
        raise
    finally:
        run.finish(abandoned=True)


async def _open_within_deadline(run: _Run, awaitable: Any) -> Any:
    """Await the opener within the attempt's first-token (or total) deadline; a deadline this
    process's own lag excuses moves out (see :mod:`.core.watchdog`) and the open goes on."""
    core = run._core
    clock = run.clock
    core.opening(clock())
    task = asyncio.ensure_future(awaitable)
    try:
        while True:
            remaining = core.next_deadline() - clock()
            if remaining > 0:
                await asyncio.wait((task,), timeout=None if math.isinf(remaining) else remaining)
            if task.done():
                return task.result()
            exp = core.deadline_passed(clock())
            if exp is not None:
                raise exp from None
    finally:
        if not task.done():
            task.cancel()
            # The open was given up: what it raised while cancelled is not the story.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class _AsyncFromSync:
    """A sync iterable used from async code (an opener returning a list, say)."""

    def __init__(self, iterable: Any) -> None:
        self._it = iter(iterable)

    def __aiter__(self) -> _AsyncFromSync:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._it)
        except StopIteration:
            raise StopAsyncIteration from None


def _discard(obj: Any) -> None:
    """Release something we will not use (an un-awaited coroutine, an unread stream)."""
    close = getattr(obj, "close", None)
    if callable(close):
        try:
            result = close()
            if inspect.iscoroutine(result):
                result.close()
        except Exception:
            report_telemetry_error(type(obj).__name__, "close")


# ---------------------------------------------------------------------------------- the API


class ActiveStream:
    """What ``monitor.stream(opener)`` returns: iterate it with ``for`` (sync opener) or
    ``async for`` (async opener). Use it as a context manager, or call :meth:`close` /
    :meth:`aclose`, to stop early; the stream then ends as ``abandoned``.

    ``idempotency_key`` is the key of this logical request (sent on every attempt).
    """

    def __init__(self, run: _Run) -> None:
        self._run = run
        self._sync: Any = None
        self._async: Any = None

    @property
    def idempotency_key(self) -> str:
        return self._run.idempotency_key

    @property
    def checkpoint(self) -> Checkpoint | None:
        """Exactly what the consumer has received so far (``None`` before any content): taken
        now, not the last periodic checkpoint, so it is safe to resume from mid-stream."""
        core = self._run.core
        if core is None or not core.chunks:
            return core.checkpoint if core is not None else None
        return core.current_checkpoint()

    @property
    def core(self) -> StreamCore | None:
        """The logical stream's core once iteration has started (``None`` before)."""
        return self._run.core

    def on_core(self, callback: Callable[[StreamCore], None]) -> None:
        """Call ``callback(core)`` as soon as the core exists (at once if it already does);
        relay mode uses it to count bytes on delivery. One callback per stream."""
        if self._run.core is not None:
            callback(self._run.core)
        else:
            self._run.on_core = callback

    def fail(self, exc: BaseException) -> None:
        """End the logical stream now with ``exc`` (relay mode: the consumer fell behind);
        a no-op once it has ended."""
        self._run.finish(error=exc)

    @property
    def attempts(self) -> int:
        """Attempts made so far (1 without retries)."""
        core = self._run.core
        return core.attempt if core is not None else 0

    def __iter__(self) -> Iterator[Any]:
        if self._async is not None:
            raise TypeError("this stream is already being iterated with 'async for'")
        if self._sync is None:
            self._sync = _run_sync(self._run)
        return self._sync  # type: ignore[no-any-return]

    def __aiter__(self) -> AsyncIterator[Any]:
        if self._sync is not None:
            raise TypeError("this stream is already being iterated with 'for'")
        if self._async is None:
            self._async = _run_async(self._run)
        return self._async  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop a sync stream early (``abandoned``)."""
        if self._sync is not None:
            self._sync.close()
        self._run.finish(abandoned=True)

    async def aclose(self) -> None:
        """Stop an async stream early (``abandoned``)."""
        if self._async is not None:
            await self._async.aclose()
        self._run.finish(abandoned=True)

    def __enter__(self) -> ActiveStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> ActiveStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def stream_active(
    monitor: StreamMonitor,
    opener: Callable[..., Any],
    *,
    model: str | None = None,
    provider: str | None = None,
    resumable: bool = True,
    expect_json: bool = False,
    idempotency_key: str | None = None,
    resume_refusal: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> ActiveStream:
    """Open, retry and resume a stream under ``monitor``'s policy (``monitor.stream``).

    ``opener(checkpoint)`` (optionally also ``idempotency_key=``) opens one attempt; see the
    module docstring. ``resumable=False`` says the opener cannot replay, so nothing is retried
    once the consumer has content. ``idempotency_key``: the key of this logical request
    (default: a fresh random one). ``resume_refusal``: why this stream can never be continued
    exactly once the consumer has content (implies ``resumable=False``); a failure after
    content that would otherwise be retried then ends in :class:`~steadystream.ResumeFailed`
    with this reason and the checkpoint, counted in ``stream_resume_failure_total``.
    ``attributes``: extra span attributes of the logical stream (``server.address``,
    ``server.port``, or ``gen_ai.operation.name`` for an operation other than ``chat``).

    Nothing happens until iteration starts: then the stream is admitted, opened, and timed.

    Opening and the first-token budget. The budget of an attempt starts before its opener
    runs. An async opener's awaitable is cancelled at the deadline. A *sync* opener cannot be
    interrupted: until it returns there is no stream whose socket the watchdog could shut, so
    a blocked ``client.responses.create(...)`` is bounded only by the HTTP client's own
    timeouts (``responses_stream`` sets a read timeout of 1.5 x the longer of ``first_token``
    and ``stream_idle`` as that backstop). The budget still decides the outcome: an opener that
    returns late meets an expired deadline and the attempt ends in ``FirstTokenTimeout``; one
    that fails on the network after the deadline counts as a first-token timeout too.
    """
    run = _Run(
        monitor,
        opener,
        model=model,
        provider=provider,
        resumable=resumable,
        expect_json=expect_json,
        idempotency_key=idempotency_key or f"ss-{uuid.uuid4().hex}",
        resume_refusal=resume_refusal,
        attributes=attributes,
    )
    return ActiveStream(run)
