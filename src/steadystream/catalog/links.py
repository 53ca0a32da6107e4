"""Where generated things live and how one links to another: dashboard paths, titles and URLs
(down to one panel), and runbook URLs. Alerts, dashboards and runbooks all link through here."""

from __future__ import annotations

from urllib.parse import quote_plus

from .. import conventions as c
from ..spec import Spec
from .promql import VAR_SERVICE

__all__ = ["dashboard_path", "dashboard_title", "dashboard_url", "runbook_url"]

_TITLES = {
    c.BOARD_SLO_OVERVIEW: "SLO overview",
    c.BOARD_STREAM_INTERNALS: "stream internals",
}


def dashboard_title(service: str, board: str) -> str:
    """``"chat-gateway · SLO overview"``."""
    return f"{service} · {_TITLES[board]}"


def dashboard_path(service: str, board: str) -> str:
    """``dashboards/<service>-<board>.json``, relative to the output directory."""
    if board not in c.BOARDS:
        raise ValueError(f"unknown board {board!r}; expected one of {', '.join(c.BOARDS)}")
    return f"{c.DASHBOARDS_DIR}/{service}-{board}.json"


def dashboard_url(spec: Spec, board: str, panel_id: int | None = None) -> str:
    """A link to ``board`` (and one panel of it) for ``spec.service``.

    With ``links.grafana`` in the spec this is an absolute URL,
    ``https://grafana.example.com/d/<uid>?var-service=chat-gateway&viewPanel=7``; without, it is
    the same path starting at ``/d/<uid>``, which works against any Grafana the dashboards were
    imported into (Grafana resolves a dashboard by uid alone).
    """
    if board not in c.BOARDS:
        raise ValueError(f"unknown board {board!r}; expected one of {', '.join(c.BOARDS)}")
    uid = c.dashboard_uid(spec.service, board)
    # The value the series carry: the selector may pin `service` to a scrape-side name.
    service = spec.selector.get(c.LABEL_SERVICE, spec.service)
    query = f"var-{VAR_SERVICE}={quote_plus(service)}"
    if panel_id is not None:
        query += f"&viewPanel={panel_id}"
    base = (spec.links.grafana or "").rstrip("/")
    return f"{base}/d/{uid}?{query}"


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
