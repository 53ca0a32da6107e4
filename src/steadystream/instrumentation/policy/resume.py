"""Exactly-once resume: continue an interrupted stream without losing or repeating content.

When an attempt breaks after the consumer has received content, the next attempt is opened with
the last :class:`~steadystream.Checkpoint` (``offset`` + ``sha256`` of the content delivered, the
last ``sequence_number``, the ``response_id``). The source answers in one of two ways, and
:class:`Resumer` handles both, per item, without buffering:

* **Replay from an earlier point** (a generic ``opener(checkpoint)`` that can only start over, or
  from some earlier offset): the replayed content up to ``checkpoint.offset`` is hashed
  incrementally and compared with ``checkpoint.sha256`` before anything new is delivered. A
  replayed delta that straddles the offset is split, and only its new part reaches the consumer.
  Replayed lifecycle events (the stream's start again) are skipped. A divergent replay raises
  :class:`~steadystream.ResumeFailed`; divergent text is never delivered.
* **Continue by sequence number** (the Responses API's
  ``GET /responses/{id}?stream=true&starting_after=N``): events numbered ``<= N`` are duplicates
  and skipped (their content still verified against the hash when present), and the first new
  event must be number ``N + 1``; a gap means events were lost and raises ``ResumeFailed``.

Items are read by the provider layer (:mod:`..providers`), so the shapes the
wrapper understands (``str``, Responses events as SDK objects or dicts, Chat Completions chunks,
SSE events) all resume. A raw byte stream cannot be split at a content offset without rewriting
its framing, so byte sources are retried only before their first content.

Example, resuming a generic source that always replays from the start::

    resumer = Resumer(checkpoint)
    for item in replay:
        out = resumer.admit(item)
        if out is not SKIP:
            deliver(out)
    resumer.finish()  # raises ResumeFailed if the replay ended inside the prefix
"""

from __future__ import annotations

from typing import Any, Final

from ..core.checkpoint import Checkpoint, ContentHasher, PrefixVerifier
from ..errors import ResumeFailed
from ..providers import registry as wire
from ..providers.base import CONTENT, ERROR, MISS, Reading

__all__ = ["SKIP", "Resumer", "replace_text"]


class _Skip:
    __slots__ = ()

    def __repr__(self) -> str:
        return "SKIP"


#: Returned by :meth:`Resumer.admit` for an item the consumer already has.
SKIP: Final = _Skip()


class Resumer:
    """Gate one resumed attempt's items so the consumer sees each content byte exactly once.

    ``checkpoint`` is exactly what the consumer has received (not merely the last periodic
    checkpoint). After :attr:`done` turns true every item passes unchanged and the per-item cost
    is one attribute check.
    """

    __slots__ = ("_checkpoint", "_replayed", "_verifier", "done", "mode")

    def __init__(self, checkpoint: Checkpoint) -> None:
        self._checkpoint = checkpoint
        self._verifier = PrefixVerifier(checkpoint)
        # Content seen inside replayed (<= N) events, to check they stay within the prefix.
        self._replayed = ContentHasher()
        #: True once the replay has caught up and new items flow through unchanged.
        self.done = checkpoint.offset == 0 and checkpoint.sequence_number is None
        #: ``"sequence"`` or ``"offset"`` once the replay showed which kind it is.
        self.mode: str | None = None

    def _fail(self, message: str) -> ResumeFailed:
        return ResumeFailed(message, checkpoint=self._checkpoint)

    def admit(self, item: Any, reading: Reading | None = None) -> Any:
        """The item to deliver for ``item`` (itself, or a copy with its already-delivered
        leading text removed), or :data:`SKIP`. Raises :class:`~steadystream.ResumeFailed` when
        the replay diverges or has a gap."""
        if self.done:
            return item
        if reading is None:
            reading = wire.read_item(item)
        cp = self._checkpoint
        seq = reading.sequence_number
        if cp.sequence_number is not None and seq is not None:
            return self._admit_by_sequence(item, reading, seq, cp.sequence_number)
        if reading.kind != CONTENT:
            if reading.kind == ERROR:
                # A failure inside the replay is the new attempt's failure, not a replay.
                self.done = True
                return item
            if not self._verifier.done:
                return SKIP  # a replayed lifecycle event or keep-alive: the consumer has it
            if cp.sequence_number is None:
                self.done = True  # the prefix is verified; whatever follows is new
            # else: an unnumbered keep-alive while waiting for event N + 1; harmless to pass.
            return item
        self.mode = self.mode or "offset"
        try:
            new = self._verifier.feed(reading.text)
        except ValueError as exc:
            raise self._fail(f"resume failed: {exc}") from None
        if not self._verifier.done:
            return SKIP
        self.done = True
        if new == reading.text:
            return item
        if not new:
            return SKIP
        return replace_text(item, reading.text, new)

    def _admit_by_sequence(self, item: Any, reading: Reading, seq: int, last: int) -> Any:
        if seq <= last:
            if reading.kind == CONTENT:
                # A duplicate of something delivered: it must lie inside the prefix.
                self._replayed.update_text(reading.text)
                if self._replayed.offset > self._checkpoint.offset:
                    raise self._fail(
                        f"resume failed: replayed event {seq} carries content beyond checkpoint "
                        f"offset {self._checkpoint.offset}"
                    )
                try:
                    self._verifier.feed(reading.text)
                except ValueError as exc:
                    raise self._fail(f"resume failed: {exc}") from None
            return SKIP
        if seq != last + 1:
            raise self._fail(
                f"resume failed: the replay jumped from sequence {last} to {seq}; "
                f"{seq - last - 1} event(s) would be lost"
            )
        # Event numbers identify what was delivered. A replay from event 0 was also checked
        # against the hash above; one from a later event cannot be (the checkpoint hashes the
        # whole prefix), and the numbers are what the source guarantees.
        self.mode = "sequence"
        self.done = True
        return item

    def finish(self) -> None:
        """Call when the replay ends; raises if it ended before catching up with the checkpoint."""
        if self.done:
            return
        cp = self._checkpoint
        if cp.sequence_number is not None and self.mode != "offset":
            # Nothing after the last delivered event: the stream had in fact ended there.
            self.done = True
            return
        if not self._verifier.done:
            raise self._fail(
                f"resume failed: the replay ended before reaching the {cp.offset} bytes "
                "already delivered"
            )
        self.done = True


def replace_text(item: Any, old: str, new: str) -> Any:
    """A copy of ``item`` whose content text ``old`` is replaced by its suffix ``new``.

    Used when a replayed delta straddles the checkpoint offset. The wire format rewrites the
    item (:func:`~..providers.registry.replace_text`); a shape it cannot rewrite raises
    :class:`~steadystream.ResumeFailed` rather than deliver text twice.
    """
    out = wire.replace_text(item, old, new)
    if out is MISS:
        raise ResumeFailed(
            f"resume failed: cannot split a replayed {type(item).__name__} at the checkpoint offset"
        )
    return out
