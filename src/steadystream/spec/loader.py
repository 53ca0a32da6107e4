"""Load a spec from YAML, reporting every problem as ``file:line:col: path: message``."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .model import Loc, Spec, _dotted, semantic_problems

__all__ = ["Problem", "SpecError", "default_spec", "load_spec", "parse_spec", "spec_digest"]


@dataclass(frozen=True)
class Problem:
    """One problem in a spec file, at a 1-based line and column."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(ValueError):
    """The spec is invalid. ``str()`` gives one ``file:line:col: path: message`` line per
    problem; ``problems`` holds them as :class:`Problem` objects."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class _Mark:
    line: int  # 1-based
    column: int  # 1-based


def _mark(node: yaml.Node, *, end: bool = False) -> _Mark:
    m = node.end_mark if end else node.start_mark
    return _Mark(m.line + 1, m.column + 1)


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
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
                child = (*loc, key)
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
    problems = cross_problems(period, slos, tiers)
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


def parse_spec(text: str, filename: str = "<spec>") -> Spec:
    """Parse and validate spec ``text``; ``filename`` is used in error messages."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            what = exc.problem or "invalid YAML"
            raise SpecError(
                [Problem(filename, line, col, "", f"YAML syntax error: {what}")]
            ) from None
        except yaml.YAMLError as exc:
            raise SpecError([Problem(filename, 1, 1, "", f"YAML error: {exc}")]) from None
        if node is None:
            raise SpecError(
                [
                    Problem(
                        filename,
                        1,
                        1,
                        "",
                        "the file is empty; a spec needs at least "
                        "'version: 1' and 'service: <name>'",
                    )
                ]
            )
        try:
            data = loader.construct_document(node)
        except yaml.YAMLError as exc:
            m = getattr(exc, "problem_mark", None)
            line, col = (m.line + 1, m.column + 1) if m else (1, 1)
            raise SpecError([Problem(filename, line, col, "", f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()

    index = _Index()
    index.walk(node, ())
    if not isinstance(data, dict):
        m = index.locate(())
        raise SpecError(
            [Problem(filename, m.line, m.column, "", "the spec must be a YAML mapping of fields")]
        )

    problems: list[Problem] = []
    for loc, here, first in index.duplicates:
        problems.append(
            Problem(
                filename,
                here.line,
                here.column,
                _dotted(loc),
                f"duplicate key (already set at line {first.line})",
            )
        )
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
                mark = index.locate(where, key=err["type"] == "extra_forbidden")
                problems.append(Problem(filename, mark.line, mark.column, _dotted(where), message))
        cross = _partial_cross_problems(data)
    else:
        cross = semantic_problems(spec)
    for loc, msg in cross:
        mark = index.locate(loc)
        problems.append(Problem(filename, mark.line, mark.column, _dotted(loc), msg))
    if problems:
        problems.sort(key=lambda p: (p.line, p.column))
        raise SpecError(problems)
    assert spec is not None
    return spec


def load_spec(path: str | os.PathLike[str]) -> Spec:
    """Load and validate the spec at ``path``.

    Raises :class:`SpecError` (its ``str()`` has one ``file:line:col: path: message`` line per
    problem) for a missing file, a directory, an empty file, YAML syntax errors and every
    invalid field, all reported at once.
    """
    p = Path(path)
    name = str(path)
    if p.is_dir():
        raise SpecError([Problem(name, 1, 1, "", "is a directory, not a spec file")])
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise SpecError([Problem(name, 1, 1, "", "no such file")]) from None
    except OSError as exc:
        raise SpecError([Problem(name, 1, 1, "", f"cannot read: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError([Problem(name, line, 1, "", "the file is not valid UTF-8")]) from None
    return parse_spec(text, name)


def default_spec(service: str) -> Spec:
    """The baseline spec for ``service``: p95 TTFT < 2.5 s, p99 recovery < 8 s, errors < 1 %,
    timeouts 1 s / 1 s / 3 s / 8 s / 45 s, 3 retries from 300 ms, 512 KiB buffer cap,
    checkpoint every 16 chunks."""
    return Spec.model_validate({"version": 1, "service": service})


def spec_digest(text: str | bytes) -> str:
    """sha256 hex digest of a spec file's bytes, as written in generated headers."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()
