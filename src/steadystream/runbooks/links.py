"""Where a runbook lives, as an alert, a dashboard panel or another runbook links to it.

Kept free of imports from the renderers so that alerts, dashboards and runbooks can all use it
without an import cycle.
"""

from __future__ import annotations

from .. import conventions as c
from ..spec import Spec

__all__ = ["runbook_url"]


def runbook_url(spec: Spec, path: str) -> str:
    """The URL of the generated runbook at ``path`` (relative to the output directory, as
    :func:`steadystream.conventions.failure_class_runbook` returns it).

    With ``links.runbooks`` in the spec, that base names the published runbooks directory:
    ``https://wiki.example.com/runbooks`` + ``runbooks/retry-storm.md`` ->
    ``https://wiki.example.com/runbooks/retry-storm.md``. Without it the path stays relative to
    the output directory, which is where it resolves in the repository that commits it.
    """
    prefix = f"{c.RUNBOOKS_DIR}/"
    if not path.startswith(prefix):
        raise ValueError(f"runbook path {path!r} is not under {prefix!r}")
    base = spec.links.runbooks
    if base is None:
        return path
    return f"{base.rstrip('/')}/{path[len(prefix) :]}"
