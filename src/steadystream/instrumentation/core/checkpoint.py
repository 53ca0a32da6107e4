"""Checkpoints: exactly what a stream has delivered, so a resume can neither lose nor repeat it.

A :class:`Checkpoint` is a frozen snapshot: ``offset`` content bytes (UTF-8, never inside a
character), their ``sha256``, the number of content ``chunks``, the last upstream
``sequence_number`` and the ``response_id``. :class:`ContentHasher` builds them incrementally:
each content delta is hashed once, and a snapshot copies the hash state (``hashlib`` ``copy()``),
so checkpointing every N chunks costs O(delivered bytes) in total, never O(n^2).

Verifying a replayed prefix (what a resume does before it delivers anything new)::

    replay = ContentHasher()
    for text in replayed_deltas:
        replay.update_text(text)
        if replay.offset >= checkpoint.offset:
            break
    if not checkpoint.matches(replay):
        raise ResumeFailed("replay diverged", checkpoint=checkpoint)

:class:`PrefixVerifier` does that byte-exactly even when a replayed delta straddles the
checkpoint offset, and hands back the part of that delta that is new.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["EMPTY_SHA256", "Checkpoint", "ContentHasher", "PrefixVerifier"]

#: sha256 of zero bytes: the digest of a checkpoint taken before any content.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a stream delivered, exactly, up to a point.

    ``offset``: content bytes (UTF-8) delivered to the consumer; never inside a character.
    ``sha256``: hex digest of those bytes. ``chunks``: content chunks delivered.
    ``sequence_number``: the last upstream event number seen (Responses API
    ``sequence_number``), when the source has one. ``response_id``: when known.
    """

    offset: int = 0
    sha256: str = EMPTY_SHA256
    chunks: int = 0
    sequence_number: int | None = None
    response_id: str | None = None

    def matches(self, hasher: ContentHasher) -> bool:
        """True when ``hasher`` has seen exactly ``offset`` bytes with this digest."""
        return hasher.offset == self.offset and hasher.hexdigest() == self.sha256


class ContentHasher:
    """Running sha256 and byte count of delivered content; O(1) work per byte.

    Feed text with :meth:`update_text` (str, encoded as UTF-8) or bytes that are known to end on
    a character boundary with :meth:`update`.
    """

    __slots__ = ("_h", "offset")

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.offset = 0

    def update(self, data: bytes) -> None:
        """Add ``data`` (complete UTF-8 characters) to the content."""
        self._h.update(data)
        self.offset += len(data)

    def update_text(self, text: str) -> int:
        """Add ``text``; returns its length in UTF-8 bytes."""
        data = text.encode("utf-8", "surrogatepass")
        self._h.update(data)
        n = len(data)
        self.offset += n
        return n

    def hexdigest(self) -> str:
        """Digest of everything so far (the running state is not disturbed)."""
        return self._h.copy().hexdigest()

    def snapshot(
        self,
        chunks: int,
        sequence_number: int | None = None,
        response_id: str | None = None,
    ) -> Checkpoint:
        """A :class:`Checkpoint` of the content so far."""
        return Checkpoint(
            offset=self.offset,
            sha256=self._h.copy().hexdigest(),
            chunks=chunks,
            sequence_number=sequence_number,
            response_id=response_id,
        )


class PrefixVerifier:
    """Checks that a replayed stream starts with exactly the checkpointed content.

    Feed each replayed content delta to :meth:`feed`. It returns the part of the delta beyond
    the checkpoint (``""`` while still inside the prefix) once the prefix is verified, and raises
    ``ValueError`` as soon as the replay is known to diverge: either the digest at
    ``checkpoint.offset`` differs, or a replayed character straddles the offset.
    """

    __slots__ = ("_checkpoint", "_hasher", "done")

    def __init__(self, checkpoint: Checkpoint) -> None:
        self._checkpoint = checkpoint
        self._hasher = ContentHasher()
        #: True once the whole prefix was replayed and matched.
        self.done = checkpoint.offset == 0

    def feed(self, text: str) -> str:
        """Consume one replayed delta; return its new (post-checkpoint) part."""
        if self.done:
            return text
        data = text.encode("utf-8", "surrogatepass")
        need = self._checkpoint.offset - self._hasher.offset
        if len(data) < need:
            self._hasher.update(data)
            return ""
        head, tail = data[:need], data[need:]
        self._hasher.update(head)
        if not self._checkpoint.matches(self._hasher):
            raise ValueError(
                f"replayed content diverges from the checkpoint at offset "
                f"{self._checkpoint.offset} (sha256 {self._checkpoint.sha256[:12]}…)"
            )
        try:
            rest = tail.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"replayed content puts a character across checkpoint offset "
                f"{self._checkpoint.offset}"
            ) from exc
        self.done = True
        return rest
