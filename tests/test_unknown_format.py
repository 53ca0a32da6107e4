"""Items of a shape no wire format knows: timed as activity, never cut for being unknown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from steadystream.instrumentation.providers import registry
from steadystream.instrumentation.providers.base import (
    CONTENT,
    END,
    UNKNOWN,
    BaseFormat,
    Reading,
    get,
)

LABELS = {"service": "svc", "model": "m", "provider": "acme"}
ITEMS = 20
GAP = 0.06  # a delta every 60 ms: the stream lasts about 1.2 s, past the 500 ms first-token budget
LOGGER = "steadystream.instrumentation.providers.registry"


def make_monitor(first_token: str = "500ms", idle: str = "20s") -> tuple[Any, CollectorRegistry]:
    spec = ss.Spec.model_validate(
        {
            "version": 1,
            "service": "svc",
            "stream": {
                "timeouts": {"first_token": first_token, "stream_idle": idle, "total": "60s"}
            },
        }
    )
    reg = CollectorRegistry()
    return ss.StreamMonitor(spec, registry=reg), reg


def value(reg: CollectorRegistry, name: str, **extra: str) -> float:
    v = reg.get_sample_value(name, {**LABELS, **extra})
    return 0.0 if v is None else v


def unknown_items(kind: str) -> list[dict[str, Any]]:
    return [{"type": kind, "index": i, "payload": f"part {i}"} for i in range(ITEMS)]


def flowing(items: list[Any]) -> Iterator[Any]:
    for i, item in enumerate(items):
        if i:
            time.sleep(GAP)
        yield item


async def aflowing(items: list[Any]) -> AsyncIterator[Any]:
    for i, item in enumerate(items):
        if i:
            await asyncio.sleep(GAP)
        yield item


def test_an_unknown_dict_is_read_as_unknown_activity() -> None:
    assert registry.read_item({"type": "vendor.chunk", "text": "x"}).kind == UNKNOWN
    assert registry.read_item({"no_type": 1}).kind == UNKNOWN
    assert registry.read_item(object()).kind == UNKNOWN
    # Built-in formats still claim their own items.
    assert registry.read_item({"type": "response.output_text.delta", "delta": "x"}).kind == CONTENT


def test_a_flowing_unknown_dict_stream_is_not_cut(caplog: pytest.LogCaptureFixture) -> None:
    monitor, reg = make_monitor()
    items = unknown_items("vendor.sync.chunk")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        got = list(monitor.wrap(flowing(items), model="m", provider="acme"))
    assert got == items  # every item, unchanged, none cut
    assert value(reg, "stream_requests_total", outcome="ok") == 1
    assert value(reg, "stream_timeouts_total", phase="first_token") == 0
    assert value(reg, "stream_bytes_total") == 0  # unknown items are not content
    warnings = [r for r in caplog.records if "vendor.sync.chunk" in r.getMessage()]
    assert len(warnings) == 1  # one warning for the type, not one per item
    message = warnings[0].getMessage()
    assert "dict with type 'vendor.sync.chunk'" in message
    assert "register(" in message


def test_a_flowing_unknown_dict_stream_is_not_cut_async(caplog: pytest.LogCaptureFixture) -> None:
    monitor, reg = make_monitor()
    items = unknown_items("vendor.async.chunk")

    async def main() -> list[Any]:
        return [item async for item in monitor.wrap(aflowing(items), model="m", provider="acme")]

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        got = asyncio.run(main())
    assert got == items
    assert value(reg, "stream_requests_total", outcome="ok") == 1
    assert value(reg, "stream_timeouts_total", phase="first_token") == 0
    assert len([r for r in caplog.records if "vendor.async.chunk" in r.getMessage()]) == 1


def test_an_unknown_stream_that_stalls_is_still_timed() -> None:
    monitor, reg = make_monitor(first_token="20s", idle="200ms")

    def stalling() -> Iterator[Any]:
        yield {"type": "vendor.stall.chunk", "n": 0}
        yield {"type": "vendor.stall.chunk", "n": 1}
        time.sleep(1.0)  # well past the 200 ms idle budget
        yield {"type": "vendor.stall.chunk", "n": 2}

    got: list[Any] = []
    with pytest.raises(ss.IdleTimeout):
        for item in monitor.wrap(stalling(), model="m", provider="acme"):
            got.append(item)
    assert [g["n"] for g in got] == [0, 1]
    assert value(reg, "stream_timeouts_total", phase="idle") == 1
    assert value(reg, "stream_errors_total", error_class=c.ERROR_CLASS_IDLE_TIMEOUT) == 1


class VendorFormat(BaseFormat):
    """The worked example of docs/instrumentation.md: a vendor's ``{"kind": ..., "text": ...}``."""

    name = "vendor"

    def read(self, item: Any) -> Reading | None:
        kind = get(item, "kind")
        if kind == "text":
            return Reading(CONTENT, get(item, "text") or "")
        if kind == "done":
            return Reading(END)
        return None


def test_a_registered_format_turns_unknown_items_into_content() -> None:
    fmt = VendorFormat()
    registry.register(fmt)
    try:
        monitor, reg = make_monitor()
        items = [{"kind": "text", "text": "héllo "}, {"kind": "text", "text": "world"}]
        items.append({"kind": "done"})
        assert list(monitor.wrap(iter(items), model="m", provider="acme")) == items
        assert value(reg, "stream_bytes_total") == len("héllo world".encode())
        assert value(reg, "stream_requests_total", outcome="ok") == 1
    finally:
        registry.unregister(fmt)
    assert registry.read_item({"kind": "text", "text": "x"}).kind == UNKNOWN
