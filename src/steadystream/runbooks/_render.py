"""Render the runbook templates shipped in ``steadystream/runbooks/templates``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from .. import conventions as c
from ..catalog.classes import failure_classes
from ..spec import Spec
from ._context import base_context, class_context, slo_context

#: The index of all runbooks, relative to the output directory.
INDEX = f"{c.RUNBOOKS_DIR}/README.md"


@lru_cache(maxsize=8)
def environment(extra_dirs: tuple[Path, ...] = ()) -> jinja2.Environment:
    """The template environment: templates loaded from the installed package (and from
    ``extra_dirs``, where registered failure classes keep their own), and
    ``StrictUndefined`` so a missing or misspelt value is an error, never a blank in a page
    someone reads during an incident. Markdown is not HTML, so nothing is escaped."""
    loader: jinja2.BaseLoader = jinja2.PackageLoader("steadystream.runbooks", "templates")
    if extra_dirs:
        loader = jinja2.ChoiceLoader([loader, jinja2.FileSystemLoader(list(extra_dirs))])
    env = jinja2.Environment(
        loader=loader,
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
    classes = failure_classes()
    if env is None:
        extra = {fc.template_dir for fc in classes if fc.template_dir is not None}
        env = environment(tuple(sorted(extra)))
    base = base_context(spec, header, spec_path)
    files: dict[str, str] = {}
    for fc in classes:
        template = env.get_template(fc.template)
        files[fc.runbook] = _tidy(template.render(class_context(base, fc.id)))
    slo_template = env.get_template("slo.md.j2")
    for slo in spec.slos:
        files[c.slo_runbook(slo.name)] = _tidy(slo_template.render(slo_context(base, spec, slo)))
    files[INDEX] = _tidy(env.get_template("index.md.j2").render(base))
    return dict(sorted(files.items()))
