"""Relay mode: a bounded per-stream buffer between the upstream and a slow consumer.

A server that forwards an LLM stream to its own clients (browsers, mobile apps) reads the
upstream as fast as it produces and writes to a client that may be on a bad network, or gone.
Without a cap, every stuck client pins the whole response in memory: the slow-consumer failure
class. :func:`relay` puts a reader task in front of the consumer. The reader fills a buffer; the
consumer drains it. The buffer is measured in bytes (see :func:`default_sizeof`), and when it
goes past ``spec.stream.flow_control.max_buffer`` the configured policy applies:

``pause``
    Stop reading the upstream until the consumer has drained the buffer to half the cap. The
    unread bytes stay in the kernel's socket buffers, and TCP flow control slows the sender.
``drop``
    Drop the increments a predicate marks low-value (by default keep-alives and progress
    events, never content, never a lifecycle or terminal event) and coalesce adjacent text
    deltas into one event. If that is not enough, because the backlog is all content, the reader
    pauses as above: content is never dropped.
``terminate``
    End the stream with the retryable :class:`~steadystream.ClientTooSlow`. Its ``checkpoint``
    is what the consumer actually received, so the client can resume exactly there. The reader
    stops and the buffer is freed at once.

Each breach (an item that does not fit under the cap; it ends when the consumer has drained the
buffer to half the cap) counts once in ``stream_abort_client_slow_total`` and adds a
``backpressure`` span event. ``stream_bytes_total`` counts the content bytes the consumer took
from the buffer (not those the reader read): a backlog freed by ``terminate``, or left behind by
a consumer that went away, was never delivered. The reader checks the
cap after every item, so the buffer never holds more than the cap plus one item.

The policy lives in :class:`RelayBuffer`, which is pure (no event loop, no clock) and unit-tested
on its own. The async shell in :func:`relay` is a reader task and two events. Usage, in a
Starlette handler (:mod:`steadystream.instrumentation.sse` frames it as SSE; see
``examples/relay_app.py``)::

    async def chat(request):
        events = monitor.relay(lambda cp: aclient.responses.create(...), model="gpt-4.1")
        return sse_response(request, monitor, start=lambda: events)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from ..core.checkpoint import Checkpoint, ContentHasher
from ..errors import ClientTooSlow
from ..providers import registry as wire
from ..providers.base import CONTENT, KEEPALIVE, LIFECYCLE, Reading
from ..sinks.telemetry import report_telemetry_error

if TYPE_CHECKING:
    from ..core.machine import StreamCore
    from ..monitor import StreamMonitor

__all__ = [
    "ITEM_OVERHEAD",
    "Offer",
    "Relay",
    "RelayBuffer",
    "default_low_value",
    "default_sizeof",
    "iterate",
    "relay",
]

Policy = Literal["pause", "drop", "terminate"]

#: Bytes counted per buffered event on top of its content: roughly the JSON framing of one
#: Responses API delta on the wire. Keeps a flood of empty events from being "free".
ITEM_OVERHEAD: Final = 128
# Delivered bytes reach stream_bytes_total after this many items taken (and at the end).
_REPORT_EVERY: Final = 64


def default_sizeof(item: Any, reading: Reading) -> int:
    """Bytes an item holds in the buffer: ``bytes`` and ``str`` by their (UTF-8) length, events
    by their content plus :data:`ITEM_OVERHEAD`."""
    if isinstance(item, bytes | bytearray | memoryview):
        return len(item)
    if isinstance(item, str):
        return len(item.encode("utf-8", "surrogatepass"))
    text = reading.text
    return ITEM_OVERHEAD + (len(text.encode("utf-8", "surrogatepass")) if text else 0)


def default_low_value(item: Any, reading: Reading) -> bool:
    """Keep-alives and the progress events the wire format names (the Responses API's
    ``in_progress``, ``searching``, ...): safe to drop for a slow consumer. Never content, never
    any other lifecycle, terminal or error event."""
    if reading.kind == KEEPALIVE:
        # An empty text delta or an SSE comment; ``b""`` is not an item anyone sends.
        return True
    return reading.kind == LIFECYCLE and wire.is_progress(item)


@dataclass(frozen=True, slots=True)
class Offer:
    """What the reader must do after offering one item.

    ``pause``: wait until the consumer drained the buffer before reading on. ``terminate``: stop
    reading; the stream ends with ClientTooSlow. ``breach``: this item took the buffer over the
    cap (count it). ``dropped_bytes``: bytes of low-value increments dropped by this offer.
    """

    pause: bool = False
    terminate: bool = False
    breach: bool = False
    dropped_bytes: int = 0
    dropped_items: int = 0


_OK: Final = Offer()


class _Entry:
    __slots__ = ("item", "reading", "size")

    def __init__(self, item: Any, reading: Reading, size: int) -> None:
        self.item = item
        self.reading = reading
        self.size = size


class RelayBuffer:
    """The bounded buffer of one relayed stream, and its overflow policy (sans-IO).

    The reader calls :meth:`offer` for each upstream item and obeys the returned :class:`Offer`;
    the consumer calls :meth:`take`. :attr:`buffered` is the current size in bytes,
    :attr:`peak` the largest it has been. Invariant: ``peak <= cap + largest item``.

    The consumer side also keeps the exact :meth:`checkpoint` of what it has taken (content
    offset, sha256, chunks, last sequence number, response id), which ``terminate`` attaches to
    :class:`~steadystream.ClientTooSlow`.
    """

    def __init__(
        self,
        cap: int,
        policy: Policy,
        *,
        low_value: Callable[[Any, Reading], bool] = default_low_value,
        sizeof: Callable[[Any, Reading], int] = default_sizeof,
    ) -> None:
        if cap < 1:
            raise ValueError("cap must be at least one byte")
        if policy not in ("pause", "drop", "terminate"):
            raise ValueError(f"unknown overflow policy {policy!r}: use pause, drop or terminate")
        self.cap = cap
        self.policy: Policy = policy
        self._low_value = low_value
        self._sizeof = sizeof
        self._queue: collections.deque[_Entry] = collections.deque()
        self.buffered = 0
        self.peak = 0
        self.breaches = 0
        self.dropped_items = 0
        self.dropped_bytes = 0
        self.terminated = False
        self._over = False
        # What the consumer has received, for ClientTooSlow's checkpoint.
        self._hasher = ContentHasher()
        self._chunks = 0
        self._sequence_number: int | None = None
        self._response_id: str | None = None

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def low_water(self) -> int:
        """A paused reader resumes when the buffer has drained to this many bytes."""
        return self.cap // 2

    @property
    def over(self) -> bool:
        """True from a breach until the consumer has drained the buffer to :attr:`low_water`."""
        return self._over

    def offer(self, item: Any, reading: Reading | None = None) -> Offer:
        """Add one upstream item (the reader calls this). See :class:`Offer`."""
        if self.terminated:
            return Offer(terminate=True)
        if reading is None:
            reading = wire.read_item(item)
        size = self._sizeof(item, reading)
        if self.buffered + size <= self.cap or not self._queue:
            # An item larger than the cap, offered to an empty buffer, is no sign of a slow
            # consumer: it is the "one item" the bound allows above the cap.
            self._append(_Entry(item, reading, size))
            return _OK
        if self.policy == "terminate":
            breach = self._start_breach()
            self.terminated = True
            self._queue.clear()
            self.buffered = 0
            return Offer(terminate=True, breach=breach)
        dropped_items = dropped_bytes = 0
        if self.policy == "drop":
            if self._low_value(item, reading):
                dropped_items, dropped_bytes = 1, size
                self._account_drop(1, size)
                # Dropping it keeps the buffer where it was: not a new breach by itself.
                return Offer(
                    pause=self.buffered > self.cap,
                    dropped_bytes=dropped_bytes,
                    dropped_items=dropped_items,
                )
            freed_items, freed_bytes = self._shed()
            dropped_items += freed_items
            dropped_bytes += freed_bytes
            # The item did not fit: that is a breach even if shedding makes room for it.
            breach = self._start_breach()
            if not self._coalesce_into_tail(item, reading):
                self._append(_Entry(item, reading, size))
            return Offer(
                pause=self.buffered > self.cap,
                breach=breach,
                dropped_bytes=dropped_bytes,
                dropped_items=dropped_items,
            )
        self._append(_Entry(item, reading, size))
        return Offer(pause=True, breach=self._start_breach())

    def _start_breach(self) -> bool:
        """Mark the buffer as over the cap; True when this starts a new breach."""
        if self._over:
            return False
        self._over = True
        self.breaches += 1
        return True

    def _append(self, entry: _Entry) -> None:
        self._queue.append(entry)
        self.buffered += entry.size
        if self.buffered > self.peak:
            self.peak = self.buffered

    def _account_drop(self, items: int, nbytes: int) -> None:
        self.dropped_items += items
        self.dropped_bytes += nbytes

    def _shed(self) -> tuple[int, int]:
        """Drop buffered low-value items and merge adjacent text deltas in place."""
        kept: collections.deque[_Entry] = collections.deque()
        items = nbytes = 0
        for entry in self._queue:
            if self._low_value(entry.item, entry.reading):
                items += 1
                nbytes += entry.size
                continue
            if kept and _can_merge(kept[-1], entry):
                kept[-1] = self._merge(kept[-1], entry)
                continue
            kept.append(entry)
        self._queue = kept
        self.buffered = sum(entry.size for entry in kept)
        self._account_drop(items, nbytes)
        return items, nbytes

    def _coalesce_into_tail(self, item: Any, reading: Reading) -> bool:
        if not self._queue:
            return False
        entry = _Entry(item, reading, self._sizeof(item, reading))
        tail = self._queue[-1]
        if not _can_merge(tail, entry):
            return False
        merged = self._merge(tail, entry)
        self._queue[-1] = merged
        self.buffered += merged.size - tail.size
        if self.buffered > self.peak:
            self.peak = self.buffered
        return True

    def _merge(self, first: _Entry, second: _Entry) -> _Entry:
        text = first.reading.text + second.reading.text
        item = wire.with_text(second.item, text)
        reading = Reading(CONTENT, text, second.reading.sequence_number, second.reading.response_id)
        return _Entry(item, reading, self._sizeof(item, reading))

    def take(self) -> Any:
        """Remove and return the oldest item (the consumer calls this); IndexError if empty."""
        entry = self._queue.popleft()
        self.buffered -= entry.size
        if self._over and self.buffered <= self.low_water:
            self._over = False  # the breach is over once a paused reader may read again
        r = entry.reading
        if r.kind == CONTENT:
            self._hasher.update_text(r.text)
            self._chunks += 1
        if r.sequence_number is not None:
            self._sequence_number = r.sequence_number
        if r.response_id is not None:
            self._response_id = r.response_id
        return entry.item

    def checkpoint(self) -> Checkpoint:
        """Exactly what the consumer has taken so far."""
        return self._hasher.snapshot(self._chunks, self._sequence_number, self._response_id)

    @property
    def delivered_bytes(self) -> int:
        """Content bytes the consumer has taken so far (the checkpoint's offset)."""
        return self._hasher.offset


def _can_merge(first: _Entry, second: _Entry) -> bool:
    if first.reading.kind != CONTENT or second.reading.kind != CONTENT:
        return False
    key = wire.merge_key(first.item)
    return key is not None and key == wire.merge_key(second.item)


# ------------------------------------------------------------------------------- async shell


class Relay:
    """The consumer side of a relayed stream (what :func:`relay` returns): an async iterator.

    Use ``async with`` (or call :meth:`aclose`) so that a consumer that leaves early stops the
    reader and closes the upstream; the stream then ends as ``abandoned``. Attributes for
    operators and tests: :attr:`buffered` and :attr:`peak` (bytes), :attr:`breaches`,
    :attr:`dropped_items`, :attr:`checkpoint` (what the consumer has received).
    """

    def __init__(
        self,
        inner: Any,
        buffer: RelayBuffer,
        core_of: Callable[[], StreamCore | None],
        fail_inner: Callable[[BaseException], None],
        clock: Callable[[], float],
    ) -> None:
        self._inner = inner
        self._buf = buffer
        self._core_of = core_of
        self._fail_inner = fail_inner
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self._stalled = asyncio.Event()
        self._error: BaseException | None = None
        self._terminated: ClientTooSlow | None = None
        self._reader_done = False
        self._finished = False
        self._consumer_waiting = False
        # Delivered content bytes go to stream_bytes_total through this (set by bind_core),
        # in batches: every _REPORT_EVERY items taken, and whenever the consumer stops.
        self._deliver: Callable[[int], None] | None = None
        self._reported = 0
        self._takes = 0

    def bind_core(self, core: StreamCore) -> None:
        """Count ``stream_bytes_total`` for ``core`` on delivery (called once the core exists)."""
        self._deliver = core.count_bytes_on_delivery()

    def _report_delivered(self) -> None:
        deliver = self._deliver
        if deliver is None:
            return
        n = self._buf.delivered_bytes - self._reported
        self._takes = 0
        if n:
            self._reported += n
            try:
                deliver(n)
            except Exception:
                report_telemetry_error("StreamCore", "delivered")

    # -- what operators and tests read

    @property
    def buffered(self) -> int:
        """Bytes in the buffer now."""
        return self._buf.buffered

    @property
    def peak(self) -> int:
        """The most bytes the buffer ever held (at most the cap plus one item)."""
        return self._buf.peak

    @property
    def breaches(self) -> int:
        """Times the consumer fell behind the cap."""
        return self._buf.breaches

    @property
    def dropped_items(self) -> int:
        """Low-value increments dropped (``drop`` policy)."""
        return self._buf.dropped_items

    @property
    def checkpoint(self) -> Checkpoint:
        """Exactly what the consumer has received."""
        return self._buf.checkpoint()

    async def wait_stalled(self) -> None:
        """Return once the reader cannot go on: paused by the cap, or finished (for tests and
        health checks; never needed to consume the stream)."""
        if self._task is None:
            self._start()
        await self._stalled.wait()

    # -- the reader task

    def _start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        buf = self._buf
        try:
            async for item in self._inner:
                offer = buf.offer(item)
                if offer.breach:
                    self._record_breach(offer)
                self._ready.set()
                if self._consumer_waiting:
                    # Let a waiting consumer run before reading on: when the upstream's bytes
                    # are already in memory, the reader would otherwise never yield and any
                    # consumer would look slow.
                    await asyncio.sleep(0)
                if offer.terminate:
                    exc = ClientTooSlow(
                        f"the consumer fell behind: more than {buf.cap} bytes buffered",
                        checkpoint=buf.checkpoint(),
                    )
                    self._terminated = exc
                    self._fail_inner(exc)
                    break
                while offer.pause and buf.buffered > buf.low_water:
                    # Stop reading: the upstream's bytes wait in the socket buffers, and TCP
                    # flow control slows the sender down.
                    self._space.clear()
                    self._stalled.set()
                    await self._space.wait()
                    self._stalled.clear()
        except Exception as exc:
            self._error = exc
        finally:
            self._reader_done = True
            self._ready.set()
            self._stalled.set()
            await _aclose(self._inner)

    def _record_breach(self, offer: Offer) -> None:
        try:
            core = self._core_of()
            if core is not None:
                core.record_client_slow(
                    self._clock(), terminated=offer.terminate, dropped_bytes=offer.dropped_bytes
                )
        except Exception:
            report_telemetry_error("StreamCore", "record_client_slow")

    # -- the consumer side

    def __aiter__(self) -> Relay:
        return self

    async def __anext__(self) -> Any:
        if self._task is None:
            self._start()
        buf = self._buf
        while True:
            if len(buf):
                item = buf.take()
                if buf.buffered <= buf.low_water:
                    self._space.set()
                self._takes += 1
                if self._takes >= _REPORT_EVERY:
                    self._report_delivered()
                return item
            if self._terminated is not None:
                exc, self._terminated = self._terminated, None
                self._finished = True
                self._report_delivered()
                raise exc
            if self._reader_done:
                self._finished = True
                self._report_delivered()
                if self._error is not None:
                    err, self._error = self._error, None
                    raise err
                raise StopAsyncIteration
            self._ready.clear()
            self._consumer_waiting = True
            try:
                await self._ready.wait()
            finally:
                self._consumer_waiting = False

    async def aclose(self) -> None:
        """Stop early: the reader stops, the upstream is closed, the stream is ``abandoned``."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif task is None:
            await _aclose(self._inner)
        self._finished = True
        self._report_delivered()

    async def __aenter__(self) -> Relay:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._report_delivered()
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(Exception):
                task.cancel()


async def _aclose(stream: Any) -> None:
    close = getattr(stream, "aclose", None)
    if callable(close):
        try:
            await close()
        except Exception:
            report_telemetry_error(type(stream).__name__, "aclose")


def relay(
    monitor: StreamMonitor,
    source: Any,
    *,
    model: str | None = None,
    provider: str | None = None,
    max_buffer: int | None = None,
    on_overflow: Policy | None = None,
    low_value: Callable[[Any, Reading], bool] = default_low_value,
    sizeof: Callable[[Any, Reading], int] = default_sizeof,
    **kwargs: Any,
) -> Relay:
    """Relay ``source`` to a (possibly slow) consumer through a bounded buffer (``monitor.relay``).

    ``source``: an ``opener(checkpoint)`` (the stream is opened, retried and resumed as by
    ``monitor.stream``), an async iterable (instrumented as by ``monitor.wrap``), or a stream
    already returned by ``monitor.stream`` / ``responses_stream`` / ``monitor.wrap``.
    ``max_buffer`` / ``on_overflow`` override ``spec.stream.flow_control``; ``low_value``
    and ``sizeof`` replace :func:`default_low_value` and :func:`default_sizeof`. Other keyword
    arguments go to ``monitor.stream`` or ``monitor.wrap``.
    """
    from ..active import ActiveStream, stream_active
    from ..core.shell import AsyncStreamWrapper

    flow = monitor.spec.stream.flow_control
    buffer = RelayBuffer(
        max_buffer if max_buffer is not None else flow.max_buffer,
        on_overflow if on_overflow is not None else flow.on_overflow,
        low_value=low_value,
        sizeof=sizeof,
    )
    inner: Any
    if isinstance(source, ActiveStream | AsyncStreamWrapper):
        inner = source
    elif callable(source) and not hasattr(source, "__aiter__"):
        inner = stream_active(monitor, source, model=model, provider=provider, **kwargs)
    elif hasattr(source, "__aiter__"):
        inner = monitor.wrap(source, model, provider, **kwargs)
    else:
        raise TypeError(
            f"relay() needs an opener or an async iterable, not {type(source).__name__}"
        )

    if isinstance(inner, ActiveStream):
        active = inner

        def core_of() -> StreamCore | None:
            return active.core

        def fail_inner(exc: BaseException) -> None:
            active.fail(exc)

    else:

        def core_of() -> StreamCore | None:
            return inner.core  # type: ignore[no-any-return]

        def fail_inner(exc: BaseException) -> None:
            inner.core.close(monitor.clock(), error=exc)

    relayed = Relay(inner, buffer, core_of, fail_inner, monitor.clock)
    # stream_bytes_total counts what the consumer takes: hand the count to the relay before
    # the reader reads anything (an active stream's core only exists once it starts).
    if isinstance(inner, ActiveStream):
        inner.on_core(relayed.bind_core)
    else:
        core = core_of()
        if core is not None:
            relayed.bind_core(core)
    return relayed


async def iterate(relayed: Relay) -> AsyncIterator[Any]:
    """``async for`` over a relay that always closes it (for frameworks that take a generator,
    such as Starlette's ``StreamingResponse``)."""
    async with relayed:
        async for item in relayed:
            yield item
