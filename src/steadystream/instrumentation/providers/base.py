"""The neutral vocabulary between the wire formats and the core, and the format protocol.

A wire format (one module per format in this package) reads its items into :class:`Reading`
objects: content of some text, lifecycle, keep-alive, an in-band error of some class, the end.
The core, the shells and the policies only ever see readings; they never name a wire event
type. A format implements :class:`WireFormat` (subclass :class:`BaseFormat` for the defaults)
and is added with :func:`~.registry.register`.

Also here: the duck-typed field access every format shares (:func:`attr`, :func:`get`, which
never import an SDK) and :func:`with_field`, a copy of an item with one field changed.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any, Final, NamedTuple, Protocol

__all__ = [
    "CONTENT",
    "END",
    "ERROR",
    "KEEPALIVE",
    "LIFECYCLE",
    "MISS",
    "STARTED",
    "UNKNOWN",
    "BaseFormat",
    "DeltaFields",
    "DeltaText",
    "FastPath",
    "Reading",
    "ResponseMeta",
    "WireFormat",
    "attr",
    "declare_delta_fields",
    "declare_delta_text",
    "deep_copy",
    "delta_fields",
    "delta_text",
    "get",
    "int_field",
    "str_field",
    "text_fast_path",
    "with_field",
]

#: Content delta: counts for first token, idle, bytes, gaps and checkpoints.
CONTENT: Final = 0
#: Lifecycle event: keeps the stream alive, is not a token.
LIFECYCLE: Final = 1
#: Keep-alive with nothing in it (SSE comment, empty string).
KEEPALIVE: Final = 2
#: The upstream reported a failure inside the stream (``Reading.error_class`` says which).
ERROR: Final = 3
#: The upstream said the stream is complete.
END: Final = 4
#: The stream announced its start, so it must end with a terminal event (an item of kind END
#: or ERROR); a stream that stops without one was cut short.
STARTED: Final = 5
#: No registered format recognises the item. It is proof of activity, not content: it stops the
#: attempt's first-token clock and restarts the idle clock (a flowing stream of a shape the
#: wrapper does not know is never cut for being unknown), but counts no bytes and no first
#: token. The registry logs one warning per unknown type.
UNKNOWN: Final = 6


class ResponseMeta:
    """What the upstream said about the response as a whole, read from a lifecycle item (the
    Responses API's ``response.completed``, Chat Completions' closing and usage chunks,
    Anthropic's ``message_start`` / ``message_delta``, or a registered format's own). Every
    field is optional; ``None`` means "this item does not say".

    * ``input_tokens`` / ``output_tokens``: usage as the request reported it so far. Within one
      request a later report replaces an earlier one (Anthropic's ``message_delta`` usage is
      cumulative); over the requests of a logical stream (retries, resumes, continuations) the
      core adds them up. Input tokens include cached ones (the conventions'
      ``gen_ai.usage.input_tokens``).
    * ``finish_reasons``: why generation stopped, one per choice finished in this item, in the
      provider's own words (``stop``, ``length``, ``end_turn``, ...).
    * ``response_model``: the model that actually answered (``gen_ai.response.model``).
    """

    __slots__ = ("finish_reasons", "input_tokens", "output_tokens", "response_model")

    def __init__(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        finish_reasons: tuple[str, ...] = (),
        response_model: str | None = None,
    ) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.finish_reasons = finish_reasons
        self.response_model = response_model

    def __repr__(self) -> str:
        return (
            f"ResponseMeta(input_tokens={self.input_tokens!r}, "
            f"output_tokens={self.output_tokens!r}, finish_reasons={self.finish_reasons!r}, "
            f"response_model={self.response_model!r})"
        )


class Reading:
    """What one item means. ``text`` is set for :data:`CONTENT`, ``error_class`` for
    :data:`ERROR`; ``sequence_number`` and ``response_id`` when the item carries them.
    ``status``: for an in-band error, the HTTP status it stands for when the format says so
    (Anthropic's ``overloaded_error`` event is a 529 that arrived inside a 200 stream); the
    retry policy reads it like a response status. ``meta``: usage, finish reasons and the
    response model, when the item reports them (:class:`ResponseMeta`; lifecycle, end and
    error items; a content item only in the rare shape that carries both, such as a Chat
    chunk with the last text and its ``finish_reason``)."""

    __slots__ = (
        "error_class",
        "kind",
        "meta",
        "response_id",
        "sequence_number",
        "status",
        "text",
    )

    def __init__(
        self,
        kind: int,
        text: str = "",
        sequence_number: int | None = None,
        response_id: str | None = None,
        error_class: str | None = None,
        status: int | None = None,
        meta: ResponseMeta | None = None,
    ) -> None:
        self.kind = kind
        self.text = text
        self.sequence_number = sequence_number
        self.response_id = response_id
        self.error_class = error_class
        self.status = status
        self.meta = meta


class _Miss:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISS"


#: Returned by a :data:`FastPath` (and by :class:`BaseFormat` defaults) for "not mine / not
#: the everyday shape": the caller takes the general path.
MISS: Final[Any] = _Miss()

#: ``fast(core, item, t)``: feed one item of a format's everyday shape straight to the core
#: (``core.on_content(text, sequence_number, t)``) and return what the core returned, or
#: :data:`MISS` to send the item down the general path (``core.on_reading(read_item(item))``).
#: Per-chunk code: no allocation, no exception on the common path.
FastPath = Callable[[Any, Any, float], Any]


class DeltaFields(NamedTuple):
    """Where the text deltas a :data:`FastPath` reads keep their fields, when they lie flat in
    the item's ``__dict__`` (pydantic models): an item whose field ``type_key`` equals
    ``type_value`` is a delta, with its text in ``text_key`` and its sequence number in
    ``sequence_key``. A non-empty ``str`` text is content: the fast path calls
    ``core.on_content(text, sequence_number, t)`` for it and for nothing else.

    The shells' per-item loops read these three fields themselves, one call fewer per chunk,
    and hand every other item (a field missing, an empty text, the class's other events) to
    the fast path. Declared with :func:`declare_delta_fields`."""

    type_key: str
    type_value: str
    text_key: str
    sequence_key: str


def declare_delta_fields(fast: FastPath, fields: DeltaFields) -> None:
    """Say where ``fast``'s text deltas keep their fields (see :class:`DeltaFields`)."""
    fast.delta_fields = fields  # type: ignore[attr-defined]


def delta_fields(fast: FastPath) -> DeltaFields | None:
    """The :class:`DeltaFields` declared for ``fast``, else ``None``."""
    return getattr(fast, "delta_fields", None)


#: ``text_of(core, item)``: for a format whose deltas nest their text, which
#: :class:`DeltaFields` cannot say. It returns the text of an item of a :data:`FastPath`'s
#: class when the fast path would make exactly one call for it,
#: ``core.on_content(text, None, t)``, and ``None`` for every other item (a field missing, a
#: chunk of another shape): the fast path then decides. It reads ``core`` and never changes
#: it. The shells' per-item loops call it instead of the fast path, one call fewer per chunk.
#: Declared with :func:`declare_delta_text`.
DeltaText = Callable[[Any, Any], "str | None"]


def declare_delta_text(fast: FastPath, text_of: DeltaText) -> None:
    """Say how to take the text of ``fast``'s plain content items (see :data:`DeltaText`)."""
    fast.delta_text = text_of  # type: ignore[attr-defined]


def delta_text(fast: FastPath) -> DeltaText | None:
    """The :data:`DeltaText` declared for ``fast``, else ``None``."""
    return getattr(fast, "delta_text", None)


def text_fast_path(text_of: DeltaText) -> FastPath:
    """The fast path of a class whose only content items are those ``text_of`` takes: it calls
    ``core.on_content(text, None, t)`` for them and is a :data:`MISS` for every other item.
    Declared with ``text_of``."""

    def fast(core: Any, item: Any, t: float) -> Any:
        text = text_of(core, item)
        return MISS if text is None else core.on_content(text, None, t)

    declare_delta_text(fast, text_of)
    return fast


class WireFormat(Protocol):
    """One wire format (OpenAI Responses, Chat Completions, ...). Every method gets items of
    any format and answers ``None`` / :data:`MISS` / ``False`` for items that are not its own,
    so the registry can ask the formats in turn."""

    #: Short name (``openai_responses``); for logs and the registry.
    name: str

    def read(self, item: Any) -> Reading | None:
        """What ``item`` (a dict or an SDK object) means, or ``None`` when it is not of this
        format."""

    def read_sse_data(self, data: str) -> Reading | None:
        """An SSE ``data`` payload this format gives a meaning of its own before any JSON
        parsing (a sentinel such as Chat Completions' end marker), else ``None``."""

    def fast_path(self, item: Any) -> FastPath | None:
        """A :data:`FastPath` for items of ``type(item)`` when this format has one, else
        ``None``. Asked once per item class (the answer is kept for the class until a format
        is registered or removed; ``dict`` and other generic classes are asked per stream), so
        the fast path must hand an item unlike the one it was picked for back as
        :data:`MISS`."""

    def replace_text(self, item: Any, old: str, new: str) -> Any:
        """A copy of content item ``item`` whose text ``old`` is ``new`` (resume trims a
        replayed delta to its unseen suffix), or :data:`MISS`."""

    def merge_key(self, item: Any) -> tuple[Any, ...] | None:
        """Identity of the text a content item belongs to: two adjacent items with equal keys
        may be merged into one (relay ``drop`` policy). ``None``: never merge."""

    def with_text(self, item: Any, text: str) -> Any:
        """A copy of mergeable content item ``item`` carrying ``text`` (see :meth:`merge_key`),
        or :data:`MISS`."""

    def is_progress(self, item: Any) -> bool:
        """A progress event a slow consumer can do without (never content or a terminal)."""

    def describe_error(self, item: Any) -> str | None:
        """A short message for an in-band error item (code and message, never content)."""


class BaseFormat:
    """Defaults for :class:`WireFormat`: a format overrides what it supports."""

    name = "base"

    def read(self, item: Any) -> Reading | None:
        return None

    def read_sse_data(self, data: str) -> Reading | None:
        return None

    def fast_path(self, item: Any) -> FastPath | None:
        return None

    def replace_text(self, item: Any, old: str, new: str) -> Any:
        return MISS

    def merge_key(self, item: Any) -> tuple[Any, ...] | None:
        return None

    def with_text(self, item: Any, text: str) -> Any:
        return MISS

    def is_progress(self, item: Any) -> bool:
        return False

    def describe_error(self, item: Any) -> str | None:
        return None


_MISSING: Any = object()
# (class, attribute name) -> whether the class itself has it (a property, a method, a class
# attribute). Keys are a handful of field names, classes are the SDK's: the cache stays small.
_CLASS_HAS: dict[tuple[type, str], bool] = {}


def attr(obj: Any, key: str) -> Any:
    """``getattr(obj, key, None)``, minus the exception a pydantic model raises for a field it
    does not have.

    SDK objects are pydantic models. Asking one for a missing attribute runs pydantic's
    ``__getattr__``, which raises AttributeError: 4-8 us, several times per chunk on Chat
    Completions streams (a ``ChatCompletionChunk`` has no ``type``, a ``ChoiceDelta`` no
    ``reasoning_content``), ten times the rest of the per-chunk path. Fields live in the
    instance ``__dict__`` and extra fields in ``__pydantic_extra__``, so those are read first;
    ``getattr`` remains for everything else (properties, plain objects, slots).
    """
    d = getattr(obj, "__dict__", None)
    if d is not None:
        value = d.get(key, _MISSING)
        if value is not _MISSING:
            return value
        extra = getattr(obj, "__pydantic_extra__", _MISSING)
        if extra is not _MISSING:
            if extra and key in extra:
                return extra[key]
            cls = type(obj)
            has = _CLASS_HAS.get((cls, key))
            if has is None:
                has = _CLASS_HAS[(cls, key)] = hasattr(cls, key)
            if not has:
                return None
    return getattr(obj, key, None)


def get(obj: Any, key: str) -> Any:
    """A field of a dict or an object (``None`` when absent)."""
    if isinstance(obj, dict):
        return obj.get(key)
    return attr(obj, key)


def int_field(obj: Any, key: str) -> int | None:
    """An integer field (a token count) of a dict or an object, ``None`` when absent or not an
    ``int`` (a ``bool`` is not a count)."""
    if obj is None:
        return None
    value = get(obj, key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def str_field(obj: Any, key: str) -> str | None:
    """A non-empty string field of a dict or an object, else ``None``."""
    if obj is None:
        return None
    value = get(obj, key)
    return value if isinstance(value, str) and value else None


def with_field(item: Any, name: str, value: Any) -> Any:
    """A shallow copy of ``item`` (a pydantic model, a dataclass or a plain object) with field
    ``name`` set to ``value``; ``item`` itself is not changed."""
    if hasattr(item, "model_copy"):  # pydantic (openai SDK events)
        return item.model_copy(update={name: value})
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.replace(item, **{name: value})
    out = copy.copy(item)
    setattr(out, name, value)
    return out


def deep_copy(item: Any) -> Any:
    """A deep copy of ``item`` (pydantic's own copy for SDK models)."""
    if hasattr(item, "model_copy"):
        return item.model_copy(deep=True)
    return copy.deepcopy(item)
