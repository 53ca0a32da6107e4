"""The HTTP response behind a stream: the one place that looks through an SDK stream, and
through other instrumentations' wrappers around it, for what its response carries (the URL for
``server.address``, the pool wait the transport measured).

An openai / anthropic SDK stream keeps its httpx or httpx2 response as ``.response``; an httpx
response is its own holder; another GenAI instrumentation's wrapper keeps the stream it wraps
under one of :data:`WRAPPED_ATTRS` (wrapt proxies: ``__wrapped__``;
opentelemetry-instrumentation-openai-v2: ``stream``; OpenLLMetry: ``_stream``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final, TypeVar

__all__ = ["WRAPPED_ATTRS", "from_response", "wrapped"]

T = TypeVar("T")

#: Where other instrumentations' stream wrappers keep the stream they wrap.
WRAPPED_ATTRS: Final = ("__wrapped__", "stream", "_stream")
#: Wrappers looked through at most (a wrapper of a wrapper of ...).
MAX_DEPTH: Final = 4

_NOT_HOLDERS = (str, bytes, bytearray, dict, list, tuple)


def wrapped(stream: Any) -> Iterator[Any]:
    """The streams ``stream`` wraps, one per attribute of :data:`WRAPPED_ATTRS` it has (an
    attribute that raises is skipped)."""
    for attr in WRAPPED_ATTRS:
        try:
            inner = getattr(stream, attr, None)
        except Exception:
            continue
        if inner is not None and inner is not stream:
            yield inner


def from_response(stream: Any, read: Callable[[Any], T | None], depth: int = 0) -> T | None:
    """The first value ``read`` finds (not ``None``) on the HTTP response behind ``stream``:
    ``stream.response``, then ``stream`` itself, then the same for each stream it wraps.
    ``read`` gets each candidate holder and may raise (a holder that raises is skipped)."""
    try:
        response = getattr(stream, "response", None)
    except Exception:  # an httpx response without its request, a proxy that raises
        response = None
    for holder in (response, stream):
        if holder is None or isinstance(holder, _NOT_HOLDERS):
            continue
        try:
            value = read(holder)
        except Exception:
            continue
        if value is not None:
            return value
    if depth < MAX_DEPTH:
        for inner in wrapped(stream):
            value = from_response(inner, read, depth + 1)
            if value is not None:
                return value
    return None
