"""Foreign SLO specs in: Sloth ``prometheus/v1`` and OpenSLO ``v1alpha``/``v1`` files, mapped
to the closest steadystream spec (see docs/import.md for each mapping rule).

Whatever the steadystream spec cannot express is a located error naming the source field,
never silently dropped. ``validate`` and ``generate`` read such files directly
(:func:`load_any`); ``steadystream import`` prints the spec (:func:`import_text`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from .. import conventions as c
from ..spec import Spec
from ..spec.loader import (
    Document,
    Problem,
    SpecError,
    parse_documents,
    read_spec_text,
    validate_mapped,
)
from ._common import Builder
from ._openslo import import_openslo
from ._sloth import import_sloth

__all__ = ["FORMAT_NAMES", "Imported", "detect_format", "import_text", "load_any", "to_yaml"]

Format = Literal["steadystream", "sloth", "openslo"]

FORMAT_NAMES: dict[str, str] = {
    "steadystream": "steadystream spec",
    "sloth": "Sloth prometheus/v1",
    "openslo": "OpenSLO",
}


def detect_format(data: Any) -> Format:
    """Which format a first YAML document is in, by its ``version`` or ``apiVersion``."""
    if isinstance(data, dict):
        if data.get("version") == "prometheus/v1":
            return "sloth"
        api = data.get("apiVersion")
        if isinstance(api, str) and api.startswith("openslo/"):
            return "openslo"
    return "steadystream"


@dataclass(frozen=True)
class Imported:
    """A foreign file mapped to a steadystream spec: ``data`` (the spec's fields, which
    :attr:`spec` validated), its source ``format`` and ``notes`` on how values were read."""

    filename: str
    format: Format
    data: dict[str, Any]
    spec: Spec
    notes: tuple[str, ...]


_OPENSLO_VERSIONS = ("openslo/v1alpha", "openslo/v1")


def _import_docs(docs: list[Document], filename: str, fmt: Format) -> Imported:
    b = Builder()
    if fmt == "sloth":
        import_sloth(b, docs)
    else:
        for doc in docs:
            api = doc.data.get("apiVersion") if isinstance(doc.data, dict) else None
            if api not in _OPENSLO_VERSIONS:
                b.refuse(
                    doc,
                    ("apiVersion",),
                    f"cannot map apiVersion {api!r}: steadystream reads "
                    f"{' and '.join(_OPENSLO_VERSIONS)}",
                    key=False,
                )
        if not b.problems:
            import_openslo(b, docs)
    b.raise_problems()
    # The source's SLOs read the service's own metrics, not the stream wrapper's: the
    # failure-class alerts on stream metrics are off, as the file header says.
    b.data["alerting"] = {
        "failure_classes": {fc: {"enabled": False} for fc in c.FAILURE_CLASSES},
    }
    spec = validate_mapped(b.data, filename, b.locate)
    return Imported(filename, fmt, b.data, spec, tuple(b.notes))


def import_text(text: str, filename: str = "<spec>") -> Imported:
    """Map the Sloth or OpenSLO file ``text`` to a steadystream spec; a located
    :class:`~steadystream.spec.SpecError` for whatever cannot be mapped, or for a file that
    is neither."""
    docs = parse_documents(text, filename)
    if not docs:
        raise SpecError([Problem(filename, 1, 1, "", "the file is empty")])
    fmt = detect_format(docs[0].data)
    if fmt == "steadystream":
        line, col = docs[0].position(())
        raise SpecError(
            [
                Problem(
                    filename,
                    line,
                    col,
                    "",
                    "not a Sloth (version: prometheus/v1) or OpenSLO (apiVersion: openslo/...) "
                    "file",
                )
            ]
        )
    return _import_docs(docs, filename, fmt)


def load_any(path: str | os.PathLike[str]) -> tuple[Spec, Format]:
    """The spec at ``path``: a steadystream spec, or a Sloth or OpenSLO file imported on the
    way (detected by ``version``/``apiVersion``)."""
    name = str(path)
    text = read_spec_text(path)
    try:
        docs = parse_documents(text, name)
    except SpecError:
        docs = []
    fmt = detect_format(docs[0].data) if docs else "steadystream"
    if fmt == "steadystream":
        from ..spec import parse_spec

        return parse_spec(text, name), fmt
    return _import_docs(docs, name, fmt).spec, fmt


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(imported: Imported, source: str) -> str:
    """The imported spec as YAML, commented at the top with its source file and format."""
    head = [
        f"# Imported by `steadystream import` from {source} ({FORMAT_NAMES[imported.format]}).",
        "# Alerting is steadystream's default: the SRE Workbook burn-rate tiers (as Sloth's),",
        "# a low-traffic guard and an outage fast path (docs/import.md). The failure-class",
        "# alerts read steadystream's stream metrics: they are off; remove",
        "# alerting.failure_classes once the service streams through steadystream.",
    ]
    head += [f"# Note: {note}" for note in imported.notes]
    body = yaml.dump(
        imported.data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return "\n".join(head) + "\n" + body
