"""Markdown runbooks from the spec: one per failure class, one per SLO, and an index.

``render_runbooks(spec, source)`` returns ``{relative path: Markdown}``; the CLI writes them::

    files = render_runbooks(spec, Source.from_bytes("slo.yaml", raw))
    # runbooks/README.md, runbooks/retry-storm.md, ..., runbooks/slo-time-to-first-token.md

Each runbook has the Meaning / Impact / Diagnosis / Mitigation shape, prints the spec's own
thresholds and timeouts, carries ready-to-paste PromQL scoped to the service's selector, links
to the dashboard panels that diagnose it, and says how to reproduce the failure with
``steadystream simulate``. The first line is the generated-file header as an HTML comment.

Templates are jinja2 files shipped in the package (``steadystream/runbooks/templates``),
rendered with ``StrictUndefined``: a value missing from the context is an error, never a blank.
"""

from __future__ import annotations

from .. import conventions as c
from ..catalog.classes import failure_classes
from ..catalog.links import runbook_url
from ..catalog.memo import render_scope
from ..catalog.source import Source
from ..spec import Spec
from ._render import INDEX, render_all

__all__ = ["INDEX", "render_runbooks", "runbook_paths", "runbook_url"]


def runbook_paths(spec: Spec) -> tuple[str, ...]:
    """Every runbook path ``render_runbooks`` produces for ``spec`` (relative, sorted)."""
    return tuple(
        sorted(
            [fc.runbook for fc in failure_classes()]
            + [c.slo_runbook(slo.name) for slo in spec.slos]
            + [INDEX]
        )
    )


def render_runbooks(spec: Spec, source: Source) -> dict[str, str]:
    """``{"runbooks/<name>.md": Markdown}`` for every failure class in
    :func:`steadystream.catalog.classes.failure_classes`, every SLO of ``spec``, and the index
    ``runbooks/README.md``. Pure: reads nothing but the packaged templates, writes nothing.

    Raises ``jinja2.UndefinedError`` if a template uses a value the context lacks.
    """
    header = c.generated_header(source.name, source.sha256)
    with render_scope():  # the panel index and alert signals, computed once for all runbooks
        return render_all(spec, header, source.name)
