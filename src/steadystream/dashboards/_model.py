"""The dashboard model: what each panel shows, independent of Grafana's JSON.

Boards are described as :class:`Board` values (rows of :class:`Panel`), and only
:mod:`._render` knows grafanalib. Which panels exist, in which row and order and under which
title is the catalog's (:mod:`steadystream.catalog.panels`), so alerts and runbooks can link to
a panel without building a board; :func:`assemble` puts the panels drawn here in those places.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from ..catalog.classes import failure_classes
from ..catalog.panels import PanelRef, board_rows
from ..spec import Spec

__all__ = ["Board", "Line", "Panel", "PanelRef", "Query", "Row", "assemble"]

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
    """One panel. ``key`` is stable across renders and names the panel for links; its title
    and place come from the catalog (:func:`assemble`). ``runbooks`` are paths as returned by
    :mod:`steadystream.conventions`: the SLO runbooks the panel serves (:func:`assemble` adds
    the runbooks of the failure classes the panel diagnoses)."""

    key: str
    kind: PanelKind
    description: str
    unit: str
    queries: tuple[Query, ...]
    runbooks: tuple[str, ...] = ()
    lines: tuple[Line, ...] = ()
    base_color: str = "green"
    width: int = 12
    height: int = 8
    min: float | None = None
    max: float | None = None
    stack: bool = False
    title: str = ""


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


def assemble(spec: Spec, board: str, panels: Iterable[Panel]) -> tuple[Row, ...]:
    """The rows of ``board``: each panel in its catalog place, with its catalog title, linking
    the runbooks of the failure classes that name it (registry order) before its own.

    Raises ``ValueError`` when the panels drawn and the catalog's places differ, so a panel is
    never silently dropped or left without a place."""
    drawn: dict[str, Panel] = {}
    for panel in panels:
        if panel.key in drawn:
            raise ValueError(f"board {board!r}: panel {panel.key!r} is drawn twice")
        drawn[panel.key] = panel
    rows = board_rows(spec, board)
    placed = {slot.key for row in rows for slot in row.panels}
    if placed != set(drawn):
        raise ValueError(
            f"board {board!r}: panels without a place in steadystream.catalog.panels: "
            f"{sorted(set(drawn) - placed)}; places without a panel: {sorted(placed - set(drawn))}"
        )
    classes = failure_classes()
    return tuple(
        Row(
            row.title,
            tuple(
                replace(
                    drawn[slot.key],
                    title=slot.title,
                    runbooks=tuple(fc.runbook for fc in classes if slot.key in fc.panels)
                    + drawn[slot.key].runbooks,
                )
                for slot in row.panels
            ),
        )
        for row in rows
    )
