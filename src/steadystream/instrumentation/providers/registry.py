"""Duck-typed reading of stream items: what is content, what is lifecycle, what is an error.

Nothing here imports ``openai``, ``httpx`` or ``httpx2``; items are recognised by shape:

* Responses API events, as SDK objects or dicts: ``type`` ``response.<...>.delta`` with a string
  ``delta`` is content (output text, refusal, reasoning, function-call arguments, ...);
  ``response.created`` / ``in_progress`` / ``completed`` carry ``response.id``;
  ``error``, ``response.failed`` and ``response.incomplete`` mark the stream as failed.
  ``sequence_number`` is read when present.
* Chat Completions chunks, as SDK objects or dicts: ``choices[i].delta`` with ``content``,
  ``refusal``, ``reasoning_content`` or ``tool_calls[j].function.arguments`` is content; ``id``
  is the response id.
* ``str``: a text delta (empty strings are keep-alives).
* :class:`~steadystream.instrumentation.reassembly.ServerSentEvent`: ``data`` parsed as JSON
  and read as above (``[DONE]`` ends the stream).

:func:`classify` returns a :class:`Reading`; the kinds are small ints so the per-chunk path is
cheap.
"""

from __future__ import annotations

import json
from typing import Any

from ... import conventions as c

__all__ = [
    "CONTENT",
    "END",
    "ERROR",
    "KEEPALIVE",
    "LIFECYCLE",
    "STARTED",
    "Reading",
    "classify",
    "classify_exception",
    "classify_json_text",
]

#: Content delta: counts for first token, idle, bytes, gaps and checkpoints.
CONTENT = 0
#: Lifecycle event (``response.created``, ...): keeps the stream alive, is not a token.
LIFECYCLE = 1
#: Keep-alive with nothing in it (SSE comment, empty string).
KEEPALIVE = 2
#: The upstream reported a failure inside the stream.
ERROR = 3
#: The upstream said the stream is complete (``response.completed``, ``[DONE]``).
END = 4
#: ``response.created``: a Responses stream began, so it must end with a terminal event.
STARTED = 5


class Reading:
    """What one item means. ``text`` is set for :data:`CONTENT`, ``error_class`` for
    :data:`ERROR`; ``sequence_number`` and ``response_id`` when the item carries them."""

    __slots__ = ("error_class", "kind", "response_id", "sequence_number", "text")

    def __init__(
        self,
        kind: int,
        text: str = "",
        sequence_number: int | None = None,
        response_id: str | None = None,
        error_class: str | None = None,
    ) -> None:
        self.kind = kind
        self.text = text
        self.sequence_number = sequence_number
        self.response_id = response_id
        self.error_class = error_class


_KEEPALIVE = Reading(KEEPALIVE)
_LIFECYCLE = Reading(LIFECYCLE)
_END_READING = Reading(END)

_ERROR_TYPES = {
    "error": c.ERROR_CLASS_UPSTREAM_EVENT,
    "response.failed": c.ERROR_CLASS_RESPONSE_FAILED,
    "response.incomplete": c.ERROR_CLASS_RESPONSE_INCOMPLETE,
}
_RESPONSE_ID_TYPES = frozenset({"response.in_progress", "response.queued"})


_MISSING: Any = object()
# (class, attribute name) -> whether the class itself has it (a property, a method, a class
# attribute). Keys are a handful of field names, classes are the SDK's: the cache stays small.
_CLASS_HAS: dict[tuple[type, str], bool] = {}


def _attr(obj: Any, key: str) -> Any:
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


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    return _attr(obj, key)


def _typed(item: Any, typ: str, getter: Any) -> Reading:
    """A Responses API event with ``type`` ``typ``."""
    seq = getter(item, "sequence_number")
    if typ.endswith(".delta"):
        delta = getter(item, "delta")
        if isinstance(delta, str):
            if delta:
                return Reading(CONTENT, delta, seq)
            return Reading(KEEPALIVE, "", seq)
        return Reading(LIFECYCLE, "", seq)
    if typ in _ERROR_TYPES:
        resp = getter(item, "response")
        rid = _get(resp, "id") if resp is not None else None
        return Reading(ERROR, "", seq, rid if isinstance(rid, str) else None, _ERROR_TYPES[typ])
    if typ == "response.completed":
        resp = getter(item, "response")
        rid = _get(resp, "id") if resp is not None else None
        return Reading(END, "", seq, rid if isinstance(rid, str) else None)
    if typ == "response.created":
        resp = getter(item, "response")
        rid = _get(resp, "id") if resp is not None else None
        return Reading(STARTED, "", seq, rid if isinstance(rid, str) else None)
    if typ in _RESPONSE_ID_TYPES:
        resp = getter(item, "response")
        rid = _get(resp, "id") if resp is not None else None
        return Reading(LIFECYCLE, "", seq, rid if isinstance(rid, str) else None)
    return Reading(LIFECYCLE, "", seq) if seq is not None else _LIFECYCLE


def _chat(item: Any, choices: Any, getter: Any) -> Reading:
    """A Chat Completions chunk."""
    rid = getter(item, "id")
    rid = rid if isinstance(rid, str) else None
    parts: list[str] = []
    for choice in choices or ():
        delta = _get(choice, "delta")
        if delta is None:
            continue
        for key in ("content", "refusal", "reasoning_content"):
            val = _get(delta, key)
            if isinstance(val, str) and val:
                parts.append(val)
        for call in _get(delta, "tool_calls") or ():
            fn = _get(call, "function")
            args = _get(fn, "arguments") if fn is not None else None
            if isinstance(args, str) and args:
                parts.append(args)
    if parts:
        return Reading(CONTENT, parts[0] if len(parts) == 1 else "".join(parts), None, rid)
    return Reading(LIFECYCLE, "", None, rid)


def _dict_get(d: dict[str, Any], key: str) -> Any:
    return d.get(key)


def classify(item: Any) -> Reading:
    """Read one upstream item (see the module docstring for the shapes understood)."""
    if isinstance(item, str):
        return Reading(CONTENT, item) if item else _KEEPALIVE
    if isinstance(item, dict):
        typ = item.get("type")
        if isinstance(typ, str):
            return _typed(item, typ, _dict_get)
        if "choices" in item:
            return _chat(item, item.get("choices"), _dict_get)
        if "error" in item:
            return Reading(ERROR, error_class=c.ERROR_CLASS_UPSTREAM_EVENT)
        return _LIFECYCLE
    typ = _attr(item, "type")
    if isinstance(typ, str):
        return _typed(item, typ, _attr)  # read with a default: SDK events lack fields
    choices = _attr(item, "choices")
    if choices is not None:
        return _chat(item, choices, _attr)
    data = _attr(item, "data")
    if isinstance(data, str) and hasattr(item, "event"):
        return classify_json_text(data, _attr(item, "event"))
    return _LIFECYCLE


def classify_json_text(data: str, event: str | None = None) -> Reading:
    """Read an SSE event's ``data`` (JSON) and ``event`` name."""
    if data.startswith("[DONE]"):
        return _END_READING
    try:
        obj = json.loads(data)
    except ValueError:
        # Not JSON: a plain-text SSE stream, where the data itself is the content.
        return Reading(CONTENT, data) if data else _KEEPALIVE
    if isinstance(obj, dict):
        if "type" not in obj and event and event != "message":
            obj = {**obj, "type": event}
        return classify(obj)
    if isinstance(obj, str):
        return Reading(CONTENT, obj) if obj else _KEEPALIVE
    return _LIFECYCLE


_NETWORK_NAMES = frozenset(
    {
        "APIConnectionError",
        "ConnectError",
        "ConnectionError",
        "NetworkError",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
        "ProtocolError",
        "TransportError",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "APITimeoutError",
        "IncompleteRead",
    }
)


def classify_exception(exc: BaseException) -> str:
    """The ``error_class`` label for an exception out of an upstream, by duck typing.

    steadystream errors carry their own class; an HTTP status (``status_code`` on the openai
    SDK's ``APIStatusError``, ``response.status_code`` on httpx's ``HTTPStatusError``) maps to
    rate-limited / 5xx / 4xx; connect timeouts and transport failures are recognised by class
    name, so no client library is imported.
    """
    from ..errors import StreamError

    if isinstance(exc, StreamError):
        status = getattr(exc, "status", None)
        if exc.error_class == c.ERROR_CLASS_OTHER and isinstance(status, int):
            return _status_class(status)
        return exc.error_class
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int) and status >= 400:
        return _status_class(status)
    for cls in type(exc).__mro__:
        name = cls.__name__
        if name == "ConnectTimeout":
            return c.ERROR_CLASS_CONNECT_TIMEOUT
        if name in _NETWORK_NAMES:
            return c.ERROR_CLASS_NETWORK
    return c.ERROR_CLASS_OTHER


def _status_class(status: int) -> str:
    if status == 429:
        return c.ERROR_CLASS_RATE_LIMITED
    if status >= 500:
        return c.ERROR_CLASS_UPSTREAM_5XX
    return c.ERROR_CLASS_UPSTREAM_4XX
