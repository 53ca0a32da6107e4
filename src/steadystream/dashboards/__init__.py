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

from typing import TYPE_CHECKING

from .. import conventions as c
from ..generate import per_render, render_scope
from ..spec import Spec, format_duration
from ._internals import stream_internals
from ._model import Board, PanelRef
from ._promql import Selector
from ._render import dumps, panel_refs, render_board
from ._slo import slo_overview, slo_windows
from .links import dashboard_path, dashboard_title, dashboard_url
from .lint import lint_dashboard

if TYPE_CHECKING:
    from ..generate import Source

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


@per_render(copy=dict)
def panel_index(spec: Spec) -> dict[str, PanelRef]:
    """Every panel of every board by its stable key (``"retries-by-reason"``,
    ``"slo-time-to-first-token-burn"``), with its board uid, panel id and URL.

    Builds both boards, so within a :func:`steadystream.generate.render_scope` (every
    ``render_*`` opens one) it is computed once per spec: alert links and runbooks ask for it
    many times."""
    index: dict[str, PanelRef] = {}
    for board in boards(spec):
        for key, ref in panel_refs(spec, board).items():
            if key in index:
                raise ValueError(f"panel key {key!r} is used on two boards")
            index[key] = ref
    return index


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
