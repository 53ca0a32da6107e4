"""Where a spec came from, as every generated file's header names it."""

from __future__ import annotations

from dataclasses import dataclass

from ..spec import Spec, spec_digest

__all__ = ["Source"]


@dataclass(frozen=True)
class Source:
    """Where a spec came from, as named in every generated file's header.

    ``name`` is how the header names the spec; ``sha256`` is the digest of the spec's
    normalised model (:func:`steadystream.spec.spec_digest`), so a header proves which spec a
    file was generated from, while a comment or a reformatting of the spec file leaves every
    generated file as it is. The CLI names the spec by its path relative to the output
    directory (``steadystream.generate.source_for``), which does not depend on where the
    command runs.
    """

    name: str
    sha256: str

    @classmethod
    def from_spec(cls, name: str, spec: Spec) -> Source:
        """The source for the loaded ``spec``, called ``name`` in headers."""
        return cls(name=name, sha256=spec_digest(spec))

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> Source:
        """The source for the spec text ``data`` (parsed to digest its model)."""
        return cls(name=name, sha256=spec_digest(data))
