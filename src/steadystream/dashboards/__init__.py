"""Grafana dashboards from the spec: an SLO overview and a stream internals board.

``render_dashboards(spec, source)`` returns ``{relative path: JSON text}``; the CLI writes
them. The JSON is byte-stable (sorted keys, two-space indent, trailing newline, no timestamps,
uids hashed from the service and board names) and names its spec in the dashboard
``description``, since JSON has no comments::

    from steadystream import load_spec
    from steadystream.dashboards import render_dashboards
    from steadystream.generate import Source

    files = render_dashboards(load_spec("slo.yaml"), Source.from_bytes("slo.yaml", raw))
    # {"dashboards/chat-gateway-slo-overview.json": "...",
    #  "dashboards/chat-gateway-stream-internals.json": "..."}

Every query carries the spec's ``selector`` and the ``$service`` variable, every range is
``$__rate_interval`` or one of the SLO's own windows, every panel has a unit, a description and
links to the runbooks of the failure classes it diagnoses. :func:`lint_dashboard` checks those
rules on any dashboard JSON.
"""

from __future__ import annotations

from .. import conventions as c
from ..catalog.links import dashboard_path, dashboard_title, dashboard_url
from ..catalog.memo import render_scope
from ..catalog.panels import PanelRef, panel_index
from ..catalog.promql import Selector
from ..catalog.slo import slo_windows
from ..catalog.source import Source
from ..spec import Spec, format_duration
from ._internals import stream_internals
from ._model import Board
from ._render import dumps, render_board
from ._slo import slo_overview
from .lint import lint_dashboard

__all__ = [
    "PanelRef",
    "boards",
    "dashboard_path",
    "dashboard_title",
    "dashboard_url",
    "lint_dashboard",
    "lint_for_spec",
    "panel_index",
    "render_dashboards",
]


def boards(spec: Spec) -> tuple[Board, ...]:
    """The boards of ``spec`` in :data:`steadystream.conventions.BOARDS` order."""
    builders = {c.BOARD_SLO_OVERVIEW: slo_overview, c.BOARD_STREAM_INTERNALS: stream_internals}
    return tuple(builders[name](spec) for name in c.BOARDS)


def lint_for_spec(spec: Spec, data: dict[str, object]) -> list[str]:
    """:func:`lint_dashboard` with the rules a dashboard of ``spec`` must meet: every selector
    carries the spec's selector and ``service="$service"``, and ranges are ``$__rate_interval``
    or one of the SLO's windows (the period and the alert tiers' long windows)."""
    windows = {format_duration(spec.period)} | {format_duration(w) for w in slo_windows(spec)}
    return lint_dashboard(
        data, required_matchers=Selector.grafana(spec).required(), slo_windows=windows
    )


def render_dashboards(spec: Spec, source: Source) -> dict[str, str]:
    """``{"dashboards/<service>-<board>.json": JSON text}`` for every board in
    :data:`steadystream.conventions.BOARDS`. Pure: reads nothing, writes nothing."""
    header = c.generated_header(source.name, source.sha256)
    with render_scope():
        return {
            dashboard_path(spec.service, board.name): dumps(render_board(spec, board, header))
            for board in boards(spec)
        }
