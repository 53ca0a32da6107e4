"""Delivering a response to one client, with the request's fault plan applied on the wire.

:func:`deliver_stream` writes a generation's SSE frames to a chunked response: cut into pieces
(``split``), dripped, stalled or delayed (silent, or with ``: keep-alive`` heartbeats), dropped
mid-body, or replaced by keep-alive comments only. :func:`deliver_status` answers with a
simulated HTTP error instead, and :func:`deliver_whole` sends a finished (or background)
response as JSON. Every fault that takes effect is reported to ``on_fault`` by kind. What the
events are is :mod:`._generation`'s job; which request gets which plan is the server's.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from . import _protocol as proto
from ._faults import (
    KIND_DELAY,
    KIND_DRIP,
    KIND_DROP,
    KIND_END,
    KIND_KEEPALIVE,
    KIND_SPLIT,
    KIND_STALL,
    FaultPlan,
)
from ._generation import Generation
from ._http import ResponseWriter

__all__ = [
    "deliver_status",
    "deliver_stream",
    "deliver_whole",
    "quiet",
    "send_json",
    "split_points",
]

OnFault = Callable[[str], None]


def split_points(frame: bytes, mode: int | str, rng: random.Random) -> list[bytes]:
    """Cut one frame into the pieces written separately."""
    if isinstance(mode, int):
        return [frame[i : i + mode] for i in range(0, len(frame), mode)]
    if mode == "utf8":
        # Cut after the first byte of every multi-byte character (lead bytes are 0b11xxxxxx).
        cuts = [i + 1 for i, b in enumerate(frame) if b >= 0xC0]
    else:
        n = min(len(frame) - 1, rng.randint(1, 3))
        cuts = sorted(rng.sample(range(1, len(frame)), n)) if n > 0 else []
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(frame[start:cut])
        start = cut
    pieces.append(frame[start:])
    return [p for p in pieces if p]


async def send_json(out: ResponseWriter, status: int, obj: object) -> None:
    """A complete ``application/json`` response."""
    await out.send(status, proto.dumps(obj).encode(), "application/json", [])


async def deliver_status(
    plan: FaultPlan,
    out: ResponseWriter,
    *,
    request_id: str,
    on_fault: OnFault,
    error_body: Callable[[int], dict[str, Any]] = proto.status_error_body,
) -> bool:
    """Answer with the plan's HTTP status fault, if it has one; whether it did. ``error_body``
    gives the body in the wire protocol's shape (OpenAI's by default)."""
    if plan.status is None:
        return False
    headers = [("x-request-id", request_id)]
    if plan.retry_after is not None:
        # Retry-After carries whole seconds (rounded up so a client never retries early);
        # retry-after-ms is the precise value, which the openai client prefers.
        headers.append(("retry-after", str(max(1, int(-(-plan.retry_after // 1))))))
        headers.append(("retry-after-ms", str(int(plan.retry_after * 1000))))
    body = proto.dumps(error_body(plan.status)).encode()
    on_fault(f"status_{plan.status}")
    await out.send(plan.status, body, "application/json", headers)
    return True


async def deliver_whole(
    gen: Generation, plan: FaultPlan, out: ResponseWriter, *, wait: bool, on_fault: OnFault
) -> None:
    """Answer a create without ``stream`` with the response as JSON.

    ``wait``: send it once generated (a plain create, like the real API; a ``delay`` fault
    holds it back further), else at once (a background create answers while it generates).
    """
    if plan.drop_after is not None:
        # The response was accepted (and stored under its idempotency key) but the answer
        # is lost: exactly the case an idempotent retry exists for.
        on_fault(KIND_DROP)
        out.abort()
        return
    if wait:
        while not gen.done:
            await gen.changed.wait()
        if plan.delay:
            on_fault(KIND_DELAY)
            await asyncio.sleep(plan.delay)
    await send_json(out, 200, gen.snapshot())


async def quiet(seconds: float, heartbeat: float, out: ResponseWriter) -> None:
    """No events for ``seconds``; only ``: keep-alive`` comments every ``heartbeat`` if set.

    Heartbeats keep proxies from closing the connection but carry no content, so a client's
    idle timer must not count them as progress.
    """
    if not heartbeat:
        await asyncio.sleep(seconds)
        return
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        await asyncio.sleep(min(heartbeat, left))
        if end - loop.time() > 0:
            await out.chunk(proto.KEEPALIVE_FRAME)


async def deliver_stream(
    gen: Generation,
    starting_after: int,
    plan: FaultPlan,
    out: ResponseWriter,
    *,
    request_id: str,
    on_fault: OnFault,
) -> None:
    """Stream ``gen``'s events after ``starting_after`` to one client, applying ``plan``.

    Replays what is stored, then follows the generation live until it ends.
    """
    await out.start_stream(200, [("x-request-id", request_id)])
    if plan.drop_after == 0:
        on_fault(KIND_DROP)
        out.abort()
        return
    if plan.keepalive:
        on_fault(KIND_KEEPALIVE)
        for _ in range(plan.keepalive):
            await out.chunk(proto.KEEPALIVE_FRAME)
            await asyncio.sleep(plan.keepalive_every)
        await out.end_stream()
        return
    remaining = max(0, gen.planned_events - (starting_after + 1))
    drop_after = remaining // 2 if plan.drop_after == -1 else plan.drop_after
    stall_at = remaining // 2 if plan.stall_at is None else plan.stall_at
    rng = random.Random(plan.seed)
    index, sent, delayed = starting_after + 1, 0, False
    split_counted = False
    while True:
        event = await gen.wait_event(index)
        if event is None:
            break
        if drop_after is not None and sent == drop_after:
            on_fault(KIND_DROP)
            out.abort()
            return
        if plan.end_after is not None and sent == plan.end_after:
            on_fault(KIND_END)
            break
        if plan.stall and sent == stall_at:
            on_fault(KIND_STALL)
            await quiet(plan.stall, plan.heartbeat, out)
        if plan.delay and event.is_delta and not delayed:
            on_fault(KIND_DELAY)
            await quiet(plan.delay, plan.heartbeat, out)
        if event.is_delta:
            delayed = True
        pieces = [event.frame]
        if plan.split is not None:
            pieces = split_points(event.frame, plan.split, rng)
            if len(pieces) > 1 and not split_counted:
                on_fault(KIND_SPLIT)
                split_counted = True
        if sent == 0 and plan.drip:
            on_fault(KIND_DRIP)
        for piece in pieces:
            if plan.drip:
                await asyncio.sleep(plan.drip)
            await out.chunk(piece)
        sent += 1
        index += 1
    await out.end_stream()
