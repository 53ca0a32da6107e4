"""The dashboard model: what each panel shows, independent of Grafana's JSON.

Boards are described as :class:`Board` values (rows of :class:`Panel`), and only
:mod:`._render` knows grafanalib. Runbooks read the same model to link to a panel by its
stable ``key`` and id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PanelKind = Literal["timeseries", "stat", "heatmap"]


@dataclass(frozen=True)
class Query:
    """One PromQL target. ``legend`` is Grafana's legend format (``{{reason}}``)."""

    expr: str
    legend: str
    heatmap: bool = False


@dataclass(frozen=True)
class Line:
    """A threshold drawn on a panel (or a colour step on a stat): ``value`` in the panel's unit."""

    value: float
    color: str
    label: str


@dataclass(frozen=True)
class Panel:
    """One panel. ``key`` is stable across renders and names the panel for runbook links;
    ``runbooks`` are paths as returned by :mod:`steadystream.conventions`."""

    key: str
    title: str
    kind: PanelKind
    description: str
    unit: str
    queries: tuple[Query, ...]
    runbooks: tuple[str, ...]
    lines: tuple[Line, ...] = ()
    base_color: str = "green"
    width: int = 12
    height: int = 8
    min: float | None = None
    max: float | None = None
    stack: bool = False


@dataclass(frozen=True)
class Row:
    """A titled, collapsible group of panels laid out left to right, wrapping at 24 columns."""

    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Board:
    """One dashboard: ``name`` is one of :data:`steadystream.conventions.BOARDS`."""

    name: str
    title: str
    rows: tuple[Row, ...]
    annotations: tuple[dict[str, object], ...] = field(default=())


@dataclass(frozen=True)
class PanelRef:
    """Where a panel ended up: enough to link to it (``/d/<uid>?viewPanel=<id>``)."""

    board: str
    uid: str
    panel_id: int
    title: str
    url: str
