"""Byte-stable YAML: sorted keys, two-space indent, no line folding, a header comment first.

The layout is PyYAML's block style with sequences indented under their key
(``rules:\\n  - record: ...``), as promtool's own examples and most hand-written rule files are.
:class:`_Dumper` is that layout, and the reference.

PyYAML builds a node graph and runs its pure-Python emitter over every node, which was most of
``generate``'s time for a spec with many SLOs (a promtool test file of 10 MB). The documents
written here are plain trees of a few kinds (mappings with string keys, lists, strings, numbers,
booleans, ``None``), and their layout is fixed, so :func:`_emit` writes the tree itself. What a
scalar looks like (plain, quoted, escaped, a literal block) is PyYAML's decision, not this
module's: every distinct scalar of a document is rendered by PyYAML once, in one list (by
libyaml when it is installed and the text is ASCII, where the two emitters agree; see
``tests/test_alerts_yaml.py``), and reused wherever it appears. A document this module does
not lay out with certainty (a key that is not short, printable ASCII; a keep-chomped ``|+``
block; a line break other than ``\\n``; a value of another type) is written by
:class:`_Dumper` instead, so the bytes are the same either way.
"""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as literal blocks and indents list items."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent sequences under their key (``rules:\n  - record: ...``).
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        # Shared label dicts would otherwise become &id001 anchors: valid YAML, unreadable.
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)

_CSafeDumper: type | None = getattr(yaml, "CSafeDumper", None)

_OPTIONS: dict[str, Any] = {
    "sort_keys": True,
    "default_flow_style": False,
    "allow_unicode": True,
    "indent": 2,
    # Never fold long PromQL over several lines: diffs stay one change per line.
    "width": 1_000_000,
}

#: Longest string laid out here; PyYAML starts folding long double-quoted strings near the width.
_MAX_SCALAR = 100_000
#: PyYAML writes a key of this many characters or more as a complex key (``? key``).
_MAX_SIMPLE_KEY = 128

#: Line breaks to YAML besides ``\n``; a string holding one is quoted over several lines.
_OTHER_BREAKS = frozenset("\x85\u2028\u2029")

_Scalar = str | int | float | bool | None
#: A rendered scalar: one line, or a literal block (its header and its lines, unindented).
_Rendered = str | tuple[str, list[str]]


class _Unsupported(Exception):
    """A document :func:`_layout` does not write with certainty."""


def _collect(data: Any) -> tuple[set[Any], set[str], dict[tuple[type, Any], _Scalar]]:
    """Every mapping key, distinct string and other distinct scalar of ``data``."""
    keys: set[Any] = set()
    strings: set[str] = set()
    others: dict[tuple[type, Any], _Scalar] = {}  # 1, 1.0 and True are equal, not the same
    stack = [data]
    pop, extend = stack.pop, stack.extend
    while stack:
        node = pop()
        kind = type(node)
        if kind is str:
            strings.add(node)
        elif kind is dict:
            keys.update(node)
            extend(node.values())
        elif kind is list:
            extend(node)
        elif kind in (int, float, bool) or node is None:
            others[(kind, node)] = node
        else:
            raise _Unsupported(kind.__name__)
    for k in keys:
        if (
            type(k) is not str
            or not k
            or len(k) >= _MAX_SIMPLE_KEY
            or not (k.isascii() and k.isprintable())  # no line breaks of any kind
        ):
            raise _Unsupported(f"key {k!r}")
    for value in strings:
        if len(value) > _MAX_SCALAR or _OTHER_BREAKS.intersection(value):
            # Folded near the width, or broken over lines at a column of PyYAML's choosing.
            raise _Unsupported("a very long string, or a line break other than \\n")
    return keys, strings, others


def _render_list(values: list[_Scalar], dumper: type) -> list[str]:
    """Each value of ``values`` (none of them multi-line) as PyYAML writes it as a list item."""
    if not values:
        return []
    text = yaml.dump(values, Dumper=dumper, **_OPTIONS)
    lines = text.split("\n")
    if lines[-1] != "" or len(lines) != len(values) + 1:
        raise _Unsupported("a scalar over several lines")
    out = []
    for line in lines[:-1]:
        if not line.startswith("- "):
            raise _Unsupported(line)
        out.append(line[2:])
    return out


def _render_block(value: str) -> _Rendered:
    """A multi-line string as PyYAML writes it as a mapping value."""
    lines = yaml.dump({"k": value}, Dumper=_Dumper, **_OPTIONS).split("\n")
    head = lines[0][3:]
    if len(lines) == 2:
        return head  # a quoted one-liner: the text does not allow a literal block
    if not head.startswith("|") or "+" in head or lines[-1] != "":
        raise _Unsupported(head)  # keep-chomping: the block's trailing lines are the value's
    body = lines[1:-1]
    if any(line and not line.startswith("  ") for line in body):
        raise _Unsupported(head)
    return head, [line[2:] for line in body]


def _render(values: list[_Scalar]) -> list[_Rendered]:
    """Each of ``values`` as PyYAML writes it."""
    out: list[_Rendered | None] = [None] * len(values)
    fast: list[int] = []  # libyaml writes these as PyYAML does
    slow: list[int] = []
    for i, value in enumerate(values):
        if type(value) is str and "\n" in value:
            out[i] = _render_block(value)
        elif _CSafeDumper is not None and (type(value) is not str or value.isascii()):
            fast.append(i)
        else:
            # libyaml and PyYAML disagree on which characters are printable (libyaml escapes
            # every character outside the Basic Multilingual Plane, for one).
            slow.append(i)
    for picked, dumper in ((fast, _CSafeDumper), (slow, _Dumper)):
        if picked:
            texts = _render_list([values[i] for i in picked], dumper)
            for i, text in zip(picked, texts, strict=True):
                out[i] = text
    return out  # type: ignore[return-value]


def _layout(data: dict[str, Any]) -> str:
    """``data`` in :class:`_Dumper`'s layout, written directly."""
    keys, strings, others = _collect(data)
    # Keys render as values do: short one-line keys are simple keys, with the same style.
    texts = list(strings | keys)
    by_text = dict(zip(texts, _render(texts), strict=True))
    by_other = dict(zip(others, _render(list(others.values())), strict=True))
    key_text: dict[str, str] = {}
    for k in keys:
        text = by_text[k]
        if not isinstance(text, str):
            raise _Unsupported(f"key {k!r}")
        key_text[k] = text
    out: list[str] = []
    # A mapping that appears more than once (one labels dict shared by many checks) at the same
    # column under a key: its lines, written once and copied after.
    laid: dict[tuple[int, int], list[str]] = {}

    def scalar(lead: str, value: Any, col: int) -> None:
        # ``lead`` ends with ``key: `` or ``- ``; a literal block's lines sit two columns in
        # from the key or dash that owns them (``col``).
        text = by_text[value] if type(value) is str else by_other[(type(value), value)]
        if isinstance(text, str):
            out.append(lead + text)
            return
        head, body = text
        out.append(lead + head)
        pad = " " * (col + 2)
        out.extend(pad + line if line else "" for line in body)

    def mapping(node: dict[str, Any], col: int, lead: str) -> None:
        pad = " " * col
        for i, k in enumerate(sorted(node)):
            v = node[k]
            prefix = f"{lead if i == 0 else pad}{key_text[k]}:"
            if type(v) is dict:
                if v:
                    out.append(prefix)
                    key = (id(v), col)
                    lines = laid.get(key)
                    if lines is None:
                        start = len(out)
                        mapping(v, col + 2, " " * (col + 2))
                        laid[key] = out[start:]
                    else:
                        out.extend(lines)
                else:
                    out.append(prefix + " {}")
            elif type(v) is list:
                if v:
                    out.append(prefix)
                    sequence(v, col + 2, " " * (col + 2))
                else:
                    out.append(prefix + " []")
            else:
                scalar(prefix + " ", v, col)

    def sequence(node: list[Any], col: int, lead: str) -> None:
        pad = " " * col
        for i, v in enumerate(node):
            prefix = f"{lead if i == 0 else pad}- "
            if type(v) is dict:
                if v:
                    mapping(v, col + 2, prefix)
                else:
                    out.append(prefix + "{}")
            elif type(v) is list:
                if v:
                    sequence(v, col + 2, prefix)
                else:
                    out.append(prefix + "[]")
            else:
                scalar(prefix, v, col)

    if not data:
        return "{}\n"
    mapping(data, 0, "")
    out.append("")
    return "\n".join(out)


def _emit(data: Any) -> str:
    """``data`` as YAML in :class:`_Dumper`'s layout."""
    if type(data) is dict:
        try:
            return _layout(data)
        except _Unsupported:
            pass
    return yaml.dump(data, Dumper=_Dumper, **_OPTIONS)


def dump(data: Any, header: str) -> str:
    """``data`` as YAML under a ``# header`` comment line, ending in one newline."""
    return f"# {header}\n{_emit(data)}"
