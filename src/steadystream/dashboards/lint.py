"""Offline checks for Grafana dashboard JSON: importability and the key dashboard-linter rules.

Grafana's own ``dashboard-linter`` is a Go tool; these are the rules of it that matter for
generated Prometheus dashboards, plus the structural checks Grafana's import applies. PromQL
syntax is checked separately with the real ``promtool`` (see the dashboard tests), because a
regex is no parser.

Rules (named as in dashboard-linter where one exists):

``dashboard-model``
    ``schemaVersion`` (an int), a non-empty ``uid`` of at most 40 characters, a ``title`` and a
    ``panels`` list: what Grafana's import requires.
``panel-ids`` / ``panel-gridpos``
    Unique integer panel ids; every panel has a ``gridPos`` inside the 24-column grid, and no
    two panels overlap.
``template-datasource-rule``
    A ``datasource`` variable of type ``datasource`` for Prometheus.
``panel-datasource-rule``
    Every panel and every target uses ``${datasource}``.
``target-rate-interval-rule``
    Every ``rate``/``irate``/``increase`` range is ``$__rate_interval`` or one of
    ``slo_windows`` (an SLO's own windows are its definition, not a graph resolution).
``target-counter-agg-rule``
    Counters and histogram series (``_total``, ``_bucket``, ``_count``, ``_sum``) are only read
    through a range function, never as raw cumulative values.
``target-selector-rule``
    Every series selector, in targets and annotation queries alike, carries each of
    ``required_matchers`` (the spec's selector and the ``$service`` variable).
``panel-units-rule`` / ``panel-title-description-rule``
    Every panel sets a known unit, a title and a description.
``panel-links-rule``
    Every panel links somewhere (a runbook).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["KNOWN_UNITS", "lint_dashboard", "panel_targets"]

#: Grafana unit ids accepted for panels; custom ``suffix:``/``prefix:`` units are accepted too.
KNOWN_UNITS = frozenset(
    {
        "ms",
        "s",
        "ns",
        "µs",
        "percentunit",
        "percent",
        "reqps",
        "ops",
        "cps",
        "rps",
        "wps",
        "binBps",
        "Bps",
        "bytes",
        "decbytes",
        "short",
        "none",
    }
)

_DATASOURCE_REFS = ("${datasource}", "$datasource")
_RANGE_FN = re.compile(r"\b(rate|irate|increase)\s*\(")
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\{([^{}]*)\}(\s*\[([^\]]*)\])?")
_COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")
_GRID_WIDTH = 24


def panel_targets(data: Mapping[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(panel, target)`` for every query target of every panel, rows' nested panels included."""
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for panel in _panels(data):
        for target in panel.get("targets") or []:
            out.append((panel, target))
    return out


def _panels(data: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    for panel in data.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []  # collapsed rows keep their panels inside


def _ds_ok(ds: object) -> bool:
    if isinstance(ds, str):
        return ds in _DATASOURCE_REFS
    if isinstance(ds, Mapping):
        return ds.get("uid") in _DATASOURCE_REFS and ds.get("type") in (None, "prometheus")
    return False


def _name(panel: Mapping[str, Any]) -> str:
    return f"panel {panel.get('id')} ({panel.get('title') or 'untitled'})"


def _strip_strings(expr: str) -> str:
    """``expr`` with every string literal emptied, so brackets inside values cannot confuse
    the scanners below."""
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def _range_args(expr: str) -> list[str]:
    """The range of every ``rate``/``irate``/``increase`` call in ``expr``."""
    expr = _strip_strings(expr)
    ranges = []
    for match in _RANGE_FN.finditer(expr):
        depth, i = 1, match.end()
        start = i
        while i < len(expr) and depth:
            depth += {"(": 1, ")": -1}.get(expr[i], 0)
            i += 1
        inner = expr[start : i - 1]
        found = re.search(r"\[([^\]]*)\]\s*$", inner)
        ranges.append(found.group(1).strip() if found else "")
    return ranges


_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}
)


def _bare_selectors(expr: str) -> list[str]:
    """Metric names used without ``{...}`` (a selector that ignores the required matchers)."""
    text = _strip_strings(expr)
    text = re.sub(r"\{[^{}]*\}", "{}", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", "[]", text)
    bare = []
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        token = match.group(0)
        before = text[: match.start()]
        if before and (before[-1].isalnum() or before[-1] in "_.:"):
            continue  # part of a number such as 1e-9 or a longer token
        after = text[match.end() :].lstrip()
        if token in _KEYWORDS or after.startswith(("(", "{")):
            continue
        bare.append(token)
    return bare


def _overlaps(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def _lint_model(data: Mapping[str, Any]) -> list[str]:
    problems = []
    if not isinstance(data.get("schemaVersion"), int):
        problems.append("dashboard-model: schemaVersion must be an integer")
    uid = data.get("uid")
    if not isinstance(uid, str) or not uid or len(uid) > 40:
        problems.append("dashboard-model: uid must be a non-empty string of at most 40 characters")
    if not isinstance(data.get("title"), str) or not data.get("title"):
        problems.append("dashboard-model: title must be a non-empty string")
    if not isinstance(data.get("panels"), list):
        problems.append("dashboard-model: panels must be a list")
    return problems


def _lint_layout(panels: list[dict[str, Any]]) -> list[str]:
    problems = []
    seen_ids: dict[int, str] = {}
    placed: list[tuple[str, dict[str, int]]] = []
    for panel in panels:
        pid = panel.get("id")
        if not isinstance(pid, int) or isinstance(pid, bool):
            problems.append(f"panel-ids: {_name(panel)} has no integer id")
        elif pid in seen_ids:
            problems.append(f"panel-ids: {_name(panel)} reuses the id of {seen_ids[pid]}")
        else:
            seen_ids[pid] = _name(panel)
        grid = panel.get("gridPos")
        if not isinstance(grid, Mapping) or not all(
            isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")
        ):
            problems.append(f"panel-gridpos: {_name(panel)} has no complete gridPos")
            continue
        if grid["w"] < 1 or grid["h"] < 1 or grid["x"] < 0 or grid["y"] < 0:
            problems.append(f"panel-gridpos: {_name(panel)} has a non-positive size or position")
        if grid["x"] + grid["w"] > _GRID_WIDTH:
            problems.append(f"panel-gridpos: {_name(panel)} extends past column 24")
        for other, other_grid in placed:
            if _overlaps(grid, other_grid):
                problems.append(f"panel-gridpos: {_name(panel)} overlaps {other}")
        placed.append((_name(panel), dict(grid)))
    return problems


def _lint_templating(data: Mapping[str, Any]) -> list[str]:
    variables = (data.get("templating") or {}).get("list") or []
    for var in variables:
        if (
            var.get("name") == "datasource"
            and var.get("type") == "datasource"
            and var.get("query") == "prometheus"
        ):
            return []
    return ["template-datasource-rule: no 'datasource' variable of type datasource (prometheus)"]


def _lint_panel(panel: Mapping[str, Any]) -> list[str]:
    problems = []
    name = _name(panel)
    if not panel.get("title"):
        problems.append(f"panel-title-description-rule: {name} has no title")
    if not panel.get("description"):
        problems.append(f"panel-title-description-rule: {name} has no description")
    if not _ds_ok(panel.get("datasource")):
        problems.append(f"panel-datasource-rule: {name} does not use ${{datasource}}")
    unit = ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
    if not unit or not (unit in KNOWN_UNITS or unit.startswith(("suffix:", "prefix:"))):
        problems.append(f"panel-units-rule: {name} has no known unit (got {unit!r})")
    if not panel.get("links"):
        problems.append(f"panel-links-rule: {name} links nowhere")
    if not panel.get("targets"):
        problems.append(f"dashboard-model: {name} has no query targets")
    ref_ids = [t.get("refId") for t in panel.get("targets") or []]
    if len(set(ref_ids)) != len(ref_ids) or not all(ref_ids):
        problems.append(f"dashboard-model: {name} has missing or repeated target refIds")
    return problems


def _lint_expr(
    name: str,
    expr: str,
    *,
    slo_windows: frozenset[str],
    required_matchers: tuple[str, ...],
) -> list[str]:
    problems = []
    for window in _range_args(expr):
        if window != "$__rate_interval" and window not in slo_windows:
            problems.append(
                f"target-rate-interval-rule: {name}: range [{window}] is neither "
                "$__rate_interval nor an SLO window"
            )
    for match in _SELECTOR.finditer(expr):
        metric, matchers, range_part = match.group(1), match.group(2), match.group(3)
        if metric is None:
            continue  # `by (...)` groupings have no braces; this is a label_replace-style map
        for required in required_matchers:
            if required not in matchers:
                problems.append(f"target-selector-rule: {name}: {metric} lacks {required}")
        if metric.endswith(_COUNTER_SUFFIXES) and range_part is None:
            problems.append(
                f"target-counter-agg-rule: {name}: {metric} is read raw, not through a rate"
            )
    for token in _bare_selectors(expr):
        problems.append(f"target-selector-rule: {name}: {token} has no label matchers")
    return problems


def lint_dashboard(
    data: Mapping[str, Any],
    *,
    required_matchers: Iterable[str] = (),
    slo_windows: Iterable[str] = (),
) -> list[str]:
    """Every rule violation in dashboard JSON ``data``, one line each; ``[]`` when clean.

    ``required_matchers`` are label matchers as written in PromQL (``job="api"``,
    ``service="$service"``) that every series selector must carry; ``slo_windows`` are the
    Prometheus durations (``"1h"``, ``"28d"``) allowed as ranges besides ``$__rate_interval``.
    """
    problems = _lint_model(data)
    panels = [p for p in _panels(data) if isinstance(p, dict)]
    problems += _lint_layout(panels)
    problems += _lint_templating(data)
    required = tuple(required_matchers)
    windows = frozenset(slo_windows)
    for panel in panels:
        if panel.get("type") == "row":
            continue
        problems += _lint_panel(panel)
        for target in panel.get("targets") or []:
            where = f"{_name(panel)} target {target.get('refId')}"
            if not _ds_ok(target.get("datasource")):
                problems.append(f"panel-datasource-rule: {where} does not use ${{datasource}}")
            expr = target.get("expr") or ""
            if not expr.strip():
                problems.append(f"dashboard-model: {where} has an empty expr")
            problems += _lint_expr(where, expr, slo_windows=windows, required_matchers=required)
    # Annotation queries scope what is drawn over every panel: another service's alerts there
    # mislead as much as another service's series in a panel.
    annotations = data.get("annotations")
    for annotation in annotations.get("list", []) if isinstance(annotations, dict) else []:
        if not isinstance(annotation, dict) or not annotation.get("expr"):
            continue
        where = f"annotation {annotation.get('name')!r}"
        if not _ds_ok(annotation.get("datasource")):
            problems.append(f"panel-datasource-rule: {where} does not use ${{datasource}}")
        problems += _lint_expr(
            where, annotation["expr"], slo_windows=windows, required_matchers=required
        )
    return problems
