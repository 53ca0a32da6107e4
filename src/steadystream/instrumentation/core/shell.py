"""The thin sync and async shells around :class:`~.machine.StreamCore` (what ``monitor.wrap``
returns).

Both shells share :class:`_Shell`, which turns upstream items into core events and decides what
to hand to the consumer; the sync and async classes only differ in how they pull the next item,
how they bound the wait (watchdog thread vs. lazy loop timer, see :mod:`.watchdog`) and how they
close the upstream. Items are read by the provider layer: per chunk, the fast path of the
item's wire format (learned once per item class), else its general reading. What a wrapper
yields:

* SDK objects, dicts, ``str``: the upstream items themselves, unchanged and in order.
* ``bytes`` items: the same bytes, unchanged; they are decoded (strict UTF-8) and parsed as SSE
  (or read as plain text when the body does not look like SSE) only to be measured.
* an httpx / httpx2 ``Response``: its body read with ``iter_bytes`` / ``aiter_bytes`` and
  yielded as parsed :class:`~.reassembly.ServerSentEvent` objects (``event``, ``data``, ``id``,
  ``retry``), including the stream's end marker; comment lines (keep-alives) are not events and are
  not yielded, but they count as proof of life.

Every exit path ends the stream exactly once: exhaustion (``ok``, or ``error`` when the upstream
failed in-band), an exception (``error``), a timeout (``error``, raised as the typed
``ss.*Timeout`` with the checkpoint), and ``close()`` / ``aclose()``, ``break`` (via the
context manager or garbage collection), task cancellation and garbage collection
(``abandoned``). The upstream is closed on every path that did not exhaust it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ... import conventions as c
from ..core.reassembly import ServerSentEvent, SSEParser, Utf8Decoder, looks_like_sse
from ..core.watchdog import driving_task, interrupt_upstream
from ..errors import EventTooLarge
from ..providers.base import (
    CONTENT,
    KEEPALIVE,
    MISS,
    DeltaFields,
    DeltaText,
    FastPath,
    Reading,
    delta_fields,
    delta_text,
)
from ..providers.registry import fast_path, read_item, read_sse
from ..sinks.telemetry import report_telemetry_error

if TYPE_CHECKING:
    from ..core.machine import StreamCore
    from ..core.watchdog import Watchdog

__all__ = ["AsyncStreamWrapper", "ByteReader", "EitherStreamWrapper", "SyncStreamWrapper"]

T = TypeVar("T")
_SKIP: Any = object()
_INF = float("inf")
_KEEPALIVE = Reading(KEEPALIVE)
# A fast path that does not say where its text deltas keep their fields (see DeltaFields).
_NO_DELTA = DeltaFields("", "", "", "")


def _unlearned(core: Any, item: Any, t: float) -> Any:
    return MISS  # never called: a shell learns the fast path at its first item


# How the openai SDK's Stream and AsyncStream iterate: their inner generator, passed through
# item for item. No docstrings, no ``yield from``: the templates' code is compared with an
# upstream's, and must be the SDK's own.
def _pass_through(self: Any) -> Iterator[Any]:
    for item in self._iterator:  # noqa: UP028
        yield item


async def _apass_through(self: Any) -> AsyncIterator[Any]:
    async for item in self._iterator:
        yield item


_KINDS = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR | inspect.CO_COROUTINE


def _code_key(code: Any) -> tuple[Any, ...]:
    return (
        code.co_code,
        code.co_names,
        code.co_consts,
        code.co_argcount,
        code.co_kwonlyargcount,
        getattr(code, "co_exceptiontable", None),
        code.co_flags & _KINDS,
    )


_SYNC_RELAY = _code_key(_pass_through.__code__)
_ASYNC_RELAY = _code_key(_apass_through.__code__)


def upstream_items(upstream: Any, *, is_async: bool) -> Any:
    """The iterator (sync) or async iterator of ``upstream``'s items that a shell reads.

    When the class's ``__iter__`` / ``__aiter__`` only passes ``self._iterator`` through, item
    for item (its code is that of :func:`_pass_through` / :func:`_apass_through`: the openai
    SDK's streams), the shell reads that inner iterator: the same items, exceptions and end, one
    generator layer fewer per item. An ``__iter__`` that does anything more (anthropic's calls
    an observer per item), a proxy's, or an instance without ``_iterator`` is iterated as is.
    """
    method, want = ("__aiter__", _ASYNC_RELAY) if is_async else ("__iter__", _SYNC_RELAY)
    code = getattr(getattr(type(upstream), method, None), "__code__", None)
    if code is not None and _code_key(code) == want:
        inner = getattr(upstream, "_iterator", None)
        if inner is not None:
            with contextlib.suppress(Exception):
                return inner.__aiter__() if is_async else iter(inner)
    return upstream.__aiter__() if is_async else iter(upstream)


class ByteReader:
    """Sans-IO reading of a byte body: strict UTF-8, then SSE (or plain text).

    ``sse``: ``True``/``False`` to decide, ``None`` to sniff the first bytes.
    ``max_event_bytes``: the cap on an SSE line or event (see :class:`~.reassembly.SSEParser`).
    :meth:`feed` returns the core readings and the parsed events a chunk completes. An event
    that cannot be read (its JSON nested too deep to parse, say) is still returned, and the
    problem is added to :attr:`problems` for the shell to count. :attr:`too_large` says when an
    SSE line or event passed the cap (the events before it are returned; nothing after).
    """

    __slots__ = ("_comments", "_dec", "_head", "_parser", "problems", "sse")

    def __init__(self, sse: bool | None = None, max_event_bytes: int | None = None) -> None:
        self._dec = Utf8Decoder()
        self._parser = SSEParser(max_event_bytes)
        self._comments = 0
        self._head = b""
        self.sse = sse
        #: Reassembly problems found while reading, as (kind, detail); the shell drains it.
        self.problems: list[tuple[str, str]] = []

    @property
    def too_large(self) -> str | None:
        """What passed ``max_event_bytes`` (``None`` while nothing did)."""
        return self._parser.too_large

    def feed(self, data: bytes) -> tuple[list[Reading], list[ServerSentEvent]]:
        if self.sse is None:
            self._head += data
            # Sniff once there is a line end or enough bytes to recognise a field name.
            if b"\n" not in self._head and b"\r" not in self._head and len(self._head) < 8:
                return [], []
            data, self._head = self._head, b""
            self.sse = looks_like_sse(data)
        return self._read(self._dec.decode(bytes(data)))

    def _read(self, text: str) -> tuple[list[Reading], list[ServerSentEvent]]:
        if not text:
            return [], []
        if not self.sse:
            return [Reading(CONTENT, text)], []
        events = self._parser.feed(text)
        readings = []
        for ev in events:
            try:
                readings.append(read_sse(ev.data, ev.event))
            except Exception as exc:
                # Reading an event is measurement only: an event it cannot read (JSON nested
                # past the parser's recursion limit raises RecursionError) is counted and still
                # handed on, with the events around it.
                self.problems.append(
                    (c.REASSEMBLY_JSON, f"an SSE event could not be read ({type(exc).__name__})")
                )
        if self._parser.comments != self._comments:
            self._comments = self._parser.comments
            readings.append(_KEEPALIVE)
        return readings, events

    def final(self) -> tuple[list[Reading], list[ServerSentEvent], list[tuple[str, str]]]:
        """End of body: the last readings/events and the reassembly problems found."""
        head, self._head = self._head, b""
        if head and self.sse is None:
            self.sse = looks_like_sse(head)
        text = self._dec.decode(head) if head else ""
        text += self._dec.final()
        readings, events = self._read(text)
        problems = []
        if self._dec.errors:
            problems.append((c.REASSEMBLY_UTF8, f"{self._dec.errors} invalid UTF-8 sequence(s)"))
        if self.sse and self._parser.final():
            problems.append((c.REASSEMBLY_SSE, "stream ended inside an SSE event"))
        return readings, events, problems


class _Shell:
    """What the sync and async shells share: item -> core events -> what to yield."""

    __slots__ = (
        "__weakref__",
        "_attempt_only",
        "_bytes",
        "_clock",
        "_core",
        "_delta",
        "_done",
        "_events_mode",
        "_failure",
        "_fast",
        "_fast_cls",
        "_queue",
        "_sse_hint",
        "_text_of",
        "_upstream",
    )

    def __init__(
        self,
        core: StreamCore,
        upstream: Any,
        clock: Callable[[], float],
        *,
        events_mode: bool,
        sse: bool | None,
        attempt_only: bool,
    ) -> None:
        self._core = core
        # Active mode reads each attempt through its own shell: ending it ends the attempt,
        # and the logical stream (the core) is ended by the active run.
        self._attempt_only = attempt_only
        self._upstream = upstream
        self._clock = clock
        self._done = False
        # Byte input (bytes items, or an httpx body) goes through a ByteReader; in events mode
        # the parsed events are what the consumer gets.
        self._events_mode = events_mode
        self._bytes: ByteReader | None = None
        self._queue: deque[ServerSentEvent] = deque()
        # An error that ended the stream while items were still queued: raised after them.
        self._failure: BaseException | None = None
        self._sse_hint = sse
        if events_mode:
            self._bytes = self._byte_reader()
        # The provider's fast path for items of class _fast_cls (see _learn).
        self._fast_cls: type | None = None
        self._fast: FastPath = _unlearned
        # Where its text deltas keep their fields, or how to take their text, if it says
        # (read by the per-item loops).
        self._delta: DeltaFields = _NO_DELTA
        self._text_of: DeltaText | None = None

    @property
    def core(self) -> StreamCore:
        """The stream's core (checkpoint, counters); read-only use."""
        return self._core

    @property
    def checkpoint(self) -> Any:
        """The last :class:`~steadystream.Checkpoint` (``None`` before any content)."""
        return self._core.checkpoint

    def _learn(self, item: Any) -> FastPath:
        """Ask the provider layer for the fast path of ``type(item)``; kept while the items'
        class stays the same (nearly every item of a stream is of one class)."""
        self._fast_cls = type(item)
        fast = self._fast = fast_path(item)
        self._delta = delta_fields(fast) or _NO_DELTA
        self._text_of = delta_text(fast)
        return fast

    def _feed(self, item: Any, t: float) -> Any:
        """Hand one (non-byte) item to the core: the fast path, else the general reading."""
        fast = self._fast if type(item) is self._fast_cls else self._learn(item)
        exp = fast(self._core, item, t)
        if exp is MISS:
            exp = self._core.on_reading(read_item(item), t)
        return exp

    def _item(self, item: Any) -> Any:
        """An upstream item arrived: returns what to yield (or _SKIP); raises a timeout."""
        t = self._clock()
        cls = type(item)
        if not self._events_mode and cls is not bytes and cls is not bytearray:
            # The per-chunk path: one core call; the item itself is handed on.
            try:
                exp = self._feed(item, t)
            except Exception as exc:
                self._unreadable(exc)
                return item
            if exp is not None:
                raise exp
            return item
        try:
            exp = self._byte_item(item, t)
        except Exception:
            report_telemetry_error("StreamCore", "on_item")
            exp = None
        if exp is not None:
            raise exp
        self._check_size(t)
        if self._events_mode:
            return self._queue.popleft() if self._queue else _SKIP
        return item

    def _unreadable(self, exc: Exception) -> None:
        """Reading an item to measure it failed; the item is handed on all the same. An item
        too deeply nested to read (an SSE event whose JSON passes the recursion limit) is a
        reassembly problem of the input, counted; anything else is a telemetry failure."""
        if isinstance(exc, RecursionError):
            try:
                self._core.record_reassembly_error(
                    c.REASSEMBLY_JSON, "an item could not be read (RecursionError)"
                )
            except Exception:
                report_telemetry_error("StreamCore", "record_reassembly_error")
        else:
            report_telemetry_error("StreamCore", "on_item")

    def _byte_item(self, data: Any, t: float) -> Any:
        reader = self._bytes
        if reader is None:
            reader = self._bytes = self._byte_reader()
        readings, events = reader.feed(data)
        if self._events_mode:
            # First: whatever measuring them does, the events are delivered.
            self._queue.extend(events)
        if reader.problems:
            for kind, detail in reader.problems:
                self._core.record_reassembly_error(kind, detail)
            reader.problems.clear()
        exp = self._readings(readings, t)
        if not readings:
            # Bytes that completed nothing (a split frame) are still proof of life.
            exp = exp or self._core.on_reading(_KEEPALIVE, t)
        return exp

    def _byte_reader(self) -> ByteReader:
        return ByteReader(self._sse_hint, self._core.policy.max_event_bytes)

    def _check_size(self, t: float) -> None:
        """After a byte item: when an SSE line or event passed the cap, end the stream with
        :class:`~steadystream.EventTooLarge`, raised once the events before it are taken."""
        reader = self._bytes
        if reader is None or self._done:
            return
        detail = reader.too_large
        if detail is None:
            return
        err = EventTooLarge(detail, checkpoint=self._core.current_checkpoint())
        try:
            self._core.record_reassembly_error(c.REASSEMBLY_SSE, detail)
        except Exception:
            report_telemetry_error("StreamCore", "record_reassembly_error")
        self._end(t, error=err)
        self._failure = err

    def _take_failure(self) -> BaseException | None:
        """The error that ended the stream while it still had items to hand over (once)."""
        err, self._failure = self._failure, None
        return err

    def _readings(self, readings: list[Reading], t: float) -> Any:
        core = self._core
        for r in readings:
            exp = core.on_reading(r, t)
            if exp is not None:
                return exp
        return None

    def _exhausted(self) -> Any:
        """The upstream ended. Returns a queued final event to yield, or _SKIP after ending the
        stream; raises the timeout when the end was caused by the watchdog."""
        t = self._clock()
        exp = self._core.expired
        if exp is not None:
            self._end(t, error=exp)
            raise exp
        if self._bytes is not None:
            try:
                readings, events, problems = self._bytes.final()
                self._readings(readings, t)
                for kind, detail in problems:
                    self._core.record_reassembly_error(kind, detail)
                if self._events_mode:
                    self._queue.extend(events)
            except Exception:
                report_telemetry_error("ByteReader", "final")
            self._bytes = None
        self._end(t)
        return self._queue.popleft() if self._queue else _SKIP

    def _failed(self, exc: BaseException) -> BaseException:
        """The upstream raised: end the stream; returns the exception to raise."""
        t = self._clock()
        exp = self._core.expired
        if exp is not None:
            # The watchdog interrupted the read; the interruption is not the story, the
            # timeout is.
            self._end(t, error=exp)
            return exp
        try:
            self._core.on_error(exc, t)
        except Exception:
            report_telemetry_error("StreamCore", "on_error")
        self._end(t, error=exc)
        return exc

    def _end(
        self, t: float, *, error: BaseException | None = None, abandoned: bool = False
    ) -> None:
        if self._done:
            return
        self._done = True
        self._unwatch()
        if self._attempt_only:
            return
        try:
            self._core.close(t, error=error, abandoned=abandoned)
        except Exception:
            report_telemetry_error("StreamCore", "close")

    def _unwatch(self) -> None:
        """The stream ended: drop its pending deadline look (the sync shell has one)."""

    @property
    def finished(self) -> bool:
        """True once the stream (or, in active mode, the attempt) ended."""
        return self._done

    def watchdog_check(self, now: float) -> float | None:
        """Watchdog callback (another thread): expire and interrupt, or say when to look again."""
        if self._done:
            return None
        core = self._core
        deadline = core.next_deadline()
        if core.waiting:
            if now >= deadline and core.deadline_passed(now) is not None:
                interrupt_upstream(self._upstream)
                self._armed_at = _INF
                return None
            # Not passed, or excused by this process's own lag (the deadline moved out).
            again = core.next_deadline()
        else:
            # The consumer holds an item: the next deadline is not known until it asks again,
            # but it cannot come before earliest_deadline(now) unless the attempt's first
            # content moves it from first-token to idle (the reader re-arms then). A budget
            # already spent (the consumer held a lifecycle event past the first-token
            # deadline) is re-checked every 50 ms.
            again = max(core.earliest_deadline(now), now + 0.05)
            # The budget may be spent already (then the look above is 50 ms late): the reader
            # compares its next wait's deadline with this look, and re-arms when earlier.
            core.rearm = True
        # Mirror the pending look, so the reading thread re-arms whenever its next deadline
        # comes earlier (a race only ever makes this too late, causing a redundant watch()).
        self._armed_at = again
        return again


class SyncStreamWrapper(_Shell, Generic[T]):
    """A measured, time-limited view of a sync iterable (returned by ``monitor.wrap``)."""

    __slots__ = ("_armed_at", "_it", "_plain", "_watchdog")

    def __init__(
        self,
        core: StreamCore,
        upstream: Any,
        clock: Callable[[], float],
        *,
        watchdog: Watchdog | None,
        events_mode: bool = False,
        sse: bool | None = None,
        attempt_only: bool = False,
    ) -> None:
        super().__init__(
            core, upstream, clock, events_mode=events_mode, sse=sse, attempt_only=attempt_only
        )
        self._it: Iterator[Any] = (
            iter(upstream.iter_bytes()) if events_mode else upstream_items(upstream, is_async=False)
        )
        self._watchdog = watchdog
        # When the watchdog will look at this stream next (inf: not armed).
        self._armed_at = _INF
        self._plain = not events_mode

    def __iter__(self) -> Iterator[T]:
        # A for loop over plain items gets a generator over the same state (about a third of
        # the cost of a __next__ call per item); next() on the wrapper works as well, and
        # both can be mixed: every item goes through the same core and upstream iterator.
        if self._plain and not self._done:
            return self._items()
        return self

    def _items(self) -> Iterator[T]:
        """The per-item loop of ``for item in wrapper`` (plain items). Leaving the loop early
        (``break``) closes this generator but not the stream: the wrapper stays readable, and
        ends as abandoned when closed or collected, as with ``next()``."""
        core = self._core
        clock = self._clock
        watchdog = self._watchdog
        # The fast path learnt for the items' class (re-read after the general path learns).
        fast_cls = self._fast_cls
        fast = self._fast
        # Where the class's text deltas keep their fields (type_value empty: not said), or
        # how to take their text.
        type_key, type_value, text_key, seq_key = self._delta
        text_of = self._text_of
        exp: Any = None
        try:
            self._before_wait()
            for item in self._it:
                t = clock()
                if type(item) is fast_cls:
                    try:
                        text = None
                        if type_value:
                            try:
                                fields = item.__dict__
                                if fields[type_key] == type_value:
                                    text = fields[text_key]
                                    seq = fields[seq_key]
                            except (AttributeError, KeyError):
                                text = None  # a field missing: the fast path decides
                        elif text_of is not None:
                            text = text_of(core, item)
                            seq = None
                        if (
                            type(text) is str
                            and text
                            and t < core._horizon
                            and core._waiting
                            and core._chain_t is not None
                            and not core._special
                        ):
                            # StreamCore.on_content's steady case, inlined (see there).
                            core._waiting = False
                            core._ph_wait += t - core._t_wait
                            core._last_return_t = t
                            if seq is not None:
                                core.sequence_number = seq
                            core._pending.append(text)
                            core._gaps.append((t - core._last_content_t) * 1000.0)
                            core._last_content_t = t
                            n = core.chunks = core.chunks + 1
                            if n >= core._next_mark:
                                core._mark(t)
                        else:
                            exp = fast(core, item, t)
                            if exp is not None and exp is MISS:
                                exp = core.on_reading(read_item(item), t)
                    except Exception as exc:
                        self._unreadable(exc)
                        exp = None
                    if exp is not None:
                        break
                    yield item
                else:
                    try:
                        out = self._item(item)
                    except BaseException as err:  # a timeout decided by the core
                        exp = err
                        break
                    fast_cls = self._fast_cls
                    fast = self._fast
                    type_key, type_value, text_key, seq_key = self._delta
                    text_of = self._text_of
                    yield out
                if self._done:
                    # Closed by the consumer, or ended by an oversized event (raised now).
                    exp = self._take_failure()
                    if exp is None:
                        return
                    break
                # _before_wait(), inlined (a call here is a tenth of the per-item cost), and
                # core.on_wait() with it: its two stores, in its order.
                core._t_wait = clock()
                core._waiting = True
                if core.rearm and watchdog is not None:
                    self._arm()
            else:
                exp = _SKIP  # exhausted
        except GeneratorExit:
            raise
        except BaseException as exc:
            # The upstream raised (our own failures are caught above and below).
            err = self._failed(exc)
            self._close_upstream()
            if err is exc:
                raise
            raise err from exc
        self._close_upstream()
        if exp is _SKIP:
            self._exhausted()  # plain items: nothing queued to hand over
            return
        self._end(clock(), error=exp)
        raise exp

    def _before_wait(self) -> None:
        try:
            self._core.on_wait(self._clock())
        except Exception:
            report_telemetry_error("StreamCore", "on_wait")
        if self._core.rearm and self._watchdog is not None:
            self._arm()

    def __next__(self) -> T:
        while True:
            if self._queue:
                return self._queue.popleft()  # type: ignore[return-value]
            if self._done:
                failure = self._take_failure()
                if failure is not None:
                    self._close_upstream()
                    raise failure
                raise StopIteration
            self._before_wait()
            try:
                item = next(self._it)
            except StopIteration:
                self._close_upstream()
                out = self._exhausted()
                if out is _SKIP:
                    raise StopIteration from None
                return out  # type: ignore[no-any-return]
            except BaseException as exc:
                err = self._failed(exc)
                self._close_upstream()
                if err is exc:
                    raise
                raise err from exc
            cls = type(item)
            if self._plain and cls is not bytes and cls is not bytearray:
                # The per-chunk path, inlined from _item(): the format's fast path (one core
                # call), the item handed on.
                try:
                    if cls is self._fast_cls:
                        exp = self._fast(self._core, item, self._clock())
                    else:
                        exp = self._learn(item)(self._core, item, self._clock())
                    if exp is None:
                        return item  # type: ignore[no-any-return]
                    if exp is MISS:
                        exp = self._core.on_reading(read_item(item), self._clock())
                except Exception as exc:
                    self._unreadable(exc)
                    return item  # type: ignore[no-any-return]
                if exp is None:
                    return item  # type: ignore[no-any-return]
                self._end(self._clock(), error=exp)
                self._close_upstream()
                raise exp
            try:
                out = self._item(item)
            except BaseException as exc:  # a timeout decided by the core
                self._end(self._clock(), error=exc)
                self._close_upstream()
                raise
            if out is not _SKIP:
                return out  # type: ignore[no-any-return]

    def _unwatch(self) -> None:
        if self._armed_at < _INF and self._watchdog is not None:
            self._armed_at = _INF
            self._watchdog.unwatch(self)

    def _arm(self) -> None:
        # Arm (or re-arm earlier: the first content of an attempt can bring the deadline
        # forward from first-token to idle) at the current wait's deadline.
        self._core.rearm = False
        deadline = self._core.next_deadline()
        if deadline < self._armed_at and self._watchdog is not None:
            self._armed_at = deadline
            self._watchdog.watch(self, deadline)

    def _close_upstream(self) -> None:
        close = getattr(self._upstream, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                report_telemetry_error(type(self._upstream).__name__, "close")

    def close(self) -> None:
        """Stop early: the stream ends as ``abandoned`` and the upstream is closed."""
        if not self._done:
            self._end(self._clock(), abandoned=True)
        self._queue.clear()
        self._failure = None
        self._close_upstream()

    def __enter__(self) -> SyncStreamWrapper[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # Also when the stream ended on an error still waiting behind queued events: the
        # upstream was not closed yet.
        if not self._done or self._failure is not None:
            with contextlib.suppress(Exception):
                self.close()


# Upstream closes scheduled by garbage-collected async wrappers (kept alive until done).
_CLOSING: set[asyncio.Task[None]] = set()


def _fire_timer(ref: weakref.ref[AsyncStreamWrapper[Any]]) -> None:
    wrapper = ref()
    if wrapper is not None:
        wrapper._on_timer()


class AsyncStreamWrapper(_Shell, Generic[T]):
    """A measured, time-limited view of an async iterable (returned by ``monitor.wrap``).

    Deadlines use one loop timer per stream, re-armed lazily: when it fires while the task is
    still waiting on the upstream past the core's deadline, the task is cancelled and the
    cancellation turned into the timeout (the mechanism of ``asyncio.timeout``, without arming
    and disarming a timer around every ``__anext__``). ``async for`` does not note its task per
    item: the task that waits is found when a deadline passes (:func:`.watchdog.driving_task`).
    """

    __slots__ = ("_agens", "_ait", "_fired", "_hint", "_plain", "_task", "_timer", "_timer_at")

    def __init__(
        self,
        core: StreamCore,
        upstream: Any,
        clock: Callable[[], float],
        *,
        events_mode: bool = False,
        sse: bool | None = None,
        attempt_only: bool = False,
    ) -> None:
        super().__init__(
            core, upstream, clock, events_mode=events_mode, sse=sse, attempt_only=attempt_only
        )
        self._ait: AsyncIterator[Any] = (
            upstream.aiter_bytes() if events_mode else upstream_items(upstream, is_async=True)
        )
        self._timer: asyncio.TimerHandle | None = None
        # When the timer fires (inf: no timer).
        self._timer_at = _INF
        # The task waiting in __anext__ (None outside it, and in ``async for``).
        self._task: asyncio.Task[Any] | None = None
        # The generators of ``async for`` loops over this stream (weakly; usually one), and the
        # task last seen driving one.
        self._agens: list[weakref.ref[Any]] = []
        self._hint: weakref.ref[asyncio.Task[Any]] | None = None
        # The task our own timer cancelled (its CancelledError is the timeout).
        self._fired: asyncio.Task[Any] | None = None
        # Items are objects handed on as they are (not bytes parsed into events).
        self._plain = not events_mode

    def __aiter__(self) -> AsyncIterator[T]:
        # An async for loop over plain items gets an async generator over the same state
        # (cheaper per item than an __anext__ coroutine); __anext__ on the wrapper works as
        # well, and both can be mixed.
        if self._plain and not self._done:
            agen = self._aitems()
            if self._agens:  # rare: another iterator over the same stream
                self._agens = [ref for ref in self._agens if ref() is not None]
            self._agens.append(weakref.ref(agen))
            return agen
        return self

    async def _aitems(self) -> AsyncIterator[T]:
        """The per-item loop of ``async for item in wrapper`` (plain items). Leaving the loop
        early closes this generator but not the stream (see ``SyncStreamWrapper._items``)."""
        core = self._core
        clock = self._clock
        # Where a timeout looks first for the task waiting (it is not noted per item).
        task = asyncio.current_task()
        self._hint = None if task is None else weakref.ref(task)
        upstream_next = self._ait.__anext__
        fast_cls = self._fast_cls
        fast = self._fast
        type_key, type_value, text_key, seq_key = self._delta  # see SyncStreamWrapper._items
        text_of = self._text_of
        exp: Any = None
        while True:
            if self._done:
                failure = self._take_failure()
                if failure is not None:
                    self._cancel_timer()
                    await self._close_upstream()
                    raise failure
                return
            # core.on_wait(), inlined: its two stores, in its order.
            core._t_wait = clock()
            core._waiting = True
            if core.rearm:
                self._rearm()
            try:
                item = await upstream_next()
            except StopAsyncIteration:
                await self._close_upstream()
                self._exhausted()  # plain items: nothing queued to hand over
                return
            except BaseException as exc:
                err = await self._wait_raised(exc)
                if err is exc:
                    raise
                raise err from (None if isinstance(exc, asyncio.CancelledError) else exc)
            t = clock()
            if type(item) is fast_cls:
                try:
                    text = None
                    if type_value:
                        try:
                            fields = item.__dict__
                            if fields[type_key] == type_value:
                                text = fields[text_key]
                                seq = fields[seq_key]
                        except (AttributeError, KeyError):
                            text = None  # a field missing: the fast path decides
                    elif text_of is not None:
                        text = text_of(core, item)
                        seq = None
                    if (
                        type(text) is str
                        and text
                        and t < core._horizon
                        and core._waiting
                        and core._chain_t is not None
                        and not core._special
                    ):
                        # SyncStreamWrapper._items's steady case, twinned.
                        core._waiting = False
                        core._ph_wait += t - core._t_wait
                        core._last_return_t = t
                        if seq is not None:
                            core.sequence_number = seq
                        core._pending.append(text)
                        core._gaps.append((t - core._last_content_t) * 1000.0)
                        core._last_content_t = t
                        n = core.chunks = core.chunks + 1
                        if n >= core._next_mark:
                            core._mark(t)
                    else:
                        exp = fast(core, item, t)
                        if exp is not None and exp is MISS:
                            exp = core.on_reading(read_item(item), t)
                except Exception as exc:
                    self._unreadable(exc)
                    exp = None
                if exp is not None:
                    self._end(clock(), error=exp)
                    self._cancel_timer()
                    await self._close_upstream()
                    raise exp
                yield item
            else:
                try:
                    out = self._item(item)
                except BaseException as err:  # a timeout decided by the core
                    self._end(clock(), error=err)
                    self._cancel_timer()
                    await self._close_upstream()
                    raise
                fast_cls = self._fast_cls
                fast = self._fast
                type_key, type_value, text_key, seq_key = self._delta
                text_of = self._text_of
                if out is not _SKIP:
                    yield out

    async def __anext__(self) -> T:
        while True:
            if self._queue:
                return self._queue.popleft()  # type: ignore[return-value]
            if self._done:
                failure = self._take_failure()
                if failure is not None:
                    self._cancel_timer()
                    await self._close_upstream()
                    raise failure
                raise StopAsyncIteration
            try:
                self._core.on_wait(self._clock())
            except Exception:
                report_telemetry_error("StreamCore", "on_wait")
            self._task = asyncio.current_task()
            if self._core.rearm:
                self._rearm()
            try:
                item = await self._ait.__anext__()
            except StopAsyncIteration:
                self._task = None
                await self._close_upstream()
                out = self._exhausted()
                if out is _SKIP:
                    raise StopAsyncIteration from None
                return out  # type: ignore[no-any-return]
            except BaseException as exc:
                err = await self._wait_raised(exc)
                if err is exc:
                    raise
                raise err from (None if isinstance(exc, asyncio.CancelledError) else exc)
            self._task = None
            cls = type(item)
            if self._plain and cls is not bytes and cls is not bytearray:
                # The per-chunk path, inlined from _item() as in the sync shell.
                try:
                    if cls is self._fast_cls:
                        exp = self._fast(self._core, item, self._clock())
                    else:
                        exp = self._learn(item)(self._core, item, self._clock())
                    if exp is None:
                        return item  # type: ignore[no-any-return]
                    if exp is MISS:
                        exp = self._core.on_reading(read_item(item), self._clock())
                except Exception as exc:
                    self._unreadable(exc)
                    return item  # type: ignore[no-any-return]
                if exp is None:
                    return item  # type: ignore[no-any-return]
                self._end(self._clock(), error=exp)
                self._cancel_timer()
                await self._close_upstream()
                raise exp
            try:
                out = self._item(item)
            except BaseException as exc:
                self._end(self._clock(), error=exc)
                self._cancel_timer()
                await self._close_upstream()
                raise
            if out is not _SKIP:
                return out  # type: ignore[no-any-return]

    def _rearm(self) -> None:
        # No timer yet, or the deadline may have come forward (first content: first-token ->
        # idle); a later deadline is handled by the timer re-arming itself.
        self._core.rearm = False
        if self._core.next_deadline() < self._timer_at:
            self._cancel_timer()
            self._arm()

    async def _wait_raised(self, exc: BaseException) -> Any:
        """The wait on the upstream raised ``exc`` (not StopAsyncIteration): end the stream;
        returns what to raise (``exc``, or the timeout it stands for)."""
        self._task = None
        fired, self._fired = self._fired, None
        if isinstance(exc, asyncio.CancelledError):
            # Still in the task that waited: was it our own timer that cancelled it?
            if fired is not None and fired is asyncio.current_task() and fired.uncancel() == 0:
                err = self._failed(exc)  # a timeout
                await self._close_upstream()
                return err
            # Cancelled from outside: the consumer gave up.
            self._end(self._clock(), abandoned=True)
            self._cancel_timer()
            await self._close_upstream()
            return exc
        err = self._failed(exc)
        self._cancel_timer()
        await self._close_upstream()
        return err

    def _arm(self) -> None:
        deadline = self._core.next_deadline()
        if deadline < _INF:
            loop = asyncio.get_running_loop()
            # A weak reference, so a pending timer does not keep an abandoned wrapper alive.
            self._timer = loop.call_later(
                max(0.0, deadline - self._clock()), _fire_timer, weakref.ref(self)
            )
            self._timer_at = deadline

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = _INF
        if self._done:
            return
        core = self._core
        if not core.waiting:
            core.rearm = True  # re-armed by the next __anext__
            return
        now = self._clock()
        deadline = core.next_deadline()
        if now >= deadline and core.deadline_passed(now) is not None:
            task = self._task if self._task is not None else self._waiting_task()
            if task is not None and not task.done():
                self._fired = task
                task.cancel()
        else:
            self._arm()

    def _waiting_task(self) -> asyncio.Task[Any] | None:
        """The task an ``async for`` over this stream waits in now (None if none is found)."""
        # The generator running now: only one can be waiting on the upstream (another one
        # may have been made and never run, or left by a ``break``).
        agen = next((a for ref in self._agens if (a := ref()) is not None and a.ag_running), None)
        if agen is None:
            return None
        hint = self._hint() if self._hint is not None else None
        task = driving_task(agen, hint, asyncio.get_running_loop())
        if task is not None and task is not hint:
            self._hint = weakref.ref(task)
        return task

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = _INF

    async def _close_upstream(self) -> None:
        up = self._upstream
        close = getattr(up, "aclose", None)
        if close is None:
            close = getattr(up, "close", None)
        if not callable(close):
            return
        try:
            result = close()
            if inspect.isawaitable(result):
                await result
        except Exception:
            report_telemetry_error(type(up).__name__, "aclose")

    async def aclose(self) -> None:
        """Stop early: the stream ends as ``abandoned`` and the upstream is closed."""
        if not self._done:
            self._end(self._clock(), abandoned=True)
        self._queue.clear()
        self._failure = None
        self._cancel_timer()
        await self._close_upstream()

    async def __aenter__(self) -> AsyncStreamWrapper[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # No awaiting here: record the abandonment now, and close the upstream in a task when
        # collected on the loop's thread (elsewhere the upstream's own finaliser must do it).
        # Also when the stream ended on an error still waiting behind queued events.
        if self._done and self._failure is None:
            return
        with contextlib.suppress(Exception):
            self._end(self._clock(), abandoned=True)
            if self._timer is not None:
                self._timer.cancel()
            loop = asyncio.get_running_loop()
            task = loop.create_task(self._close_upstream())
            _CLOSING.add(task)
            task.add_done_callback(_CLOSING.discard)


class EitherStreamWrapper(Generic[T]):
    """What ``monitor.wrap`` returns for a stream iterable both ways whose kind it cannot
    tell (another instrumentation's wrapper that defines ``__iter__`` and ``__aiter__`` over a
    stream it does not expose): the sync or the async wrapper is made on first use, from how
    the caller iterates (``for`` / ``with``, or ``async for`` / ``async with``)."""

    __slots__ = ("_clock", "_core", "_make_async", "_make_sync", "_shell")

    def __init__(
        self,
        core: StreamCore,
        clock: Callable[[], float],
        make_sync: Callable[[], SyncStreamWrapper[T]],
        make_async: Callable[[], AsyncStreamWrapper[T]],
    ) -> None:
        self._core = core
        self._clock = clock
        self._make_sync = make_sync
        self._make_async = make_async
        self._shell: SyncStreamWrapper[T] | AsyncStreamWrapper[T] | None = None

    def _sync(self) -> SyncStreamWrapper[T]:
        if self._shell is None:
            self._shell = self._make_sync()
        if not isinstance(self._shell, SyncStreamWrapper):
            raise TypeError("this stream is already read with async for")
        return self._shell

    def _async(self) -> AsyncStreamWrapper[T]:
        if self._shell is None:
            self._shell = self._make_async()
        if not isinstance(self._shell, AsyncStreamWrapper):
            raise TypeError("this stream is already read with a for loop")
        return self._shell

    @property
    def core(self) -> StreamCore:
        return self._core

    @property
    def checkpoint(self) -> Any:
        """The last :class:`~steadystream.Checkpoint` (``None`` before any content)."""
        return self._core.checkpoint

    @property
    def finished(self) -> bool:
        return self._shell.finished if self._shell is not None else self._core.closed

    def __iter__(self) -> Iterator[T]:
        return iter(self._sync())

    def __next__(self) -> T:
        return next(self._sync())

    def __enter__(self) -> SyncStreamWrapper[T]:
        return self._sync()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop early: the stream ends as ``abandoned`` (and a sync upstream is closed)."""
        if self._shell is None:
            self._abandon()
        elif isinstance(self._shell, SyncStreamWrapper):
            self._shell.close()

    def __aiter__(self) -> AsyncIterator[T]:
        return self._async().__aiter__()

    async def __anext__(self) -> T:
        return await self._async().__anext__()

    async def __aenter__(self) -> AsyncStreamWrapper[T]:
        return self._async()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop early: the stream ends as ``abandoned`` and the upstream is closed."""
        if self._shell is None:
            self._abandon()
        elif isinstance(self._shell, AsyncStreamWrapper):
            await self._shell.aclose()

    def _abandon(self) -> None:
        # Never read: end the stream without touching an upstream of unknown kind.
        if not self._core.closed:
            try:
                self._core.close(self._clock(), abandoned=True)
            except Exception:
                report_telemetry_error("StreamCore", "close")

    def __del__(self) -> None:
        if self._shell is None:
            with contextlib.suppress(Exception):
                self._abandon()
