"""Generating responses: the simulated model, the per-response event log and the response store.

A :class:`Generation` is one response's growing log of SSE frames. :func:`new_generation`
builds it for a create request (its text, and where a planned terminal fault ends it), and
:func:`generate` appends the Responses-API events to it as the simulated model produces them,
independently of any connection, so a background response keeps generating while its client is
away and a resume finds the rest. :class:`ResponseStore` keeps the generations by id (bounded,
oldest forgotten first) and by idempotency key. Delivering the log to a client, with the
byte-level faults, is :mod:`._delivery`'s job; routing requests is the server's.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _protocol as proto
from ._faults import KIND_ERROR_EVENT, KIND_FAILED, FaultPlan
from ._textgen import deltas, input_tokens

__all__ = [
    "Event",
    "Generation",
    "ResponseStore",
    "StoredResponse",
    "generate",
    "new_generation",
    "pace_deltas",
    "resolve_terminal",
]


@dataclass
class Event:
    seq: int
    frame: bytes
    is_delta: bool


@dataclass
class StoredResponse:
    """A response as the simulator stores it (read it with ``Upstream.response(id)``)."""

    id: str
    status: str
    """``queued``, ``in_progress``, ``completed``, ``failed``, ``incomplete`` or ``cancelled``."""
    background: bool
    text: str
    """The output text generated so far."""
    events: int
    """SSE events generated so far (the next event's ``sequence_number``)."""


@dataclass
class Generation:
    """One response being generated: its event log grows while delivery tasks read it."""

    meta: proto.ResponseMeta
    deltas: list[str]
    terminal: str | None
    terminal_at: int
    events: list[Event] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)
    status: str = "queued"
    error: dict[str, Any] | None = None
    incomplete_reason: str | None = None
    done: bool = False
    task: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    nbytes: int = 0
    idempotency_key: str | None = None
    store_bytes: list[int] = field(default_factory=lambda: [0])
    """Shared running total of the store's event bytes (a one-element list, mutated in place)."""
    prelude: int = proto.LIFECYCLE_PRELUDE
    """Events of the wire protocol before the first delta."""
    tail: int = proto.LIFECYCLE_TAIL
    """Events of the wire protocol after the last delta."""

    @property
    def planned_events(self) -> int:
        if self.terminal is not None:
            return self.terminal_at + 1
        return self.prelude + len(self.deltas) + self.tail

    def terminal_due(self, on_fault: Callable[[str], None]) -> bool:
        """Whether the planned terminal fault is the next event: then the generation is done
        (the fault is reported to ``on_fault``) and the protocol emits its terminal event."""
        if self.terminal is None or len(self.events) != self.terminal_at:
            return False
        self.done = True
        on_fault(self.terminal)
        return True

    def append(self, frame: bytes, *, is_delta: bool = False) -> None:
        """Append one framed event to the log and wake the deliveries."""
        self.events.append(Event(len(self.events), frame, is_delta))
        self.nbytes += len(frame)
        self.store_bytes[0] += len(frame)
        self.changed.set()
        self.changed = asyncio.Event()

    def snapshot(self) -> dict[str, Any]:
        text = "".join(self.text_parts)
        if self.status == "completed":
            output = [proto.message_item(self.meta, "completed", text)]
        elif len(self.events) > 2:
            output = [
                proto.message_item(
                    self.meta,
                    "in_progress" if not self.done else "incomplete",
                    text if len(self.events) > 3 else None,
                )
            ]
        else:
            output = []
        return proto.response_object(
            self.meta,
            status=self.status,
            output=output,
            error=self.error,
            incomplete_reason=self.incomplete_reason,
            usage_=proto.usage(self.meta, len(self.text_parts)) if self.done else None,
        )

    def emit(self, event_type: str, data: dict[str, Any], *, is_delta: bool = False) -> None:
        data = {"type": event_type, "sequence_number": len(self.events), **data}
        self.append(proto.sse_frame(event_type, data), is_delta=is_delta)

    def finish(self) -> None:
        self.done = True
        self.changed.set()

    async def wait_event(self, index: int) -> Event | None:
        """Event ``index``, waiting for it to be generated; ``None`` once there will be none."""
        while index >= len(self.events):
            if self.done:
                return None
            await self.changed.wait()
        return self.events[index]

    def view(self) -> StoredResponse:
        return StoredResponse(
            id=self.meta.id,
            status=self.status,
            background=self.meta.background,
            text="".join(self.text_parts),
            events=len(self.events),
        )


def new_generation(
    params: Mapping[str, Any], plan: FaultPlan, *, seed: int, number: int
) -> Generation:
    """The response to a parsed create request (``params``), not yet generating.

    ``seed`` and ``number`` (the upstream's seed and how many responses it has created,
    this one included) make the response and message ids; ``plan.terminal_at`` is resolved
    against the response's length (``None``: in the middle of the deltas).
    """
    digest = hashlib.sha256(f"steadystream-response:{seed}:{number}".encode())
    ident = digest.hexdigest()
    text_deltas = deltas(params["input"], params["seed"], params["tokens"], params["delta_size"])
    terminal_at = resolve_terminal(plan, proto.LIFECYCLE_PRELUDE, len(text_deltas))
    meta = proto.ResponseMeta(
        id=f"resp_{ident[:32]}",
        item_id=f"msg_{ident[32:64]}",
        model=params["model"],
        created_at=int(time.time()),
        background=params["background"],
        max_output_tokens=params["max_output_tokens"],
        input_tokens=input_tokens(params["input"]),
        metadata={str(k): str(v) for k, v in params["metadata"].items()},
    )
    return Generation(
        meta=meta,
        deltas=text_deltas,
        terminal=plan.terminal,
        terminal_at=terminal_at,
    )


def resolve_terminal(plan: FaultPlan, prelude: int, ndeltas: int) -> int:
    """Where the plan's terminal fault ends a log of ``prelude`` events then ``ndeltas``
    deltas (``terminal_at`` ``None``: in the middle of the deltas; never past the last)."""
    last = prelude + ndeltas
    if plan.terminal is None:
        return last
    if plan.terminal_at is None:
        return prelude + ndeltas // 2
    return min(plan.terminal_at, last)


async def generate(
    gen: Generation,
    *,
    first_token_latency: float,
    token_interval: float,
    on_fault: Callable[[str], None],
) -> None:
    """Append the response's events to its log: the simulated model at work.

    ``first_token_latency`` delays the first delta and ``token_interval`` paces the others
    (seconds; 0 goes as fast as the loop does). A planned terminal fault ends the log early
    and is reported to ``on_fault`` by kind.
    """
    meta = gen.meta
    try:
        if _stop_at(gen, on_fault):
            return
        gen.status = "queued" if meta.background else "in_progress"
        gen.emit("response.created", {"response": gen.snapshot()})
        if _stop_at(gen, on_fault):
            return
        gen.status = "in_progress"
        gen.emit("response.in_progress", {"response": gen.snapshot()})
        if _stop_at(gen, on_fault):
            return
        ids = {"item_id": meta.item_id, "output_index": 0}
        gen.emit(
            "response.output_item.added",
            {"output_index": 0, "item": proto.message_item(meta, "in_progress", None)},
        )
        if _stop_at(gen, on_fault):
            return
        gen.emit(
            "response.content_part.added",
            {**ids, "content_index": 0, "part": proto.output_text("")},
        )

        def emit_delta(delta: str) -> None:
            gen.emit(
                "response.output_text.delta",
                {**ids, "content_index": 0, "delta": delta, "logprobs": []},
                is_delta=True,
            )

        if not await pace_deltas(
            gen,
            emit_delta,
            first_token_latency=first_token_latency,
            token_interval=token_interval,
            stop=lambda: _stop_at(gen, on_fault),
        ):
            return
        text = "".join(gen.text_parts)
        gen.emit(
            "response.output_text.done",
            {**ids, "content_index": 0, "text": text, "logprobs": []},
        )
        gen.emit(
            "response.content_part.done",
            {**ids, "content_index": 0, "part": proto.output_text(text)},
        )
        gen.emit(
            "response.output_item.done",
            {"output_index": 0, "item": proto.message_item(meta, "completed", text)},
        )
        gen.status = "completed"
        gen.done = True  # so the snapshot carries usage
        gen.emit("response.completed", {"response": gen.snapshot()})
    except asyncio.CancelledError:
        gen.status = "cancelled"
        raise
    finally:
        gen.finish()


async def pace_deltas(
    gen: Generation,
    emit_delta: Callable[[str], None],
    *,
    first_token_latency: float,
    token_interval: float,
    stop: Callable[[], bool],
) -> bool:
    """The simulated model's pacing, shared by every wire protocol: wait
    ``first_token_latency``, then record each of ``gen.deltas`` in ``gen.text_parts`` and hand
    it to ``emit_delta`` (which appends the protocol's frame), ``token_interval`` apart.

    ``stop()`` is asked before every delta and once after the last: it emits the planned
    terminal fault when that is the next event, and says so. Returns ``False`` when the fault
    ended the log, ``True`` when every delta was emitted and the protocol's tail may follow.
    """
    if first_token_latency:
        await asyncio.sleep(first_token_latency)
    for i, delta in enumerate(gen.deltas):
        if stop():
            return False
        if i and token_interval:
            await asyncio.sleep(token_interval)
        elif i % 64 == 63:
            await asyncio.sleep(0)  # let deliveries run during long generations
        gen.text_parts.append(delta)
        emit_delta(delta)
    return not stop()


def _stop_at(gen: Generation, on_fault: Callable[[str], None]) -> bool:
    """Emit the planned terminal fault event if its sequence number is next."""
    if not gen.terminal_due(on_fault):
        return False
    if gen.terminal == KIND_ERROR_EVENT:
        gen.status = "failed"
        gen.error = {"code": "server_error", "message": proto.SIMULATED_ERROR_MESSAGE}
        gen.emit(
            "error",
            {
                "code": "server_error",
                "message": proto.SIMULATED_ERROR_MESSAGE,
                "param": None,
            },
        )
    elif gen.terminal == KIND_FAILED:
        gen.status = "failed"
        gen.error = {"code": "server_error", "message": proto.SIMULATED_ERROR_MESSAGE}
        gen.emit("response.failed", {"response": gen.snapshot()})
    else:
        gen.status = "incomplete"
        gen.incomplete_reason = "max_output_tokens"
        gen.emit("response.incomplete", {"response": gen.snapshot()})
    return True


class ResponseStore:
    """Generations by response id, in creation order, and by idempotency key.

    Holds at most ``max_stored`` responses and (about) ``max_stored_bytes`` of event frames:
    adding a response forgets the oldest first, so long benchmark runs stay within bounds. A
    forgotten response stops generating, and its idempotency key is released.
    """

    def __init__(self, max_stored: int, max_stored_bytes: int) -> None:
        self.max_stored = max_stored
        self.max_stored_bytes = max_stored_bytes
        self._bytes = [0]
        self._by_id: OrderedDict[str, Generation] = OrderedDict()
        self._idempotency: dict[str, str] = {}

    def get(self, response_id: str) -> Generation | None:
        """The generation stored as ``response_id``, or ``None``."""
        return self._by_id.get(response_id)

    def by_idempotency_key(self, key: str) -> Generation | None:
        """The stored generation a create with this ``Idempotency-Key`` made, or ``None``."""
        if key not in self._idempotency:
            return None
        return self._by_id.get(self._idempotency[key])

    def add(self, gen: Generation) -> None:
        """Store ``gen`` (not yet generating): forget the oldest beyond the bounds first, then
        count ``gen``'s event bytes against the store from now on."""
        while len(self._by_id) >= self.max_stored or (
            self._by_id and self._bytes[0] > self.max_stored_bytes
        ):
            _, old = self._by_id.popitem(last=False)
            self._forget(old)
        gen.store_bytes = self._bytes
        self._by_id[gen.meta.id] = gen

    def remember_key(self, key: str, gen: Generation) -> None:
        """A later create with ``key`` is answered with ``gen``."""
        self._idempotency[key] = gen.meta.id
        gen.idempotency_key = key

    def delete(self, response_id: str) -> None:
        """Forget the stored response ``response_id`` (it must be stored)."""
        self._forget(self._by_id.pop(response_id))

    def running_tasks(self) -> Iterator[asyncio.Task[None]]:
        """The generation tasks still running."""
        return (g.task for g in self._by_id.values() if g.task and not g.task.done())

    def _forget(self, gen: Generation) -> None:
        if gen.task is not None and not gen.task.done():
            gen.task.cancel()
        self._bytes[0] -= gen.nbytes
        key = gen.idempotency_key
        if key is not None and self._idempotency.get(key) == gen.meta.id:
            del self._idempotency[key]
        gen.nbytes = 0
        gen.store_bytes = [0]  # bytes it still generates no longer count against the store
