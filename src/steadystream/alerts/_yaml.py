"""Byte-stable YAML: sorted keys, two-space indent, no line folding, a header comment first.

The layout is the one libyaml and PyYAML's emitter both write by default: a sequence that is a
mapping value sits at its key's column (``rules:\\n- record: ...``), as in Prometheus'
own documentation and ``promtool``'s output. PyYAML's pure-Python emitter is slow (most of
``generate``'s time for a spec with many SLOs), so the document is emitted by libyaml
(``yaml.CSafeDumper``) when it is installed. The two emitters write the same bytes except on
a few inputs, which the libyaml representers below refuse so that :func:`_emit` takes the
pure-Python emitter for them: a string that is not ASCII (libyaml escapes every character
outside the Basic Multilingual Plane), a key that is empty, multi-line or long enough to need
the complex ``? key`` form (the two disagree on the length limit), and a string that needs
keep-chomping (``|+``, after which libyaml ends the document with ``...``). So the bytes are
the same with or without libyaml.
"""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as literal blocks and never aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        # Shared label dicts would otherwise become &id001 anchors: valid YAML, unreadable.
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


class _Unsupported(Exception):
    """A value libyaml would write differently from PyYAML's emitter."""


#: Keys at least this long may be written as complex keys by one emitter and not the other
#: (PyYAML's limit is under 128 characters, libyaml's up to 128): both take the safe side.
_LONG_KEY = 100

_CSafeDumper: type | None = getattr(yaml, "CSafeDumper", None)
_CDumper: type | None = None
if _CSafeDumper is not None:

    class _CDumperImpl(_CSafeDumper):  # type: ignore[misc, valid-type]
        """libyaml's emitter with :class:`_Dumper`'s representers (no aliases, literal
        blocks), refusing the inputs on which the two emitters differ."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    def _c_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        if not value.isascii():
            raise _Unsupported("a string that is not ASCII")
        if value.endswith("\n") and (len(value) == 1 or value[-2] == "\n"):
            raise _Unsupported("a string that needs keep-chomping (|+)")
        return _str(dumper, value)

    def _c_dict(dumper: yaml.SafeDumper, value: dict[Any, Any]) -> yaml.MappingNode:
        for key in value:
            if isinstance(key, str) and (key == "" or "\n" in key or len(key) >= _LONG_KEY):
                raise _Unsupported("an empty, multi-line or long key")
        return dumper.represent_dict(value)

    _CDumperImpl.add_representer(str, _c_str)
    _CDumperImpl.add_representer(dict, _c_dict)
    _CDumper = _CDumperImpl

_OPTIONS: dict[str, Any] = {
    "sort_keys": True,
    "default_flow_style": False,
    "allow_unicode": True,
    "indent": 2,
    # Never fold long PromQL over several lines: diffs stay one change per line.
    "width": 1_000_000,
}


def _emit(data: Any) -> str:
    """``data`` as YAML: libyaml when installed and the emitters agree on it, else PyYAML."""
    if _CDumper is not None:
        try:
            return yaml.dump(data, Dumper=_CDumper, **_OPTIONS)
        except _Unsupported:
            pass
    return yaml.dump(data, Dumper=_Dumper, **_OPTIONS)


def dump(data: Any, header: str) -> str:
    """``data`` as YAML under a ``# header`` comment line, ending in one newline."""
    return f"# {header}\n{_emit(data)}"
