"""The reference wrapper of the benchmarks (``benchmarks/reference.py``) does the work it stands
for, on both formats it reads, sync and async, so the ratios to it mean what they say."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import _events  # noqa: E402
import reference  # noqa: E402
import steadystream as ss  # noqa: E402
from steadystream import conventions as c  # noqa: E402

N = 1000


async def _aiter(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def _alist(it: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in it]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("items", "text_of"),
    [
        (_events.sdk_events(N), reference.responses_text),
        (_events.chat_chunks(N), reference.chat_text),
    ],
    ids=["responses", "chat"],
)
def test_reference_counts_gaps_bytes_and_hashes_every_delta(
    items: list[Any], text_of: Callable[[Any], str | None], mode: str
) -> None:
    sink = reference.ReferenceSink(tuple(ss.default_spec("bench").histogram_buckets()[c.CHUNK_GAP]))
    if mode == "sync":
        out = list(reference.reference(iter(items), sink, text_of))
    else:
        out = asyncio.run(_alist(reference.areference(_aiter(items), sink, text_of)))
    assert out == items  # every item handed on, unchanged and in order
    text = "".join(t for t in map(text_of, items) if t)
    assert sink.gaps_counted() == N - 1
    assert sink.bytes._value.get() == len(text.encode()) == _events.content_bytes(N)
    assert sink.streams._value.get() == 1
    assert sink.last_checkpoint is not None
    offset, chunks, sha = sink.last_checkpoint
    assert chunks == N - N % reference.CHECKPOINT_EVERY
    assert offset == len("".join(_events.delta_texts(N)[:chunks]).encode())
    assert sha.hexdigest() == hashlib.sha256(text.encode()[:offset]).hexdigest()
