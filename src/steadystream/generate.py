"""Turn one spec into every deployable artifact: rules, dashboards and runbooks.

The renderers are pure (``spec -> {relative path: file text}``); this module combines them and
owns the only file-system side of generation: an atomic write of the output directory and a
check mode that reports, as a unified diff, how a directory differs from what the spec produces.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import spec_digest

__all__ = ["Source"]


@dataclass(frozen=True)
class Source:
    """Where a spec came from, as named in every generated file's header.

    ``name`` is the spec path exactly as the user gave it (``examples/chat-gateway/slo.yaml``),
    never resolved against the working directory, so the same command run from the same place
    produces the same bytes on every machine. ``sha256`` is the hex digest of the spec file's
    bytes (:func:`steadystream.spec.spec_digest`), so a header proves which spec version a file
    was generated from.
    """

    name: str
    sha256: str

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> Source:
        """The source for a spec file called ``name`` whose content is ``data``."""
        return cls(name=name, sha256=spec_digest(data))
