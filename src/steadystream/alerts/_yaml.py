"""Byte-stable YAML: sorted keys, two-space indent, no line folding, a header comment first.

The layout is PyYAML's pure-Python emitter with block sequences indented under their key
(``rules:\\n  - record: ...``). That emitter is slow (most of ``generate``'s time for a spec with
many SLOs), so when libyaml is available the document is emitted by ``yaml.CSafeDumper`` and
the one layout difference is fixed afterwards: libyaml always writes a sequence that is a
mapping value at its key's column (``rules:\\n- record: ...``) and has no option to indent it,
so :func:`_indent_sequences` shifts every such sequence (and everything inside it) right by
two columns. Where the two emitters are known to differ (a string that is not ASCII, an empty
or multi-line key, a keep-chomped ``|+`` block) or the output holds anything
:func:`_indent_sequences` does not parse with certainty, :func:`dump` uses the pure-Python
emitter instead, so the bytes are the same with or without libyaml. (Checked: identical on
every generated file of the examples and goldens, and on thousands of random documents of
ASCII strings with YAML indicators, quotes, control characters and line breaks.)
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as literal blocks and indents list items."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent sequences under their key (``rules:\n  - record: ...``), as promtool's own
        # examples and most hand-written rule files do.
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        # Shared label dicts would otherwise become &id001 anchors: valid YAML, unreadable.
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


class _Unsupported(Exception):
    """Emitter output :func:`_indent_sequences` cannot re-indent with certainty."""


_CSafeDumper: type | None = getattr(yaml, "CSafeDumper", None)
_CDumper: type | None = None
if _CSafeDumper is not None:

    class _CDumperImpl(_CSafeDumper):  # type: ignore[misc, valid-type]
        """libyaml's emitter with :class:`_Dumper`'s representers (no aliases, literal
        blocks); its sequence indentation is fixed by :func:`_indent_sequences`."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    def _ascii_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        if not value.isascii():
            # libyaml and PyYAML disagree on which characters are printable (libyaml escapes
            # every character outside the Basic Multilingual Plane, for one).
            raise _Unsupported("a string that is not ASCII")
        return _str(dumper, value)

    _CDumperImpl.add_representer(str, _ascii_str)
    _CDumper = _CDumperImpl

_OPTIONS: dict[str, Any] = {
    "sort_keys": True,
    "default_flow_style": False,
    "allow_unicode": True,
    "indent": 2,
    # Never fold long PromQL over several lines: diffs stay one change per line.
    "width": 1_000_000,
}

# A literal block scalar's header: ``|`` with optional indentation and chomping indicators.
_LITERAL = re.compile(r"\|[1-9]?[-+]?")
# The end of a quoted scalar at the start of a string (``''`` escapes a single quote).
_SINGLE = re.compile(r"'(?:[^']|'')*'")
_DOUBLE = re.compile(r'"(?:[^"\\]|\\.)*"')


def _split(rest: str) -> tuple[int, str | None]:
    """``(length of the key, value)`` for the part of a line after its dashes; the key length
    is 0 and the value the whole of ``rest`` when it is a bare scalar, the value ``None`` when
    the key's value starts on the next line (``key:``)."""
    if rest == "?" or rest.startswith("? "):
        raise _Unsupported(rest)  # a complex key (too long or multi-line for ``key: value``)
    if (
        rest[:1] in ("&", "*", "!", "%", "|", ">", "[", "{")
        and rest not in ("[]", "{}")
        and not _LITERAL.fullmatch(rest)  # a bare literal block item (``- |``) is a scalar
    ):
        # An anchor, alias, tag, folded block or flow collection: never written by this
        # module's dumpers.
        raise _Unsupported(rest)
    if rest[:1] in ("'", '"'):
        m = (_SINGLE if rest[0] == "'" else _DOUBLE).match(rest)
        if m is None:
            raise _Unsupported(rest)  # a quoted scalar over several lines
        end = m.end()
        if end == len(rest):
            return 0, rest
        if rest[end] != ":" or end == 2:
            # PyYAML writes an empty key as a complex key (``? ''``), libyaml does not.
            raise _Unsupported(rest)
        key_len = end
    else:
        # A plain scalar never contains ": " nor ends in ":", so the first one ends the key.
        i = rest.find(": ")
        if i >= 0:
            key_len = i
        elif rest.endswith(":"):
            key_len = len(rest) - 1
        else:
            return 0, rest
    value = rest[key_len + 1 :]
    if value == "":
        return key_len, None
    if not value.startswith(" "):
        raise _Unsupported(rest)
    return key_len, value[1:]


def _indent_sequences(text: str) -> str:
    """libyaml's block YAML with every sequence that is a mapping value indented two columns
    under its key, as :class:`_Dumper` writes it. Raises :class:`_Unsupported` on a construct
    it does not handle."""
    lines = text.split("\n")
    out: list[str] = []
    open_seqs: list[int] = []  # dash columns of the open key-level sequences, innermost last
    literal_above: int | None = None  # inside a literal block owned by a node at this column
    key_col: int | None = None  # column of the previous line's ``key:`` with no value
    for line in lines:
        if line == "":
            out.append(line)  # a blank line of a literal block is written without indent
            continue
        col = len(line) - len(line.lstrip(" "))
        if literal_above is not None:
            if col > literal_above:
                out.append(" " * (2 * len(open_seqs)) + line)
                continue
            literal_above = None
        rest = line[col:]
        is_item = rest.startswith("- ") or rest == "-"
        if key_col is not None and col == key_col and is_item:
            open_seqs.append(col)
        elif key_col is not None and col <= key_col:
            raise _Unsupported(line)  # ``key:`` with its value neither below nor a sequence
        key_col = None
        while open_seqs and (open_seqs[-1] > col or (open_seqs[-1] == col and not is_item)):
            open_seqs.pop()
        out.append(" " * (2 * len(open_seqs)) + line)
        # Where the node of this line sits: past its dashes (``- - key: value``).
        node_col = col
        while rest.startswith("- "):
            rest = rest[2:]
            node_col += 2
        if rest == "-":
            raise _Unsupported(line)  # an empty item: libyaml writes ``- `` plus a value
        key_len, value = _split(rest)
        if value is None:
            key_col = node_col
        elif _LITERAL.fullmatch(value):
            if value.endswith("+"):
                # Keep-chomping: libyaml then ends the document with ``...``, PyYAML does not.
                raise _Unsupported(line)
            # The block's lines are indented more than the node that owns it: its key, or for
            # a bare ``- |`` item, its dash.
            literal_above = node_col if key_len else node_col - 2
    if key_col is not None:
        raise _Unsupported("a key without a value at the end")
    return "\n".join(out)


def _emit(data: Any) -> str:
    """``data`` as YAML in :class:`_Dumper`'s layout: libyaml when installed, else PyYAML."""
    if _CDumper is not None:
        try:
            return _indent_sequences(yaml.dump(data, Dumper=_CDumper, **_OPTIONS))
        except _Unsupported:
            pass
    return yaml.dump(data, Dumper=_Dumper, **_OPTIONS)


def dump(data: Any, header: str) -> str:
    """``data`` as YAML under a ``# header`` comment line, ending in one newline."""
    return f"# {header}\n{_emit(data)}"
