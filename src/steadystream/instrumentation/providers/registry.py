"""The registry of wire formats, and the reading functions the rest of the package calls.

Formats are asked in turn, the most recently registered first, so a new format may claim items
a built-in one would otherwise take. Built in, in this order: Anthropic Messages
(:mod:`.anthropic_messages`), OpenAI Responses (:mod:`.openai_responses`), Gemini
(:mod:`.gemini`; before Chat Completions, which would take Google's ``{"error": ...}`` shape
without its status), then OpenAI Chat Completions (:mod:`.openai_chat`). Adding a format is
one module implementing :class:`~.base.WireFormat` plus :func:`register`.

What is format-neutral lives here:

* ``str`` items are text deltas (an empty string is a keep-alive);
* an SSE event (:class:`~steadystream.ServerSentEvent`, or any object with string ``data`` and
  an ``event`` attribute) is read through :func:`read_sse`: a format's sentinel, else the
  ``data`` parsed as JSON (with the SSE event name as its ``type`` when it has none) and read
  as an item, else plain-text content;
* anything no format recognises is *unknown* (:data:`~.base.UNKNOWN`): proof of activity for
  the first-token and idle clocks, never content, so a stream of a shape the wrapper does not
  know is timed but never cut for being unknown. The first unknown item of each type logs one
  warning (logger ``steadystream.instrumentation.providers.registry``) naming the type and how
  to register a format.

Per chunk, the shells call the :data:`~.base.FastPath` that :func:`fast_path` picked for the
item's class; everything else goes through :func:`read_item`.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Final

from ... import conventions as c
from .anthropic_messages import ANTHROPIC
from .base import (
    CONTENT,
    ERROR,
    KEEPALIVE,
    LIFECYCLE,
    MISS,
    UNKNOWN,
    FastPath,
    Reading,
    WireFormat,
    attr,
    with_field,
)
from .gemini import GEMINI
from .openai_chat import CHAT
from .openai_responses import RESPONSES

__all__ = [
    "content_text",
    "describe_error",
    "describe_type",
    "fast_path",
    "feed",
    "formats",
    "is_incomplete",
    "is_progress",
    "merge_key",
    "read_item",
    "read_sse",
    "register",
    "replace_text",
    "unregister",
    "with_text",
]

_KEEPALIVE: Final = Reading(KEEPALIVE)
_LIFECYCLE: Final = Reading(LIFECYCLE)
_UNKNOWN: Final = Reading(UNKNOWN)

_log = logging.getLogger(__name__)
# Unknown item types already warned about (bounded: a stream of ever-new types warns at most
# this many times per process).
_warned: set[str] = set()
_MAX_WARNED: Final = 256

_lock = threading.Lock()
# Asked in this order; replaced (never mutated) on register, so readers need no lock.
_BUILT_IN: Final[tuple[WireFormat, ...]] = (ANTHROPIC, RESPONSES, GEMINI, CHAT)
_formats: tuple[WireFormat, ...] = _BUILT_IN
# The fast path picked for each item class (see fast_path), emptied when the formats change.
# Bounded: past the bound, new classes (say, made at run time) are asked per stream again.
_fast_by_class: dict[type, FastPath] = {}
_MAX_FAST_CLASSES: Final = 1024
# Classes whose instances take any shape (one stream's dicts may be Chat chunks, the next
# stream's Responses events): asked per stream, as before.
_GENERIC_MODULES: Final = frozenset({"builtins", "types"})


def register(fmt: WireFormat) -> None:
    """Add a wire format; it is asked before every format registered earlier."""
    global _formats
    with _lock:
        if fmt not in _formats:
            _formats = (fmt, *_formats)
            _fast_by_class.clear()


def unregister(fmt: WireFormat) -> None:
    """Remove a format added with :func:`register` (built-in formats stay)."""
    global _formats
    with _lock:
        if fmt not in _BUILT_IN:
            _formats = tuple(f for f in _formats if f is not fmt)
            _fast_by_class.clear()


def formats() -> tuple[WireFormat, ...]:
    """The registered formats, in the order they are asked."""
    return _formats


# ------------------------------------------------------------------------------- reading


def read_item(item: Any) -> Reading:
    """What one upstream item means (see the module docstring and each format's)."""
    if isinstance(item, str):
        return Reading(CONTENT, item) if item else _KEEPALIVE
    for fmt in _formats:
        r = fmt.read(item)
        if r is not None:
            return r
    if not isinstance(item, dict):
        data = attr(item, "data")
        if isinstance(data, str) and hasattr(item, "event"):
            return read_sse(data, attr(item, "event"))
    _warn_unknown(item)
    return _UNKNOWN


def describe_type(item: Any) -> str:
    """How an item's type is named in logs: ``dict with type 'x'`` or ``module.Class``."""
    if isinstance(item, dict):
        typ = item.get("type")
        return f"dict with type {typ!r}" if typ is not None else "dict without a 'type'"
    cls = type(item)
    typ = attr(item, "type")
    name = f"{cls.__module__}.{cls.__qualname__}"
    return f"{name} with type {typ!r}" if isinstance(typ, str) else name


def _warn_unknown(item: Any) -> None:
    key = describe_type(item)
    if key in _warned or len(_warned) >= _MAX_WARNED:
        return
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    _log.warning(
        "steadystream: no registered wire format recognises %s; such items count as activity "
        "for the first-token and idle timeouts but not as content (no bytes, no first token). "
        "Register a format for it with steadystream.instrumentation.providers.register("
        "<a WireFormat>) (see docs/instrumentation.md, 'Registering a wire format').",
        key,
    )


def read_sse(data: str, event: str | None = None) -> Reading:
    """Read an SSE event's ``data`` and ``event`` name."""
    for fmt in _formats:
        r = fmt.read_sse_data(data)
        if r is not None:
            return r
    try:
        obj = json.loads(data)
    except ValueError:
        # Not JSON: a plain-text SSE stream, where the data itself is the content.
        return Reading(CONTENT, data) if data else _KEEPALIVE
    if isinstance(obj, dict):
        if "type" not in obj and event and event != "message":
            obj = {**obj, "type": event}
        return read_item(obj)
    if isinstance(obj, str):
        return Reading(CONTENT, obj) if obj else _KEEPALIVE
    return _LIFECYCLE


def _fast_text(core: Any, item: str, t: float) -> Any:
    return core.on_content(item, None, t) if item else MISS


def _no_fast_path(core: Any, item: Any, t: float) -> Any:
    return MISS


def fast_path(item: Any) -> FastPath:
    """The fast path for items of ``type(item)``: a shell asks once per item class and keeps
    the answer while the class stays the same (a stream's items are nearly all one class).

    The answer is remembered per class across streams too (a Responses stream's eight
    lifecycle events are eight classes, asked of every format on every stream otherwise),
    except for generic classes such as ``dict``. A fast path hands anything it does not
    recognise back as MISS, so an item unlike the one its class was learnt from is still read
    right, through :func:`read_item`.

    The fast path is the one of the format that reads the item, asked in the order of
    :func:`read_item`: a format that reads it without a fast path of its own (a registered
    format claiming the openai SDK's events, say) keeps the class on the general reading, so
    a later format's fast path never takes items an earlier format would read."""
    cls = type(item)
    if cls is str:
        return _fast_text
    fast = _fast_by_class.get(cls)
    if fast is not None:
        return fast
    fast = _no_fast_path
    formats = _formats
    for fmt in formats:
        found = fmt.fast_path(item)
        if found is not None:
            fast = found
            break
        if fmt.read(item) is not None:
            break  # this format reads the class's items, on the general path
    if cls.__module__ not in _GENERIC_MODULES and len(_fast_by_class) < _MAX_FAST_CLASSES:
        with _lock:
            if formats is _formats:  # no format registered meanwhile
                _fast_by_class[cls] = fast
    return fast


def feed(core: Any, item: Any, t: float) -> Any:
    """Hand ``item`` to ``core`` (``StreamCore``): its fast path, else its reading. Returns
    what the core returned (``None``, or a timeout to raise)."""
    out = fast_path(item)(core, item, t)
    if out is MISS:
        out = core.on_reading(read_item(item), t)
    return out


# ------------------------------------------------------------------------------- questions


def content_text(item: Any) -> str:
    """The content text ``item`` carries (``""`` for anything but content)."""
    r = read_item(item)
    return r.text if r.kind == CONTENT else ""


def is_incomplete(item: Any) -> bool:
    """True for a terminal event that ends a response early but legitimately (the Responses
    API's incomplete response: the consumer got a truncated answer)."""
    r = read_item(item)
    return r.kind == ERROR and r.error_class == c.ERROR_CLASS_RESPONSE_INCOMPLETE


def is_progress(item: Any) -> bool:
    """A progress event a slow consumer can do without (never content or a terminal)."""
    return any(fmt.is_progress(item) for fmt in _formats)


def describe_error(item: Any) -> str:
    """A short message for an in-band error item: its type, code and message, never content."""
    for fmt in _formats:
        text = fmt.describe_error(item)
        if text is not None:
            return text
    return "error"


# ------------------------------------------------------------------------------- rewriting


def replace_text(item: Any, old: str, new: str) -> Any:
    """A copy of content item ``item`` whose text ``old`` is replaced by ``new`` (resume trims a
    replayed delta to its unseen suffix), or :data:`~.base.MISS` when its shape cannot be
    rewritten."""
    if isinstance(item, str):
        return new
    for fmt in _formats:
        out = fmt.replace_text(item, old, new)
        if out is not MISS:
            return out
    if not isinstance(item, dict):
        data = attr(item, "data")
        if isinstance(data, str) and hasattr(item, "event"):
            replaced = _replace_in_sse_data(data, old, new)
            if replaced is not None:
                return with_field(item, "data", replaced)
    return MISS


def _replace_in_sse_data(data: str, old: str, new: str) -> str | None:
    try:
        obj = json.loads(data)
    except ValueError:
        return new if data == old else None
    if isinstance(obj, dict):
        out = replace_text(obj, old, new)
        if out is MISS:
            return None
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"))
    if isinstance(obj, str) and obj == old:
        return json.dumps(new, ensure_ascii=False)
    return None


def merge_key(item: Any) -> tuple[Any, ...] | None:
    """Identity of the text a content item belongs to; adjacent items with equal keys may be
    merged into one (``None``: never merge)."""
    if isinstance(item, str):
        return ("str",)
    for fmt in _formats:
        key = fmt.merge_key(item)
        if key is not None:
            return (fmt.name, *key)
    return None


def with_text(item: Any, text: str) -> Any:
    """A copy of mergeable content item ``item`` carrying ``text`` instead (see
    :func:`merge_key`)."""
    if isinstance(item, str):
        return text
    for fmt in _formats:
        if fmt.merge_key(item) is not None:
            out = fmt.with_text(item, text)
            if out is not MISS:
                return out
    raise TypeError(f"cannot merge text into a {type(item).__name__}")
