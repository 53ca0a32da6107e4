"""What both importers share: a spec under construction that remembers, for every field it
sets, where in the source document the value came from."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..spec.loader import Document, Problem, SpecError
from ..spec.model import Loc


class Builder:
    """The steadystream spec being built from one or more source documents.

    ``origin`` maps each spec location set to (document, source location), so a problem the
    spec finds in a mapped value is reported at the source field it came from.
    """

    def __init__(self) -> None:
        self.data: dict[str, Any] = {"version": 1}
        self.origin: dict[Loc, tuple[Document, Loc]] = {}
        self.problems: list[Problem] = []
        self.notes: list[str] = []

    def set(self, loc: Loc, value: Any, doc: Document, src: Loc) -> None:
        """Set the spec field at ``loc`` (creating mappings and list items on the way)."""
        node: Any = self.data
        for i, part in enumerate(loc[:-1]):
            nxt = loc[i + 1]
            if isinstance(part, int):
                while len(node) <= part:
                    node.append({})
                node = node[part]
            else:
                node = node.setdefault(part, [] if isinstance(nxt, int) else {})
        last = loc[-1]
        if isinstance(last, int):
            while len(node) <= last:
                node.append({})
            node[last] = value
        else:
            node[last] = value
        self.origin[loc] = (doc, src)

    def refuse(self, doc: Document, src: Loc, message: str, *, key: bool = True) -> None:
        """Record a source field that cannot be mapped (reported with every other one)."""
        self.problems.append(doc.problem(src, message, key=key))

    def locate(self, loc: Loc, key: bool) -> tuple[int, int]:
        """Where the spec field at ``loc`` came from: its longest prefix that was set."""
        probe = tuple(loc)
        while probe:
            if probe in self.origin:
                doc, src = self.origin[probe]
                rest = loc[len(probe) :]
                return doc.position((*src, *rest), key=key)
            probe = probe[:-1]
        first = next(iter(self.origin.values()), None)
        return first[0].position(()) if first else (1, 1)

    def raise_problems(self) -> None:
        if self.problems:
            raise SpecError(sorted(self.problems, key=lambda p: (p.line, p.column)))


def unknown_keys(
    b: Builder, doc: Document, src: Loc, value: Any, known: Iterable[str], what: str
) -> None:
    """Refuse every key of mapping ``value`` (at ``src``) that is not ``known``."""
    if not isinstance(value, dict):
        return
    for key in value:
        if key not in known:
            b.refuse(
                doc,
                (*src, key),
                f"{what} field {key!r} cannot be mapped to a steadystream spec "
                "(see docs/import.md for what is)",
            )


def mapping(b: Builder, doc: Document, src: Loc, value: Any, what: str) -> dict[str, Any]:
    """``value`` if it is a mapping, else a refusal and ``{}``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        b.refuse(doc, src, f"{what} must be a mapping", key=False)
        return {}
    return value


def str_map(b: Builder, doc: Document, src: Loc, value: Any, what: str) -> dict[str, str]:
    """A mapping of strings (YAML numbers and booleans as their text), refusing the rest."""
    out: dict[str, str] = {}
    for k, v in mapping(b, doc, src, value, what).items():
        if isinstance(v, bool):
            out[str(k)] = "true" if v else "false"
        elif isinstance(v, str | int | float):
            out[str(k)] = str(v)
        else:
            b.refuse(doc, (*src, k), f"{what} values must be strings", key=False)
    return out
