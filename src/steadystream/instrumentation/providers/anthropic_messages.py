"""The Anthropic Messages wire format (``anthropic`` SDK events, dicts, raw SSE), and
continuation: resuming a cut Messages stream with the delivered text as assistant prefill.

Reading:

* ``content_block_delta`` is content: ``text_delta`` (``text``), ``thinking_delta``
  (``thinking``) and ``input_json_delta`` (``partial_json``, tool arguments); an empty one is a
  keep-alive. ``signature_delta`` and ``citations_delta`` are lifecycle.
* ``message_start`` starts a stream that must end with ``message_stop`` (its ``message.id`` is
  the response id); ``message_stop`` ends it. ``content_block_start`` / ``_stop`` and
  ``message_delta`` (``stop_reason``, ``usage``: see :func:`stop_reason`, :func:`usage`) are
  lifecycle; ``ping`` is a keep-alive. ``message_start`` (``message.model``, ``usage``) and
  ``message_delta`` (``stop_reason``, cumulative ``usage``) carry the response's
  :class:`~.base.ResponseMeta`; input tokens include the cached ones.
* ``error`` with a nested ``error`` object (``{"type": "error", "error": {"type":
  "overloaded_error", ...}}``) is an in-band error (``upstream_error_event``) carrying the HTTP
  status it stands for: ``overloaded_error`` 529, ``api_error`` 500, ``rate_limit_error`` 429,
  so the retry policy retries it like that status. (The Responses API's ``error`` event has no
  nested object and is left to that format.)

Over raw SSE the ``event:`` line names the type and ``data:`` carries the same JSON, so the
registry's SSE reading needs nothing more. Through the SDK, an ``error`` event is raised as an
``APIStatusError`` whose ``body`` is that JSON; :mod:`.failures` reads it here.

Continuation (:class:`Continuation`): Anthropic has no server-side resume. A stream cut after
content is continued by a new request whose last message is an assistant message holding
exactly the text already delivered (its trailing whitespace stripped: the API refuses an
assistant message ending in whitespace; the same whitespace is dropped from the continuation if
it repeats it). The new stream's events are rewritten so the consumer sees one well-formed
sequence: one ``message_start``, the content deltas, one ``message_stop``. Continuation is exact
for text only: once a ``tool_use``, ``thinking`` (or any non-text) block was delivered, a
prefill cannot reproduce it, and the resume fails (``ResumeFailed``) instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from ... import conventions as c
from .base import (
    CONTENT,
    END,
    ERROR,
    KEEPALIVE,
    LIFECYCLE,
    MISS,
    STARTED,
    BaseFormat,
    FastPath,
    Reading,
    ResponseMeta,
    attr,
    get,
    int_field,
    str_field,
    text_fast_path,
    with_field,
)

__all__ = [
    "ANTHROPIC",
    "TEXT_DELTA",
    "AnthropicFormat",
    "Continuation",
    "ContinuationError",
    "error_type",
    "stop_reason",
    "usage",
]

MESSAGE_START: Final = "message_start"
MESSAGE_DELTA: Final = "message_delta"
MESSAGE_STOP: Final = "message_stop"
BLOCK_START: Final = "content_block_start"
BLOCK_DELTA: Final = "content_block_delta"
BLOCK_STOP: Final = "content_block_stop"
PING: Final = "ping"
ERROR_EVENT: Final = "error"
#: The delta type nearly every content item of a Messages stream carries.
TEXT_DELTA: Final = "text_delta"
_TEXT_BLOCK: Final = "text"
# Content delta type -> the field holding its text.
_DELTA_TEXT_FIELD: Final = {
    TEXT_DELTA: "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}
_LIFECYCLE_TYPES: Final = frozenset({BLOCK_START, BLOCK_STOP})
#: In-band error types and the HTTP status each stands for (Anthropic's error reference).
ERROR_STATUS: Final[Mapping[str, int]] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_LIFECYCLE = Reading(LIFECYCLE)
_KEEPALIVE = Reading(KEEPALIVE)
_END = Reading(END)


def _type_of(item: Any) -> str | None:
    typ = item.get("type") if isinstance(item, dict) else attr(item, "type")
    return typ if isinstance(typ, str) else None


def _nested_error(item: Any) -> Any:
    err = get(item, "error")
    return err if err is not None and isinstance(get(err, "type"), str) else None


def error_type(body: Any) -> str | None:
    """The error type of an Anthropic error body or ``error`` event (``overloaded_error``...),
    or ``None`` when ``body`` is not one."""
    if body is None or _type_of(body) != ERROR_EVENT:
        return None
    err = _nested_error(body)
    return get(err, "type") if err is not None else None


def stop_reason(item: Any) -> str | None:
    """``stop_reason`` of a ``message_delta`` (``end_turn``, ``max_tokens``, ``tool_use``...)."""
    if _type_of(item) != MESSAGE_DELTA:
        return None
    value = get(get(item, "delta"), "stop_reason")
    return value if isinstance(value, str) else None


_CACHE_INPUT_FIELDS: Final = ("cache_read_input_tokens", "cache_creation_input_tokens")


def usage(item: Any) -> tuple[int | None, int | None]:
    """``(input_tokens, output_tokens)`` a ``message_start`` or ``message_delta`` reports.

    Input tokens as the GenAI conventions count them: Anthropic's ``input_tokens`` excludes
    cached tokens, so ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` are added
    (``None`` when the event reports no input count). ``message_delta`` counts are cumulative
    for the request."""
    typ = _type_of(item)
    if typ == MESSAGE_START:
        u = get(get(item, "message"), "usage")
    elif typ == MESSAGE_DELTA:
        u = get(item, "usage")
    else:
        return None, None
    if u is None:
        return None, None
    i = int_field(u, "input_tokens")
    if i is not None:
        for key in _CACHE_INPUT_FIELDS:
            i += int_field(u, key) or 0
    return i, int_field(u, "output_tokens")


def _meta(item: Any, typ: str) -> ResponseMeta:
    """Usage, model (``message_start``) and stop reason (``message_delta``) of an event."""
    i, o = usage(item)
    if typ == MESSAGE_START:
        return ResponseMeta(
            input_tokens=i, output_tokens=o, response_model=str_field(get(item, "message"), "model")
        )
    reason = stop_reason(item)
    return ResponseMeta(input_tokens=i, output_tokens=o, finish_reasons=(reason,) if reason else ())


def _delta_text(delta: Any) -> tuple[str | None, str | None]:
    """(field, text) of a content block delta; field ``None`` when it carries no content."""
    field = _DELTA_TEXT_FIELD.get(get(delta, "type"))  # type: ignore[arg-type]
    if field is None:
        return None, None
    text = get(delta, field)
    return (field, text) if isinstance(text, str) else (None, None)


def _read(item: Any, typ: str) -> Reading | None:
    if typ == BLOCK_DELTA:
        field, text = _delta_text(get(item, "delta"))
        if field is None:
            return _LIFECYCLE
        return Reading(CONTENT, text) if text else _KEEPALIVE  # type: ignore[arg-type]
    if typ in _LIFECYCLE_TYPES:
        return _LIFECYCLE
    if typ == MESSAGE_DELTA:
        return Reading(LIFECYCLE, meta=_meta(item, typ))
    if typ == MESSAGE_START:
        rid = get(get(item, "message"), "id")
        return Reading(
            STARTED, response_id=rid if isinstance(rid, str) else None, meta=_meta(item, typ)
        )
    if typ == MESSAGE_STOP:
        return _END
    if typ == PING:
        return _KEEPALIVE
    if typ == ERROR_EVENT:
        err = _nested_error(item)
        if err is None:
            return None  # not Anthropic's error shape (the Responses API's ``error``)
        return Reading(
            ERROR,
            error_class=c.ERROR_CLASS_UPSTREAM_EVENT,
            status=ERROR_STATUS.get(get(err, "type")),
        )
    return None


def _dict_text(core: Any, item: dict[str, Any]) -> str | None:
    """The text of a ``text_delta`` content block delta in a parsed event; ``None`` for any
    other event (:data:`.base.DeltaText`)."""
    if item.get("type") == BLOCK_DELTA:
        delta = item.get("delta")
        if type(delta) is dict and delta.get("type") == TEXT_DELTA:
            text = delta.get("text")
            if type(text) is str and text:
                return text
    return None


def _object_text(core: Any, item: Any) -> str | None:
    """:func:`_dict_text` for an SDK event. SDK events are pydantic models with their fields in
    the instance ``__dict__``: reading it keeps events without a field off pydantic's
    ``__getattr__`` (see :func:`.base.attr`)."""
    fields = getattr(item, "__dict__", None)
    if fields is None or fields.get("type") != BLOCK_DELTA:
        return None
    try:  # plain attribute reads: an SDK text delta always has both fields
        delta = fields["delta"]
        if delta.type != TEXT_DELTA:
            return None
        text = delta.text
    except (KeyError, AttributeError):
        return None
    return text if type(text) is str and text else None


_fast_dict = text_fast_path(_dict_text)
_fast_object = text_fast_path(_object_text)


def _with_delta_text(item: Any, text: str) -> Any:
    delta = get(item, "delta")
    field, _ = _delta_text(delta)
    if field is None:
        return MISS
    if isinstance(item, dict):
        return {**item, "delta": {**delta, field: text}}
    return with_field(item, "delta", with_field(delta, field, text))


class AnthropicFormat(BaseFormat):
    """:class:`~.base.WireFormat` of Anthropic Messages (see the module docstring)."""

    name = "anthropic_messages"

    def read(self, item: Any) -> Reading | None:
        typ = _type_of(item)
        return _read(item, typ) if typ is not None else None

    def fast_path(self, item: Any) -> FastPath | None:
        typ = _type_of(item)
        if typ is None or typ == ERROR_EVENT or _read(item, typ) is None:
            return None
        return _fast_dict if type(item) is dict else _fast_object

    def replace_text(self, item: Any, old: str, new: str) -> Any:
        if _type_of(item) != BLOCK_DELTA:
            return MISS
        return _with_delta_text(item, new)

    def merge_key(self, item: Any) -> tuple[Any, ...] | None:
        if _type_of(item) != BLOCK_DELTA:
            return None
        delta = get(item, "delta")
        field, _ = _delta_text(delta)
        return None if field is None else (BLOCK_DELTA, get(item, "index"), get(delta, "type"))

    def with_text(self, item: Any, text: str) -> Any:
        return _with_delta_text(item, text)

    def is_progress(self, item: Any) -> bool:
        return _type_of(item) == PING

    def describe_error(self, item: Any) -> str | None:
        err = _nested_error(item) if _type_of(item) == ERROR_EVENT else None
        if err is None:
            return None
        parts = [ERROR_EVENT, f"[{get(err, 'type')}]"]
        message = get(err, "message")
        if message:
            parts.append(str(message))
        return " ".join(parts)


#: The Anthropic Messages format, registered by :mod:`.registry`.
ANTHROPIC: Final = AnthropicFormat()


# ------------------------------------------------------------------------------ continuation


class ContinuationError(Exception):
    """Continuation cannot be exact (a non-text block was delivered, an unsupported prefill)."""


def _with_index(item: Any, index: int) -> Any:
    if get(item, "index") == index:
        return item
    if isinstance(item, dict):
        return {**item, "index": index}
    return with_field(item, "index", index)


def _message_text(message: Any) -> str:
    content = get(message, "content")
    if isinstance(content, str):
        return content
    parts = []
    for block in content or ():
        if get(block, "type") != _TEXT_BLOCK:
            raise ContinuationError(
                "the request's own assistant prefill holds a non-text block; continuation "
                "needs a text prefill"
            )
        parts.append(get(block, "text") or "")
    return "".join(parts)


class Continuation:
    """What a Messages stream's consumer has received, and how to continue it exactly.

    :meth:`observe` is called with every event the consumer received, in order. When the stream
    breaks, :meth:`messages` gives the continuation request's ``messages`` (the delivered text
    as the last, assistant, message) and :meth:`adapter` the rewriting of the new stream's
    events into the rest of the one sequence the consumer sees.
    """

    def __init__(self, messages: Sequence[Any]) -> None:
        self._messages = list(messages)
        self._parts: list[str] = []
        self.started = False
        self._blocks: dict[int, str] = {}  # delivered block index -> block type
        self._open: int | None = None  # a delivered block started but not stopped
        self.inexact: str | None = None

    # -- what was delivered

    def observe(self, item: Any) -> None:
        """The consumer received ``item``."""
        typ = _type_of(item)
        if typ == MESSAGE_START:
            self.started = True
        elif typ == BLOCK_START:
            index = get(item, "index")
            kind = get(get(item, "content_block"), "type")
            if isinstance(index, int):
                self._blocks[index] = kind if isinstance(kind, str) else "?"
                self._open = index
            if kind != _TEXT_BLOCK and self.inexact is None:
                self.inexact = f"a {kind} block was delivered"
        elif typ == BLOCK_STOP:
            if get(item, "index") == self._open:
                self._open = None
        elif typ == BLOCK_DELTA:
            field, text = _delta_text(get(item, "delta"))
            if field == "text":
                self._parts.append(text or "")
            elif field is not None and self.inexact is None:
                self.inexact = f"a {get(get(item, 'delta'), 'type')} was delivered"

    @property
    def text(self) -> str:
        """The text delivered so far (all text deltas, in order)."""
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    # -- the next request

    def messages(self) -> tuple[list[Any], str]:
        """The continuation request's ``messages`` and the whitespace stripped from the end of
        its prefill (to drop from the continuation if it repeats it). Raises
        :class:`ContinuationError` when continuation cannot be exact."""
        if self.inexact is not None:
            raise ContinuationError(
                f"continuation cannot be exact: {self.inexact} (only text can be prefilled)"
            )
        messages = list(self._messages)
        prefill = self.text
        if messages and get(messages[-1], "role") == "assistant":
            # The request brought its own prefill: the answer continues it.
            prefill = _message_text(messages.pop()) + prefill
        kept = prefill.rstrip()
        stripped = prefill[len(kept) :]
        if kept:
            messages.append({"role": "assistant", "content": kept})
        return messages, stripped if self._parts else ""

    def adapter(self, stripped: str) -> Callable[[Any], Any]:
        """A function from each event of the continuation stream to the event to deliver
        (rewritten: block indexes shifted onto the delivered ones, repeated whitespace dropped),
        or :data:`~.base.MISS` for an event the consumer already has (the second
        ``message_start``, the start of the text block being continued)."""
        started = self.started
        open_block = self._open
        base = open_block if open_block is not None else len(self._blocks)
        pending = [stripped]
        continuing = [open_block is not None]

        def adapt(item: Any) -> Any:
            typ = _type_of(item)
            if typ == MESSAGE_START:
                return MISS if started else item
            if typ not in (BLOCK_START, BLOCK_DELTA, BLOCK_STOP):
                return item
            index = get(item, "index")
            if not isinstance(index, int):
                return item
            if typ == BLOCK_START and index == 0 and continuing[0]:
                if get(get(item, "content_block"), "type") != _TEXT_BLOCK:
                    raise ContinuationError(
                        "continuation cannot be exact: the continuation began with a non-text "
                        "block while a text block was open"
                    )
                return MISS  # the consumer has this block's start already
            out = _with_index(item, base + index)
            if typ == BLOCK_DELTA and pending[0] and index == 0:
                field, text = _delta_text(get(item, "delta"))
                if field == "text" and text:
                    ws = pending[0]
                    n = 0
                    while n < len(ws) and n < len(text) and text[n] == ws[n]:
                        n += 1
                    pending[0] = ws[n:] if n == len(text) else ""
                    if n:
                        if n == len(text):
                            return MISS  # all of it repeats whitespace the consumer has
                        out = _with_delta_text(out, text[n:])
            return out

        return adapt
