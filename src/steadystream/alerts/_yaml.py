"""Byte-stable YAML: sorted keys, two-space indent, no line folding, a header comment first."""

from __future__ import annotations

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


def dump(data: Any, header: str) -> str:
    """``data`` as YAML under a ``# header`` comment line, ending in one newline."""
    body = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        indent=2,
        # Never fold long PromQL over several lines: diffs stay one change per line.
        width=1_000_000,
    )
    return f"# {header}\n{body}"
