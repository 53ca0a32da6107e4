"""Names, paths and URLs of the generated dashboards."""

from __future__ import annotations

from urllib.parse import quote_plus

from .. import conventions as c
from ..spec import Spec
from ._promql import VAR_SERVICE

__all__ = ["dashboard_path", "dashboard_title", "dashboard_url"]

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
