"""Where a spec came from, as every generated file's header names it."""

from __future__ import annotations

from dataclasses import dataclass

from ..spec import spec_digest

__all__ = ["Source"]


@dataclass(frozen=True)
class Source:
    """Where a spec came from, as named in every generated file's header.

    ``name`` is how the header names the spec; ``sha256`` is the hex digest of the spec file's
    bytes (:func:`steadystream.spec.spec_digest`), so a header proves which version of the
    spec a file was generated from. The CLI names the spec by its path relative to the output
    directory (:func:`source_for`), which does not depend on where the command runs.
    """

    name: str
    sha256: str

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> Source:
        """The source for a spec file called ``name`` whose content is ``data``."""
        return cls(name=name, sha256=spec_digest(data))
