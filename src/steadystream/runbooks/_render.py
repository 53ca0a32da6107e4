"""Render the runbook templates shipped in ``steadystream/runbooks/templates``."""

from __future__ import annotations

from functools import lru_cache

import jinja2

from .. import conventions as c
from ..spec import Spec
from . import INDEX
from ._context import base_context, class_context, slo_context


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The template environment: templates loaded from the installed package, and
    ``StrictUndefined`` so a missing or misspelt value is an error, never a blank in a page
    someone reads during an incident. Markdown is not HTML, so nothing is escaped."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("steadystream.runbooks", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cell"] = table_cell
    return env


def table_cell(value: object) -> str:
    """``value`` safe inside a Markdown table cell: a ``|`` would start a new column."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _tidy(text: str) -> str:
    """Collapse the blank-line runs template blocks leave, and end with one newline, so the
    output is stable whatever the templates' own spacing."""
    lines = [line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line == "" and (not out or out[-1] == ""):
            continue
        out.append(line)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def render_all(
    spec: Spec, header: str, spec_path: str, env: jinja2.Environment | None = None
) -> dict[str, str]:
    """Every runbook of ``spec``: ``{relative path: Markdown}``."""
    env = env or environment()
    base = base_context(spec, header, spec_path)
    files: dict[str, str] = {}
    for fc in c.FAILURE_CLASSES:
        template = env.get_template(f"fc-{fc}.md.j2")
        files[c.failure_class_runbook(fc)] = _tidy(template.render(class_context(base, fc)))
    slo_template = env.get_template("slo.md.j2")
    for slo in spec.slos:
        files[c.slo_runbook(slo.name)] = _tidy(slo_template.render(slo_context(base, spec, slo)))
    files[INDEX] = _tidy(env.get_template("index.md.j2").render(base))
    return dict(sorted(files.items()))
