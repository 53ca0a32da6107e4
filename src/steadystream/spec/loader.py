"""Load a spec from YAML, reporting every problem as ``file:line:col: path: message``."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from . import limits
from .model import Loc, Spec, _dotted, semantic_problems

__all__ = [
    "Document",
    "Locator",
    "Problem",
    "SpecError",
    "default_spec",
    "load_spec",
    "parse_documents",
    "parse_spec",
    "read_spec_text",
    "spec_digest",
    "validate_mapped",
]


@dataclass(frozen=True)
class Problem:
    """One problem in a spec file, at a 1-based line and column."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __post_init__(self) -> None:
        # Keys and values come from the file: escape what would break the one-line format (a
        # newline, a terminal escape) and cut what would flood it (a 100,000-character key).
        object.__setattr__(self, "path", _printable(self.path))
        object.__setattr__(self, "message", _printable(self.message))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


def _printable(text: str) -> str:
    cleaned = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode()
        for ch in text
    )
    if len(cleaned) > limits.MAX_PROBLEM_TEXT:
        cleaned = cleaned[: limits.MAX_PROBLEM_TEXT] + "…"
    return cleaned


class SpecError(ValueError):
    """The spec is invalid. ``str()`` gives one ``file:line:col: path: message`` line per
    problem; ``problems`` holds them as :class:`Problem` objects."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = [str(p) for p in problems[: limits.MAX_PRINTED_PROBLEMS]]
        if len(problems) > limits.MAX_PRINTED_PROBLEMS:
            first = problems[limits.MAX_PRINTED_PROBLEMS]
            more = len(problems) - limits.MAX_PRINTED_PROBLEMS
            shown.append(
                str(Problem(first.file, first.line, first.column, "", f"and {more} more problems"))
            )
        super().__init__("\n".join(shown))


@dataclass(frozen=True)
class _Mark:
    line: int  # 1-based
    column: int  # 1-based


def _mark(node: yaml.Node, *, end: bool = False) -> _Mark:
    m = node.end_mark if end else node.start_mark
    return _Mark(m.line + 1, m.column + 1)


_KEY_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _key_aliases(node: yaml.Node) -> tuple[object, ...]:
    """How Pydantic may name a non-string scalar key: its value (``1`` for ``1:``) and its
    ``repr`` (``'None'`` for ``~:``); empty for a string key."""
    if not isinstance(node, yaml.ScalarNode) or len(node.value) > 100:
        return ()
    try:
        value = _KEY_CONSTRUCTOR.construct_object(node, deep=True)
        hash(value)
    except Exception:  # a key that cannot be built was already reported by the loader
        return ()
    return () if isinstance(value, str) else (value, repr(value))


class _Index:
    """Positions of every key and value in the YAML document, by path."""

    def __init__(self) -> None:
        self.keys: dict[Loc, _Mark] = {}
        self.values: dict[Loc, _Mark] = {}
        self.duplicates: list[tuple[Loc, _Mark, _Mark]] = []

    def walk(self, node: yaml.Node, loc: Loc) -> None:
        self.values[loc] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, _Mark] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else key_node.id
                child = (*loc, key)
                # Pairs a merge key (<<: *base) brought in sit elsewhere in the file; the
                # mapping's own keys override them, as YAML says.
                merged = not (
                    node.start_mark.index <= key_node.start_mark.index <= node.end_mark.index
                )
                if merged:
                    self.keys.setdefault(child, _mark(key_node))
                    self.walk(value_node, child)
                    continue
                # Pydantic names a non-string key by its value (1, None, a date): find it so.
                for alias in _key_aliases(key_node):
                    self.keys.setdefault((*loc, alias), _mark(key_node))
                    self.values.setdefault((*loc, alias), _mark(value_node))
                if key in seen:
                    self.duplicates.append((child, _mark(key_node), seen[key]))
                seen[key] = _mark(key_node)
                self.keys[child] = _mark(key_node)
                self.walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.walk(item, (*loc, i))

    def locate(self, loc: Loc, *, key: bool = False) -> _Mark:
        """The position of ``loc``, or of its nearest ancestor present in the file."""
        probe = tuple(loc)
        if key and probe in self.keys:
            return self.keys[probe]
        while probe:
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), _Mark(1, 1))


def _pydantic_loc(raw: tuple[int | str, ...]) -> Loc:
    # Pydantic adds validator names to a location ("function-after[...]"); they are not fields.
    return tuple(p for p in raw if isinstance(p, int) or "[" not in str(p))


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see `steadystream schema`)"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        return f"{err['msg'].lower()}, got {err.get('input')!r}"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    # Pydantic's own messages ("Input should be ...") start in capitals; ours do not.
    return msg[:1].lower() + msg[1:]


def _valid(model: type[Any], value: object) -> Any | None:
    try:
        return model.model_validate(value)
    except ValidationError:
        return None


def _partial_cross_problems(data: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Cross-field checks over whichever SLOs, tiers and period validated on their own."""
    from .model import DEFAULT_SLOS, DEFAULT_TIERS, SLO, Tier, cross_problems
    from .units import parse_duration

    try:
        period = parse_duration(data.get("period", "28d"))
    except ValueError:
        return []
    raw_slos = data.get("slos", DEFAULT_SLOS)
    alerting = data.get("alerting")
    raw_tiers = (
        alerting.get("tiers", DEFAULT_TIERS) if isinstance(alerting, dict) else DEFAULT_TIERS
    )
    if not isinstance(raw_slos, list | tuple) or not isinstance(raw_tiers, list | tuple):
        return []
    slos = [(i, s) for i, raw in enumerate(raw_slos) if (s := _valid(SLO, raw)) is not None]
    tiers = [(j, t) for j, raw in enumerate(raw_tiers) if (t := _valid(Tier, raw)) is not None]
    problems = cross_problems(
        period,
        slos,
        tiers,
        tiers_from_defaults=not (isinstance(alerting, dict) and "tiers" in alerting),
    )
    # An SLO that failed on another field still claims its name: a later valid SLO with the
    # same name is a duplicate now, not only after the first one is fixed.
    valid = {i for i, _ in slos}
    first: dict[str, int] = {}
    for i, raw in enumerate(raw_slos):
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str):
            continue
        if name in first and (first[name] not in valid or i not in valid):
            problems.append(
                (
                    ("slos", i, "name"),
                    f"duplicate SLO name {name!r} (first used by slos[{first[name]}])",
                )
            )
        first.setdefault(name, i)
    return problems


def _split(message: str) -> list[tuple[str | None, str]]:
    """Undo the ``@field: message`` encoding of cross-field problems (see model._field_problems)."""
    out: list[tuple[str | None, str]] = []
    for line in message.split("\n"):
        if line.startswith("@") and ": " in line:
            field, _, rest = line[1:].partition(": ")
            out.append((field, rest))
        else:
            out.append((None, line))
    return out


class _Refused(yaml.MarkedYAMLError):
    """A document past one of the :mod:`limits`, refused while it is being composed."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the :mod:`limits` applied while composing, before anything
    is expanded or walked, and with every constructor failure turned into a located error.

    PyYAML's parser and scanner are iterative; only composing and constructing recurse, so
    a depth bound checked on the way down keeps them far from Python's recursion limit.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._nodes = 0
        self._aliases = 0
        self._sizes: dict[str, int] = {}  # anchor -> nodes once expanded
        self._open: set[str] = set()  # anchors of the nodes being composed

    def _count(self, n: int, mark: yaml.Mark) -> None:
        self._nodes += n
        if self._nodes > limits.MAX_NODES:
            raise _Refused(
                problem=f"the document expands to more than {limits.MAX_NODES} nodes "
                "(through aliases, or simply too large); a spec needs a few hundred",
                problem_mark=mark,
            )

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            self._aliases += 1
            if self._aliases > limits.MAX_ALIASES:
                raise _Refused(
                    problem=f"more than {limits.MAX_ALIASES} aliases (*name); "
                    "write the values out instead",
                    problem_mark=event.start_mark,
                )
            if event.anchor in self._open:
                raise _Refused(
                    problem=f"alias *{event.anchor} is inside the node it names "
                    "(a recursive structure)",
                    problem_mark=event.start_mark,
                )
            size = self._sizes.get(event.anchor, 1)
            if self._nodes + size > limits.MAX_NODES:
                raise _Refused(
                    problem=f"aliases expand the document to more than {limits.MAX_NODES} "
                    "nodes; write the values out instead",
                    problem_mark=event.start_mark,
                )
            self._count(size, event.start_mark)
            return super().compose_node(parent, index)
        event = self.peek_event()
        if self._depth >= limits.MAX_DEPTH:
            raise _Refused(
                problem=f"nested deeper than {limits.MAX_DEPTH} levels",
                problem_mark=event.start_mark,
            )
        anchor = getattr(event, "anchor", None)
        before = self._nodes
        self._count(1, event.start_mark)
        self._depth += 1
        if anchor is not None:
            self._open.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open.discard(anchor)
        if anchor is not None:
            self._sizes[anchor] = self._nodes - before
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            value = super().construct_object(node, deep)
            if isinstance(value, str) and not value.isascii():
                # "\ud800" in double quotes is a lone surrogate: no file, label or header
                # could ever be written with it.
                value.encode("utf-8")
            return value
        except UnicodeEncodeError as exc:
            raise yaml.constructor.ConstructorError(
                problem=f"invalid Unicode: lone surrogate {exc.object[exc.start]!r} "
                "(escape a character outside the BMP as \\UXXXXXXXX)",
                problem_mark=node.start_mark,
            ) from None
        except yaml.YAMLError:
            raise
        except Exception as exc:  # PyYAML's constructors on a value they do not expect
            # PyYAML's int/float/timestamp constructors trust the tag: `!!int abc`, an empty
            # `!!int` (IndexError), `!!timestamp 2020-02-30` or a 5,000-digit integer raise
            # plain Python errors; whichever it is, it is this value's problem.
            detail = str(exc).split("\n", 1)[0] if not isinstance(exc, AttributeError) else ""
            value = node.value if isinstance(node, yaml.ScalarNode) else ""
            raise yaml.constructor.ConstructorError(
                problem=f"cannot read {value[:40]!r} as {_tag(node.tag)}"
                + (f" ({detail})" if detail else ""),
                problem_mark=node.start_mark,
            ) from None


def _tag(tag: str) -> str:
    return "!!" + tag.rsplit(":", 1)[-1] if tag.startswith("tag:yaml.org,2002:") else tag


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


#: PyYAML contexts that name where a flow collection or quoted scalar was opened.
_UNCLOSED_CONTEXTS = (
    "while parsing a flow sequence",
    "while parsing a flow mapping",
    "while scanning a quoted scalar",
)


def _yaml_problem(exc: yaml.YAMLError, text: str, filename: str) -> Problem:
    """One located line for any PyYAML error (its own ``str()`` spans several lines and names
    ``"<unicode string>"``)."""
    if isinstance(exc, yaml.reader.ReaderError):
        line, col = _position(text, exc.position)
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return Problem(
            filename,
            line,
            col,
            "",
            f"unacceptable character #x{char:04x}: control and non-characters are not "
            'allowed in YAML (quote it as an escape, e.g. "\\t")',
        )
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if isinstance(exc, _Refused):
            return Problem(filename, line, col, "", f"refused: {problem}")
        opened = exc.context_mark
        if (
            opened is not None
            and exc.problem
            and (exc.context or "").startswith(_UNCLOSED_CONTEXTS)
            and opened.line + 1 < line
            and ("end of stream" in exc.problem or "<stream end>" in exc.problem)
        ):
            # An unclosed [, { or quote: PyYAML notices it at the end of the file, but the
            # fix is where it was opened.
            opener = text[opened.index : opened.index + 1] if opened.index < len(text) else ""
            return Problem(
                filename,
                opened.line + 1,
                opened.column + 1,
                "",
                f"YAML syntax error: this {opener!r} is never closed (the file ends at line "
                f"{line}; {exc.context})",
            )
        if exc.context and exc.problem:
            where = exc.context_mark
            at = f" at line {where.line + 1}" if where and where.line + 1 != line else ""
            problem = f"{problem} ({exc.context}{at})"
        kind = (
            "YAML syntax error"
            if isinstance(exc, yaml.scanner.ScannerError | yaml.parser.ParserError)
            else "YAML error"
        )
        return Problem(filename, line, col, "", f"{kind}: {problem}")
    return Problem(
        filename,
        1,
        1,
        "",
        f"YAML error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
    )


def _compose(text: str, filename: str, *, single: bool = False) -> list[tuple[Any, yaml.Node]]:
    """Every YAML document of ``text`` as (data, node), bounded by :mod:`limits` (over all
    documents together); a located :class:`SpecError` for any YAML problem, and with
    ``single`` for a second document."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.MAX_SPEC_BYTES:
        raise SpecError([_too_large(filename, size)])
    loader: _BoundedLoader | None = None
    docs: list[tuple[Any, yaml.Node]] = []
    try:
        # The reader checks every character when the loader is built: inside the try.
        loader = _BoundedLoader(text)
        if single:
            node = loader.get_single_node()
            if node is not None:
                docs.append((loader.construct_document(node), node))
        while not single and loader.check_node():
            node = loader.get_node()
            if node is not None:
                docs.append((loader.construct_document(node), node))
    except yaml.YAMLError as exc:
        raise SpecError([_yaml_problem(exc, text, filename)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return docs


def _empty(filename: str) -> SpecError:
    return SpecError(
        [
            Problem(
                filename,
                1,
                1,
                "",
                "the file is empty; a spec needs at least 'version: 1' and 'service: <name>'",
            )
        ]
    )


class Document:
    """One YAML document of a file: its ``data`` and where each of its fields sits."""

    def __init__(self, filename: str, data: Any, node: yaml.Node) -> None:
        self.filename = filename
        self.data = data
        self._index = _Index()
        self._index.walk(node, ())

    def position(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of ``loc`` (its key with ``key``), or of its nearest
        ancestor present in the document."""
        m = self._index.locate(loc, key=key)
        return m.line, m.column

    def problem(self, loc: Loc, message: str, *, key: bool = False) -> Problem:
        """A :class:`Problem` at ``loc`` of this document."""
        line, column = self.position(loc, key=key)
        return Problem(self.filename, line, column, _dotted(loc), message)

    def duplicate_problems(self) -> list[Problem]:
        """A problem per key set twice in one mapping."""
        return [
            Problem(
                self.filename,
                here.line,
                here.column,
                _dotted(loc),
                f"duplicate key (already set at line {first.line})",
            )
            for loc, here, first in self._index.duplicates
        ]


def parse_documents(text: str, filename: str = "<spec>", *, single: bool = False) -> list[Document]:
    """Every YAML document of ``text`` (``---``-separated), bounded like :func:`parse_spec`,
    with the positions of their fields; a located :class:`SpecError` for YAML problems (with
    ``single``, for a second document too)."""
    return [
        Document(filename, data, node) for data, node in _compose(text, filename, single=single)
    ]


#: Where a field of a spec built from another document came from: the spec's location in,
#: the document and location out (see :func:`validate_mapped`).
Locator = Callable[[Loc, bool], tuple[int, int]]


def parse_spec(text: str, filename: str = "<spec>") -> Spec:
    """Parse and validate spec ``text``; ``filename`` is used in error messages.

    Bounded by :mod:`steadystream.spec.limits`: past any bound, a located :class:`SpecError`.
    """
    docs = parse_documents(text, filename, single=True)
    if not docs:
        raise _empty(filename)
    doc = docs[0]
    if not isinstance(doc.data, dict):
        line, col = doc.position(())
        raise SpecError(
            [Problem(filename, line, col, "", "the spec must be a YAML mapping of fields")]
        )
    return validate_mapped(
        doc.data,
        filename,
        lambda loc, key: doc.position(loc, key=key),
        doc.duplicate_problems(),
    )


def validate_mapped(
    data: dict[str, Any],
    filename: str,
    locate: Locator,
    problems: list[Problem] | None = None,
) -> Spec:
    """Validate spec ``data`` (a mapping of fields), placing each problem with ``locate``
    (a spec location and whether the key is meant, to a 1-based line and column of
    ``filename``); ``problems`` found before (duplicate keys) are reported with them."""
    problems = list(problems or [])
    spec: Spec | None = None
    cross: list[tuple[Loc, str]]
    try:
        spec = Spec.model_validate(data, context={"defer_semantic_checks": True})
    except ValidationError as exc:
        errors = exc.errors()
        failed = [_pydantic_loc(e["loc"]) for e in errors]
        for err in errors:
            loc = _pydantic_loc(err["loc"])
            # A list whose items failed is also "too short" once they are dropped; say it once.
            if err["type"] == "too_short" and any(
                f[: len(loc)] == loc and f != loc for f in failed
            ):
                continue
            for sub, message in _split(_message(err)):
                where = (*loc, sub) if sub else loc
                line, col = locate(where, err["type"] == "extra_forbidden")
                problems.append(Problem(filename, line, col, _dotted(where), message))
        cross = _partial_cross_problems(data)
    else:
        cross = semantic_problems(spec)
    for loc, msg in cross:
        line, col = locate(loc, False)
        problems.append(Problem(filename, line, col, _dotted(loc), msg))
    if problems:
        problems.sort(key=lambda p: (p.line, p.column))
        raise SpecError(problems)
    assert spec is not None
    return spec


def read_spec_text(path: str | os.PathLike[str]) -> str:
    """The text of the spec file at ``path``: a located :class:`SpecError` for a missing
    file, a directory, a file over the size bound or one that is not UTF-8."""
    p = Path(path)
    name = str(path)
    if p.is_dir():
        raise SpecError([Problem(name, 1, 1, "", "is a directory, not a spec file")])
    try:
        with p.open("rb") as fh:
            # One byte past the bound tells "too large" without reading a huge file whole.
            raw = fh.read(limits.MAX_SPEC_BYTES + 1)
            if len(raw) > limits.MAX_SPEC_BYTES:
                raise SpecError([_too_large(name, os.fstat(fh.fileno()).st_size)])
    except FileNotFoundError:
        raise SpecError([Problem(name, 1, 1, "", "no such file")]) from None
    except OSError as exc:
        raise SpecError([Problem(name, 1, 1, "", f"cannot read: {exc.strerror}")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError([Problem(name, line, 1, "", "the file is not valid UTF-8")]) from None


def load_spec(path: str | os.PathLike[str]) -> Spec:
    """Load and validate the spec at ``path``.

    Raises :class:`SpecError` (its ``str()`` has one ``file:line:col: path: message`` line per
    problem) for a missing file, a directory, an empty file, YAML syntax errors and every
    invalid field, all reported at once.
    """
    return parse_spec(read_spec_text(path), str(path))


def _too_large(filename: str, size: int) -> Problem:
    return Problem(
        filename,
        1,
        1,
        "",
        f"the file is {size} bytes, over the limit of {limits.MAX_SPEC_BYTES} bytes for a spec",
    )


def default_spec(service: str) -> Spec:
    """The baseline spec for ``service``: p95 TTFT < 2.5 s, p99 recovery < 8 s, errors < 1 %,
    timeouts 1 s / 1 s / 3 s / 8 s / 45 s, 3 retries from 300 ms, 512 KiB buffer cap,
    checkpoint every 16 chunks."""
    return Spec.model_validate({"version": 1, "service": service})


def spec_digest(spec: Spec | str | bytes) -> str:
    """sha256 hex digest of a spec's normalised model, as written in generated headers.

    The digest is of the loaded :class:`Spec` (every value in its canonical unit), without
    the fields left at their defaults, serialised as sorted, compact JSON: comments, key order,
    quoting, indentation, equivalent spellings (``99%`` and ``0.99``, ``1h`` and ``60m``) and
    spelling out a default do not change it, and any change to what the spec sets does. A new
    release that adds a field with a default leaves every digest as it was. Spec text (``str``
    or UTF-8 ``bytes``) is parsed first (:class:`SpecError` when it is invalid).
    """
    if not isinstance(spec, Spec):
        text = spec.decode("utf-8") if isinstance(spec, bytes) else spec
        spec = parse_spec(text)
    canonical = json.dumps(
        spec.model_dump(mode="json", by_alias=True, exclude_defaults=True),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
