"""The shells read an SDK stream's inner iterator when the stream's ``__iter__`` /
``__aiter__`` only passes it through (the openai SDK's ``Stream`` and ``AsyncStream``): the
same items and the same exact counts, one generator layer fewer per item. A stream class whose
``__iter__`` does anything more is iterated as is: its own code runs for every item.

The real openai and anthropic SDKs; the openai streams come from the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import openai

from anthropic_support import delta, sha
from steadystream.instrumentation.core.shell import (
    AsyncStreamWrapper,
    SyncStreamWrapper,
    upstream_items,
)
from steadystream.simulate import Upstream, expected_text
from test_anthropic_resilient import without_gauges
from test_chat_compatible import passive_deltas, text_of
from test_chat_resilient import MESSAGES, MODEL, TOKENS, Telemetry

EXPECTED = expected_text("hi", tokens=TOKENS)


def chat_stream(upstream: Upstream) -> Any:
    client = openai.OpenAI(base_url=upstream.base_url, api_key="test", max_retries=0)
    return client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=TOKENS, stream=True
    )


async def achat_stream(upstream: Upstream) -> Any:
    client = openai.AsyncOpenAI(base_url=upstream.base_url, api_key="test", max_retries=0)
    return await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=TOKENS, stream=True
    )


def test_a_sync_openai_stream_is_read_through_its_inner_iterator(upstream: Upstream) -> None:
    tel = Telemetry()
    before = tel.snapshot()
    stream = chat_stream(upstream)
    wrapped = tel.monitor.wrap(stream, model=MODEL, provider="openai")
    assert isinstance(wrapped, SyncStreamWrapper)
    assert wrapped._it is stream._iterator
    chunks = list(wrapped)
    assert sha(text_of(chunks)) == sha(EXPECTED)
    assert without_gauges(delta(before, tel.snapshot())) == passive_deltas()


async def test_an_async_openai_stream_is_read_through_its_inner_iterator(
    aupstream: Upstream,
) -> None:
    tel = Telemetry()
    before = tel.snapshot()
    stream = await achat_stream(aupstream)
    wrapped = tel.monitor.wrap(stream, model=MODEL, provider="openai")
    assert isinstance(wrapped, AsyncStreamWrapper)
    assert wrapped._ait is stream._iterator
    chunks = [chunk async for chunk in wrapped]
    assert sha(text_of(chunks)) == sha(EXPECTED)
    assert without_gauges(delta(before, tel.snapshot())) == passive_deltas()


class CountingStream(openai.Stream[Any]):
    """An openai ``Stream`` whose ``__iter__`` does more than pass the items through."""

    seen = 0

    def __iter__(self) -> Iterator[Any]:
        for item in self._iterator:
            CountingStream.seen += 1
            yield item


class CountingAsyncStream(openai.AsyncStream[Any]):
    seen = 0

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for item in self._iterator:
            CountingAsyncStream.seen += 1
            yield item


def test_a_stream_whose_iter_does_more_is_iterated_as_is(upstream: Upstream) -> None:
    tel = Telemetry()
    stream = chat_stream(upstream)
    stream.__class__ = CountingStream
    CountingStream.seen = 0
    wrapped = tel.monitor.wrap(stream, model=MODEL, provider="openai")
    assert wrapped._it is not stream._iterator
    chunks = list(wrapped)
    assert CountingStream.seen == len(chunks) > 0
    assert sha(text_of(chunks)) == sha(EXPECTED)


async def test_an_async_stream_whose_aiter_does_more_is_iterated_as_is(
    aupstream: Upstream,
) -> None:
    tel = Telemetry()
    stream = await achat_stream(aupstream)
    stream.__class__ = CountingAsyncStream
    CountingAsyncStream.seen = 0
    wrapped = tel.monitor.wrap(stream, model=MODEL, provider="openai")
    assert wrapped._ait is not stream._iterator
    chunks = [chunk async for chunk in wrapped]
    assert CountingAsyncStream.seen == len(chunks) > 0
    assert sha(text_of(chunks)) == sha(EXPECTED)


def test_anthropic_streams_call_their_observer_so_are_not_skipped() -> None:
    # anthropic's Stream.__iter__ / AsyncStream.__aiter__ hand every item to an observer.
    for cls, is_async in ((anthropic.Stream, False), (anthropic.AsyncStream, True)):
        stream = object.__new__(cls)
        stream._iterator = iter(())
        assert upstream_items(stream, is_async=is_async) is not stream._iterator


def test_a_pass_through_class_without_an_inner_iterator_is_iterated_as_is() -> None:
    stream = object.__new__(openai.Stream)
    it = upstream_items(stream, is_async=False)
    assert it.__class__.__name__ == "generator"  # Stream.__iter__'s own generator
