"""``for`` / ``async for`` over a wrapper run a generator over the wrapper's state: leaving a
loop early does not end the stream, a later loop or ``next()`` continues where it left off, and
the stream ends once, with exact counts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import telemetry_support
from steadystream import conventions as c

LABELS = {c.LABEL_SERVICE: "svc", c.LABEL_MODEL: "m", c.LABEL_PROVIDER: "openai"}


class Telemetry(telemetry_support.Telemetry):
    labels = LABELS


def events(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": "r1"}, "sequence_number": 0}
    ]
    out += [
        {"type": "response.output_text.delta", "delta": f"d{i}é", "sequence_number": i + 1}
        for i in range(n)
    ]
    out.append({"type": "response.completed", "response": {"id": "r1"}, "sequence_number": n + 1})
    return out


def content_bytes(n: int) -> int:
    return sum(len(f"d{i}é".encode()) for i in range(n))


class Upstream:
    """A sync iterable that says whether it was closed."""

    def __init__(self, items: list[Any]) -> None:
        self._it: Iterator[Any] = iter(items)
        self.closed = False

    def __iter__(self) -> Upstream:
        return self

    def __next__(self) -> Any:
        return next(self._it)

    def close(self) -> None:
        self.closed = True


class AsyncUpstream:
    def __init__(self, items: list[Any]) -> None:
        self._items = list(items)
        self.closed = False

    def __aiter__(self) -> AsyncUpstream:
        return self

    async def __anext__(self) -> Any:
        if not self._items:
            raise StopAsyncIteration
        return self._items.pop(0)

    async def aclose(self) -> None:
        self.closed = True


def test_sync_loops_and_next_share_one_stream() -> None:
    tel = Telemetry(watchdog=False)
    items = events(40)
    up = Upstream(items)
    w = tel.monitor.wrap(up, model="m", provider="openai")
    got: list[Any] = []
    for item in w:
        got.append(item)
        if len(got) == 10:
            break  # closes the loop's generator, not the stream
    assert not w.finished and not up.closed
    got.append(next(w))
    got.extend(w)
    assert got == items
    assert w.finished and up.closed
    assert tel.value(c.REQUESTS_TOTAL, outcome=c.OUTCOME_OK) == 1
    assert tel.value(c.BYTES_TOTAL) == content_bytes(40)
    assert tel.value(c.count(c.CHUNK_GAP)) == 39
    assert w.checkpoint.chunks == 40


def test_sync_break_then_close_is_abandoned_once() -> None:
    tel = Telemetry(watchdog=False)
    up = Upstream(events(40))
    with tel.monitor.wrap(up, model="m", provider="openai") as w:
        for n, _item in enumerate(w):
            if n == 20:
                break
    assert up.closed
    assert tel.value(c.REQUESTS_TOTAL, outcome=c.OUTCOME_ABANDONED) == 1
    assert tel.value(c.REQUESTS_TOTAL, outcome=c.OUTCOME_OK) == 0
    assert tel.value(c.BYTES_TOTAL) == content_bytes(20)


def test_sync_close_inside_the_loop_ends_it() -> None:
    tel = Telemetry(watchdog=False)
    up = Upstream(events(40))
    w = tel.monitor.wrap(up, model="m", provider="openai")
    seen = 0
    for _item in w:
        seen += 1
        if seen == 5:
            w.close()
    assert seen == 5
    assert tel.value(c.REQUESTS_TOTAL, outcome=c.OUTCOME_ABANDONED) == 1


def test_sync_upstream_error_in_the_loop_is_raised_and_recorded() -> None:
    tel = Telemetry(watchdog=False)

    def failing() -> Iterator[Any]:
        yield from events(3)[:3]
        raise ConnectionError("reset")

    w = tel.monitor.wrap(failing(), model="m", provider="openai")
    with pytest.raises(ConnectionError):
        for _item in w:
            pass
    assert tel.value(c.REQUESTS_TOTAL, outcome=c.OUTCOME_ERROR) == 1
    assert list(w) == []  # ended: a later loop yields nothing


async def test_async_loops_and_anext_share_one_stream() -> None:
    tel = Telemetry()
    items = events(40)
    up = AsyncUpstream(items)
    w = tel.monitor.wrap(up, model="m", provider="openai")
    got: list[Any] = []
    loop: AsyncIterator[Any] = w.__aiter__()
    async for item in loop:
        got.append(item)
        if len(got) == 10:
            break
    await loop.aclose()  # type: ignore[attr-defined]
    assert not w.finished and not up.closed
    got.append(await w.__anext__())
    async for item in w:
        got.append(item)
    assert got == items
    assert w.finished and up.closed
    assert tel.value(c.REQUESTS_TOTAL, outcome=c.OUTCOME_OK) == 1
    assert tel.value(c.BYTES_TOTAL) == content_bytes(40)
    assert tel.value(c.count(c.CHUNK_GAP)) == 39


async def test_async_upstream_error_in_the_loop_is_raised_and_recorded() -> None:
    tel = Telemetry()

    async def failing() -> AsyncIterator[Any]:
        for item in events(3)[:3]:
            yield item
        raise ConnectionError("reset")

    w = tel.monitor.wrap(failing(), model="m", provider="openai")
    with pytest.raises(ConnectionError):
        async for _item in w:
            pass
    assert tel.value(c.REQUESTS_TOTAL, outcome=c.OUTCOME_ERROR) == 1
    assert [item async for item in w] == []  # ended: a later loop yields nothing
