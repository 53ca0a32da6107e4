"""The reference wrapper: the least a stream wrapper with steadystream's per-chunk duties can do
in pure Python, measured beside steadystream in the same run (``bench_chunk.py``).

Per item: one clock read; for a text delta, the gap since the previous one appended to a local
list, the UTF-8 byte count, a running sha256, and a copy of the checkpoint state (offset, chunk
count, hash state) every 16 chunks; every 64 chunks the gaps are bucketed locally and flushed
into a prometheus_client histogram (one ``observe`` per bucket bound crossed is not needed: the
counts go straight into the child's bucket values, as steadystream's own sink does). At the end,
bytes and the stream count go to counters.

It reads OpenAI Responses ``response.output_text.delta`` events or Chat Completions chunks
(``choices[0].delta.content``), told which by the caller. It enforces nothing (no timeouts, no
fences, no spans): it is a floor for the bookkeeping, not a competitor.

:func:`reference` wraps an iterable, :func:`areference` an async iterable (``bench_e2e.py``
measures it over the async client, the floor of async ``wrap``). Their loops are twins written
out in full: a shared helper would add a call per item to the floor. Like steadystream's shells,
both read an openai SDK stream's inner iterator, not the generator that only relays it
(:func:`~steadystream.instrumentation.core.shell.upstream_items`).
"""

from __future__ import annotations

import bisect
import hashlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from steadystream import conventions as c
from steadystream.instrumentation.core.shell import upstream_items

CHECKPOINT_EVERY = 16
FLUSH_EVERY = 64
DELTA = "response.output_text.delta"


class ReferenceSink:
    """A registry with the gap histogram and the byte and stream counters."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.registry = CollectorRegistry()
        labels = [c.LABEL_SERVICE, c.LABEL_MODEL, c.LABEL_PROVIDER]
        self.bounds = list(buckets)
        self.gap = Histogram(
            c.CHUNK_GAP, "gap", labels, buckets=buckets, registry=self.registry
        ).labels("bench", "ref", "openai")
        self.bytes = Counter(
            c.BYTES_TOTAL.removesuffix("_total"), "bytes", labels, registry=self.registry
        ).labels("bench", "ref", "openai")
        self.streams = Counter(
            "reference_streams", "streams", labels, registry=self.registry
        ).labels("bench", "ref", "openai")

        self.last_checkpoint: tuple[int, int, Any] | None = None

    def flush(self, gaps: list[float]) -> None:
        """Bucket ``gaps`` locally, then add the counts to the histogram child in one pass."""
        counts = [0] * (len(self.bounds) + 1)
        for g in gaps:
            counts[bisect.bisect_left(self.bounds, g)] += 1
        child = self.gap
        for i, n in enumerate(counts):
            if n:
                child._buckets[i].inc(n)
        child._sum.inc(sum(gaps))

    def finish(
        self, gaps: list[float], nbytes: int, checkpoint: tuple[int, int, Any] | None
    ) -> None:
        """The end of a stream: the gaps not flushed yet, its bytes, its last checkpoint."""
        if gaps:
            self.flush(gaps)
        self.bytes.inc(nbytes)
        self.streams.inc()
        self.last_checkpoint = checkpoint

    def gaps_counted(self) -> float:
        return sum(b.get() for b in self.gap._buckets)


def responses_text(item: Any) -> str | None:
    """The text of a Responses ``response.output_text.delta`` event, else None."""
    return item.delta if item.type == DELTA else None


def chat_text(item: Any) -> str | None:
    """The text of a Chat Completions chunk's first choice, else None."""
    choices = item.choices
    return choices[0].delta.content if choices else None


def reference(
    items: Iterable[Any], sink: ReferenceSink, text_of: Callable[[Any], str | None]
) -> Iterator[Any]:
    """Yield ``items`` unchanged, doing the reference bookkeeping; ``text_of`` reads an item's
    text (the caller knows the stream's format, so no per-item format detection)."""
    clock = time.perf_counter
    sha = hashlib.sha256()
    gaps: list[float] = []
    nbytes = 0
    chunks = 0
    checkpoint: tuple[int, int, Any] | None = None
    last: float | None = None
    for item in upstream_items(items, is_async=False):
        t = clock()
        text = text_of(item)
        if text:
            if last is not None:
                gaps.append((t - last) * 1000.0)
            last = t
            data = text.encode()
            nbytes += len(data)
            sha.update(data)
            chunks += 1
            if chunks % CHECKPOINT_EVERY == 0:
                checkpoint = (nbytes, chunks, sha.copy())
            if len(gaps) >= FLUSH_EVERY:
                sink.flush(gaps)
                gaps = []
        yield item
    sink.finish(gaps, nbytes, checkpoint)


async def areference(
    items: AsyncIterable[Any], sink: ReferenceSink, text_of: Callable[[Any], str | None]
) -> AsyncIterator[Any]:
    """:func:`reference` over an async iterable: the same bookkeeping, item for item."""
    clock = time.perf_counter
    sha = hashlib.sha256()
    gaps: list[float] = []
    nbytes = 0
    chunks = 0
    checkpoint: tuple[int, int, Any] | None = None
    last: float | None = None
    async for item in upstream_items(items, is_async=True):
        t = clock()
        text = text_of(item)
        if text:
            if last is not None:
                gaps.append((t - last) * 1000.0)
            last = t
            data = text.encode()
            nbytes += len(data)
            sha.update(data)
            chunks += 1
            if chunks % CHECKPOINT_EVERY == 0:
                checkpoint = (nbytes, chunks, sha.copy())
            if len(gaps) >= FLUSH_EVERY:
                sink.flush(gaps)
                gaps = []
        yield item
    sink.finish(gaps, nbytes, checkpoint)
