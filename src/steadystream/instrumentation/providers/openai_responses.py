"""The OpenAI Responses API wire format (events as SDK objects or dicts).

* ``type`` ``response.<...>.delta`` with a string ``delta`` is content (output text, refusal,
  reasoning, function-call arguments, ...); an empty one is a keep-alive.
* ``response.created`` starts a stream that must end with a terminal event;
  ``response.created`` / ``in_progress`` / ``queued`` / ``completed`` carry ``response.id``.
* ``response.completed`` ends it; ``error``, ``response.failed`` and ``response.incomplete`` are
  in-band failures (``response.incomplete`` is a truncated but legitimate end: the consumer
  gets the event and its reason).
* ``sequence_number`` is read when present (resume by ``starting_after``).
* Usage and the response model (:class:`~.base.ResponseMeta`) come from the ``response``
  object of ``response.completed``, ``response.incomplete`` and ``response.failed``
  (``usage.input_tokens`` / ``output_tokens``, ``model``); ``response.created`` gives the model
  early. Responses have no finish reason of their own: the finish reason recorded is the
  response's ``status`` (``completed``, ``failed``), or for ``response.incomplete`` its
  ``incomplete_details.reason`` (``max_output_tokens``, ``content_filter``).

Any other ``response.*`` item is a lifecycle event. Items whose ``type`` is neither
``response.*`` nor ``error`` are not this format's: the registry asks the other formats, and
an item none of them knows is read as unknown activity (see :data:`~.base.UNKNOWN`).

The fast path: ``response.output_text.delta``, nearly every item of a Responses stream, goes
straight to ``core.on_content`` with two plain field reads.
"""

from __future__ import annotations

from collections.abc import Callable
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
    DeltaFields,
    FastPath,
    Reading,
    ResponseMeta,
    attr,
    declare_delta_fields,
    get,
    int_field,
    str_field,
    with_field,
)

__all__ = ["RESPONSES", "TEXT_DELTA", "ResponsesFormat"]

#: The content event almost every item of a Responses stream is.
TEXT_DELTA: Final = "response.output_text.delta"
_CREATED: Final = "response.created"
_COMPLETED: Final = "response.completed"
_DELTA_SUFFIX: Final = ".delta"
_PREFIX: Final = "response."
_ERROR: Final = "error"
_ERROR_TYPES: Final = {
    "error": c.ERROR_CLASS_UPSTREAM_EVENT,
    "response.failed": c.ERROR_CLASS_RESPONSE_FAILED,
    "response.incomplete": c.ERROR_CLASS_RESPONSE_INCOMPLETE,
}
_RESPONSE_ID_TYPES: Final = frozenset({"response.in_progress", "response.queued"})
# Progress events a slow consumer can do without (relay ``drop`` policy).
_PROGRESS_TYPES: Final = frozenset({"response.queued", "response.in_progress"})
_PROGRESS_SUFFIXES: Final = (".in_progress", ".searching", ".interpreting", ".generating")

_LIFECYCLE = Reading(LIFECYCLE)


def _dict_get(d: dict[str, Any], key: str) -> Any:
    return d.get(key)


def _response_id(item: Any, getter: Callable[[Any, str], Any]) -> str | None:
    resp = getter(item, "response")
    rid = get(resp, "id") if resp is not None else None
    return rid if isinstance(rid, str) else None


def _meta(item: Any, getter: Callable[[Any, str], Any], *, final: bool) -> ResponseMeta | None:
    """Usage, model and finish reason of the ``response`` a lifecycle event carries (``final``:
    a terminal event, whose response is finished)."""
    resp = getter(item, "response")
    if resp is None:
        return None
    model = str_field(resp, "model")
    if not final:
        return ResponseMeta(response_model=model) if model else None
    u = get(resp, "usage")
    status = str_field(resp, "status")
    reason = (
        str_field(get(resp, "incomplete_details"), "reason") if status == "incomplete" else None
    )
    reason = reason or status
    return ResponseMeta(
        input_tokens=int_field(u, "input_tokens"),
        output_tokens=int_field(u, "output_tokens"),
        finish_reasons=(reason,) if reason else (),
        response_model=model,
    )


def _typed(item: Any, typ: str, getter: Callable[[Any, str], Any]) -> Reading:
    seq = getter(item, "sequence_number")
    if typ.endswith(_DELTA_SUFFIX):
        delta = getter(item, "delta")
        if isinstance(delta, str):
            if delta:
                return Reading(CONTENT, delta, seq)
            return Reading(KEEPALIVE, "", seq)
        return Reading(LIFECYCLE, "", seq)
    error_class = _ERROR_TYPES.get(typ)
    if error_class is not None:
        return Reading(
            ERROR,
            "",
            seq,
            _response_id(item, getter),
            error_class,
            meta=_meta(item, getter, final=True),
        )
    if typ == _COMPLETED:
        return Reading(
            END, "", seq, _response_id(item, getter), meta=_meta(item, getter, final=True)
        )
    if typ == _CREATED:
        return Reading(
            STARTED, "", seq, _response_id(item, getter), meta=_meta(item, getter, final=False)
        )
    if typ in _RESPONSE_ID_TYPES:
        return Reading(LIFECYCLE, "", seq, _response_id(item, getter))
    return Reading(LIFECYCLE, "", seq) if seq is not None else _LIFECYCLE


def _is_responses_type(typ: Any) -> bool:
    return isinstance(typ, str) and (typ.startswith(_PREFIX) or typ == _ERROR)


def _type_of(item: Any) -> str | None:
    typ = item.get("type") if isinstance(item, dict) else attr(item, "type")
    return typ if isinstance(typ, str) else None


def _fast_dict(core: Any, item: dict[str, Any], t: float) -> Any:
    if item.get("type") == TEXT_DELTA:
        text = item.get("delta")
        if type(text) is str and text:
            return core.on_content(text, item.get("sequence_number"), t)
    return MISS


def _fast_object(core: Any, item: Any, t: float) -> Any:
    # SDK events are pydantic models with their fields in the instance __dict__: reading it,
    # not getattr, keeps an item without ``type`` off pydantic's __getattr__ (~8 us a raise).
    fields = getattr(item, "__dict__", None)
    typ = fields.get("type") if fields is not None else getattr(item, "type", None)
    if typ == TEXT_DELTA:
        try:  # plain attribute reads: SDK delta events always have both fields
            text = item.delta
            seq = item.sequence_number
        except AttributeError:
            return MISS
        if type(text) is str and text:
            return core.on_content(text, seq, t)
    return MISS


def _fast_model(core: Any, item: Any, t: float) -> Any:
    # SDK events of a class whose instances keep their fields in __dict__ (pydantic models):
    # subscripts, no attribute lookup through the class. Anything unusual (a field missing,
    # say) takes the general object path. The shells' loops read a steady text delta
    # themselves (DeltaFields below), so this mostly sees a stream's first delta and the
    # other ``response.*`` events (its lifecycle: created, the parts added and done,
    # completed...). Those are read here as read() reads them: a format asked before this one
    # that read them would have kept their class off this fast path (registry.fast_path), so
    # the reading is the general one. The core is called after the try only: an error inside
    # it must not be taken for a field missing here.
    reading = None
    try:
        fields = item.__dict__
        typ = fields["type"]
        if typ == TEXT_DELTA:
            text = fields["delta"]
            seq = fields["sequence_number"]
        else:
            text = None
            if type(typ) is str and typ.startswith(_PREFIX):
                reading = _typed(item, typ, attr)
    except (AttributeError, KeyError):
        return _fast_object(core, item, t)
    if type(text) is str and text:
        return core.on_content(text, seq, t)
    if reading is not None:
        return core.on_reading(reading, t)
    return MISS


# Its text deltas, as the shells read them without calling it (see DeltaFields).
declare_delta_fields(_fast_model, DeltaFields("type", TEXT_DELTA, "delta", "sequence_number"))


class ResponsesFormat(BaseFormat):
    """:class:`~.base.WireFormat` of the OpenAI Responses API (see the module docstring)."""

    name = "openai_responses"

    def read(self, item: Any) -> Reading | None:
        if isinstance(item, dict):
            typ = item.get("type")
            return _typed(item, typ, _dict_get) if _is_responses_type(typ) else None
        typ = attr(item, "type")
        # Read with a default: SDK events lack fields.
        return _typed(item, typ, attr) if _is_responses_type(typ) else None

    def fast_path(self, item: Any) -> FastPath | None:
        if type(item) is dict:
            return _fast_dict if isinstance(item.get("type"), str) else None
        if not isinstance(attr(item, "type"), str):
            return None
        fields = getattr(item, "__dict__", None)
        return _fast_model if isinstance(fields, dict) and "type" in fields else _fast_object

    def replace_text(self, item: Any, old: str, new: str) -> Any:
        if isinstance(item, dict):
            return {**item, "delta": new} if isinstance(item.get("delta"), str) else MISS
        if isinstance(attr(item, "delta"), str) and _type_of(item) is not None:
            return with_field(item, "delta", new)
        return MISS

    def merge_key(self, item: Any) -> tuple[Any, ...] | None:
        typ = _type_of(item)
        if (
            typ is None
            or not typ.endswith(_DELTA_SUFFIX)
            or not isinstance(get(item, "delta"), str)
        ):
            return None
        if get(item, "logprobs"):
            return None  # per-token data would be lost by merging
        return (typ, get(item, "item_id"), get(item, "output_index"), get(item, "content_index"))

    def with_text(self, item: Any, text: str) -> Any:
        if isinstance(item, dict):
            return {**item, "delta": text}
        return with_field(item, "delta", text)

    def is_progress(self, item: Any) -> bool:
        typ = _type_of(item)
        return typ is not None and (typ in _PROGRESS_TYPES or typ.endswith(_PROGRESS_SUFFIXES))

    def describe_error(self, item: Any) -> str | None:
        typ = _type_of(item)
        if typ is None:
            return None
        code, message = get(item, "code"), get(item, "message")
        response = get(item, "response")
        if response is not None and code is None:
            err = get(response, "error")
            if err is not None:
                code, message = get(err, "code"), get(err, "message")
        parts = [typ]
        if code:
            parts.append(f"[{code}]")
        if message:
            parts.append(str(message))
        return " ".join(parts)


#: The Responses format, registered by :mod:`.registry`.
RESPONSES: Final = ResponsesFormat()
