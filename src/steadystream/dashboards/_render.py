"""Board model -> Grafana dashboard JSON, through grafanalib.

grafanalib stays behind this module: it builds the panel objects, and we own the layout, the
ids, the datasource wiring and the final serialisation, so the output is byte-stable and does
not change shape when grafanalib's defaults do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafanalib import core as g

from .. import conventions as c
from ..catalog.links import dashboard_title, dashboard_url, runbook_url
from ..catalog.promql import VAR_DATASOURCE, VAR_MODEL, VAR_SERVICE, Selector
from ..spec import Spec
from ._model import Board, Panel, Query, Row

#: Grafana 10/11 dashboard schema. Grafana migrates older versions on import, and those
#: migrations rewrite panels (graph -> timeseries, string datasources -> refs); declaring the
#: schema we actually emit keeps an import a no-op.
SCHEMA_VERSION = 39

#: Every panel and target points at the datasource variable (dashboard-linter's
#: panel-datasource-rule), so one dashboard works against any Prometheus.
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": f"${{{VAR_DATASOURCE}}}"}

_GRID_WIDTH = 24
_ROW_HEIGHT = 1
_REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

__all__ = [
    "DATASOURCE",
    "SCHEMA_VERSION",
    "alert_annotation",
    "dumps",
    "layout",
    "render_board",
]


def _threshold_steps(panel: Panel) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = [{"color": panel.base_color, "value": None}]
    for line in sorted(panel.lines, key=lambda ln: ln.value):
        steps.append({"color": line.color, "value": line.value})
    return steps


# Graphite/legacy keys grafanalib's Target writes; Prometheus targets never read them, and
# ``intervalFactor: 2`` would silently halve every graph's resolution.
_LEGACY_TARGET_KEYS = ("target", "metric", "step", "query", "intervalFactor")


def _targets(queries: tuple[Query, ...]) -> list[dict[str, Any]]:
    if len(queries) > len(_REF_IDS):
        raise ValueError("a panel has more queries than Grafana ref ids A-Z")
    targets = []
    for i, q in enumerate(queries):
        target = _plain(
            g.Target(
                expr=q.expr,
                legendFormat=q.legend,
                refId=_REF_IDS[i],
                datasource=DATASOURCE,
                format="heatmap" if q.heatmap else "time_series",
            )
        )
        for key in _LEGACY_TARGET_KEYS:
            target.pop(key, None)
        target["range"] = True
        targets.append(target)
    return targets


def _links(spec: Spec, panel: Panel) -> list[dict[str, Any]]:
    return [
        {
            "title": f"Runbook: {path.removeprefix(c.RUNBOOKS_DIR + '/').removesuffix('.md')}",
            "url": runbook_url(spec, path),
            "targetBlank": True,
        }
        for path in panel.runbooks
    ]


def _value(value: float, unit: str) -> str:
    """A threshold as the panel's reader sees it: ``2500 ms``, ``20%``, ``13.44×``."""
    if unit == "percentunit":
        return f"{round(value * 100, 6):g}%"
    if unit.startswith("suffix:"):
        return f"{value:g}{unit.removeprefix('suffix:')}"
    if unit in ("ms", "s"):
        return f"{value:g} {unit}"
    if unit == "reqps":
        return f"{value:g}/s"
    return f"{value:g}"


def _description(panel: Panel) -> str:
    # Grafana draws threshold lines but cannot label them; say in the description (shown on
    # hover of the panel's info icon) what each line is.
    if not panel.lines:
        return panel.description
    lines = "; ".join(f"{ln.label} = {_value(ln.value, panel.unit)}" for ln in panel.lines)
    return f"{panel.description}\n\nThresholds: {lines}."


def _build_panel(spec: Spec, panel: Panel, panel_id: int, grid: g.GridPos) -> dict[str, Any]:
    common: dict[str, Any] = {
        "title": panel.title,
        "description": _description(panel),
        "dataSource": DATASOURCE,
        "targets": _targets(panel.queries),
        "id": panel_id,
        "gridPos": grid,
        "links": _links(spec, panel),
        "thresholds": _threshold_steps(panel),
    }
    obj: g.Panel
    if panel.kind == "timeseries":
        obj = g.TimeSeries(
            **common,
            unit=panel.unit,
            thresholdsStyleMode="dashed" if panel.lines else "off",
            stacking={"mode": "normal", "group": "A"} if panel.stack else {},
            fillOpacity=20 if panel.stack else 0,
            legendDisplayMode="list",
            legendCalcs=["lastNotNull", "max"],
            tooltipMode="multi",
            tooltipSort="desc",
            spanNulls=False,
        )
        data = _plain(obj)
        defaults = data["fieldConfig"]["defaults"]
        # grafanalib's TimeSeries only takes integer bounds; ours may be fractional.
        defaults["min"] = panel.min
        defaults["max"] = panel.max
    elif panel.kind == "stat":
        obj = g.Stat(
            **common,
            format=panel.unit,
            reduceCalc="lastNotNull",
            colorMode="background",
            graphMode="area",
            noValue="no data",
        )
        data = _plain(obj)
        defaults = data["fieldConfig"]["defaults"]
        defaults["thresholds"] = {"mode": "absolute", "steps": _threshold_steps(panel)}
        defaults["min"] = panel.min
        defaults["max"] = panel.max
        defaults["decimals"] = 2
    elif panel.kind == "heatmap":
        obj = g.Heatmap(**common, dataFormat="tsbuckets", hideZeroBuckets=True)
        data = _plain(obj)
        data["yAxis"] = {**data["yAxis"], "format": panel.unit}
        data["fieldConfig"]["defaults"]["unit"] = panel.unit
        # Options of the Grafana 9+ heatmap: the buckets come pre-computed from Prometheus.
        data["options"] = {
            "calculate": False,
            "yAxis": {"unit": panel.unit, "axisPlacement": "left"},
            "cellValues": {"unit": "short"},
            "color": {"mode": "scheme", "scheme": "Oranges", "exponent": 0.5, "steps": 64},
            "filterValues": {"le": 1e-9},
            "rowsFrame": {"layout": "auto"},
            "tooltip": {"show": True, "yHistogram": True},
            "legend": {"show": True},
        }
    else:  # pragma: no cover - Literal exhausts the kinds
        raise ValueError(f"unknown panel kind {panel.kind!r}")
    data["interval"] = None
    data["maxDataPoints"] = None
    return data


def _templating(spec: Spec) -> dict[str, Any]:
    sel = Selector.concrete(spec)
    # The service picker lists every service behind the spec's selector; the model picker the
    # models of the chosen service. Both read stream_requests_total, which every stream ends in.
    fixed = ",".join(
        part for part in sel.matchers().split(",") if not part.startswith(f"{c.LABEL_SERVICE}=")
    )
    series = f"{c.REQUESTS_TOTAL}{{{fixed}}}" if fixed else c.REQUESTS_TOTAL
    service_query = f"label_values({series}, {c.LABEL_SERVICE})"
    model_matchers = Selector.grafana(spec).matchers(model=False)
    model_query = f"label_values({c.REQUESTS_TOTAL}{{{model_matchers}}}, {c.LABEL_MODEL})"
    datasource = g.Template(
        name=VAR_DATASOURCE,
        query="prometheus",
        type="datasource",
        label="Data source",
        default="default",
    ).to_json_data()
    service = g.Template(
        name=VAR_SERVICE,
        query=service_query,
        dataSource=DATASOURCE,
        label="Service",
        # The selector may pin the service label to a scrape-side value; that is the one the
        # series (and the alerts) carry.
        default=spec.selector.get(c.LABEL_SERVICE, spec.service),
        refresh=2,
    ).to_json_data()
    model = g.Template(
        name=VAR_MODEL,
        query=model_query,
        dataSource=DATASOURCE,
        label="Model",
        includeAll=True,
        multi=True,
        allValue=".*",
        default="All",
        refresh=2,
    ).to_json_data()
    model["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    for variable in (service, model):
        variable["definition"] = variable["query"]
        variable["query"] = {"query": variable["query"], "refId": "PrometheusVariableQueryEditor"}
    return {"list": [datasource, service, model]}


def alert_annotation(spec: Spec) -> dict[str, Any]:
    """Firing alerts of this spec as annotations.

    ``ALERTS`` carries each alert's own labels, not the scrape's. The aggregations in the
    rules drop the scrape labels, so every generated alert puts the spec's matchers back as
    static labels (``selector`` plus ``service``, or the selector's own ``service``): matching
    on all of them, as every panel does, shows this service's alerts and no other job's.
    """
    matchers = Selector.grafana(spec).matchers(model=False)
    return {
        "datasource": DATASOURCE,
        "enable": True,
        "expr": f'ALERTS{{alertstate="firing",{matchers}}}',
        "iconColor": "red",
        "name": "Firing alerts",
        "step": "60s",
        "tagKeys": "severity,slo,failure_class",
        "textFormat": "{{alertname}} ({{severity}})",
        "titleFormat": "{{alertname}}",
        "useValueForTime": False,
    }


@dataclass(frozen=True)
class _Placed:
    """A row and its panels, with ids and grid positions assigned."""

    row: Row
    row_id: int
    row_y: int
    panels: tuple[tuple[Panel, int, g.GridPos], ...]


def layout(board: Board) -> list[_Placed]:
    """Place every row and panel. Ids count from 1 in reading order, rows included, so a panel
    keeps its id (and its runbook links keep working) as long as the panels before it do."""
    placed: list[_Placed] = []
    next_id = 1
    y = 0
    for row in board.rows:
        row_id, row_y = next_id, y
        next_id += 1
        y += _ROW_HEIGHT
        x = 0
        line_height = 0
        members: list[tuple[Panel, int, g.GridPos]] = []
        for panel in row.panels:
            if not 1 <= panel.width <= _GRID_WIDTH:
                raise ValueError(f"panel {panel.key!r}: width {panel.width} outside 1-24")
            if x + panel.width > _GRID_WIDTH:
                y += line_height
                x, line_height = 0, 0
            members.append((panel, next_id, g.GridPos(h=panel.height, w=panel.width, x=x, y=y)))
            next_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
        placed.append(_Placed(row, row_id, row_y, tuple(members)))
    return placed


def render_board(spec: Spec, board: Board, header: str) -> dict[str, Any]:
    """The Grafana dashboard JSON model of ``board`` (a dict ready for :func:`dumps`)."""
    panels: list[Any] = []
    for placed in layout(board):
        row_panel = _plain(
            g.RowPanel(
                title=placed.row.title,
                id=placed.row_id,
                gridPos=g.GridPos(h=_ROW_HEIGHT, w=_GRID_WIDTH, x=0, y=placed.row_y),
            )
        )
        row_panel["collapsed"] = False
        panels.append(row_panel)
        for panel, panel_id, grid in placed.panels:
            panels.append(_build_panel(spec, panel, panel_id, grid))

    links = [
        {
            "title": dashboard_title(spec.service, other),
            "type": "link",
            "url": dashboard_url(spec, other),
            "keepTime": True,
            "includeVars": True,
            "icon": "dashboard",
            "asDropdown": False,
            "tags": [],
            "targetBlank": False,
            "tooltip": "",
        }
        for other in c.BOARDS
        if other != board.name
    ]
    dashboard = g.Dashboard(
        title=dashboard_title(spec.service, board.name),
        description=header,
        uid=c.dashboard_uid(spec.service, board.name),
        tags=["steadystream", spec.service],
        timezone="utc",
        refresh="1m",
        graphTooltip=1,
        editable=False,
        time=g.Time("now-6h", "now"),
        annotations=g.Annotations(list=list(board.annotations)),
        panels=panels,
        links=links,
    )
    data: dict[str, Any] = _plain(dashboard)
    data["templating"] = _templating(spec)
    data["schemaVersion"] = SCHEMA_VERSION
    # Legacy fields grafanalib still writes; Grafana 10 ignores them and they only add noise.
    for legacy in ("rows", "style", "hideControls", "sharedCrosshair", "gnetId", "__inputs"):
        data.pop(legacy, None)
    return data


def _plain(obj: Any) -> Any:
    """grafanalib objects -> plain JSON data (dicts, lists, scalars)."""
    return json.loads(json.dumps(obj, cls=_Encoder))


class _Encoder(json.JSONEncoder):
    def default(self, o: object) -> Any:
        to_json = getattr(o, "to_json_data", None)
        if to_json is not None:
            return to_json()
        return super().default(o)


def dumps(data: dict[str, Any]) -> str:
    """Byte-stable JSON text: sorted keys, two-space indent, UTF-8 kept, trailing newline."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
