"""The panels of the generated dashboards: which exist, on which board, in which row, in which
order, under which title, and so at which id.

The dashboards draw the panels (queries, units, thresholds); this module decides where they
are, so alerts and runbooks can link to a panel (``/d/<uid>?viewPanel=<id>``) without building
a dashboard. Grafana numbers rows and panels from 1 in reading order, rows included, so a
panel keeps its id (and every link to it keeps working) as long as the panels before it do.

Panel keys are stable names (``"retries-by-reason"``, ``"slo-stream-errors-burn"``); failure
classes (:mod:`steadystream.catalog.classes`) and alert signals name panels by key, and a test
checks every key they name exists here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import conventions as c
from ..spec import SLO, Spec, format_duration, format_percent
from .links import dashboard_url
from .memo import per_render
from .slo import slo_summary

__all__ = [
    "STREAM_INTERNALS_KEYS",
    "PanelRef",
    "PanelSlot",
    "RowSlot",
    "board_rows",
    "panel_ids",
    "panel_index",
    "slo_panel_keys",
]


@dataclass(frozen=True)
class PanelSlot:
    """A panel's place: its stable ``key`` and its ``title``."""

    key: str
    title: str


@dataclass(frozen=True)
class RowSlot:
    """A titled row of panels, in reading order."""

    title: str
    panels: tuple[PanelSlot, ...]


@dataclass(frozen=True)
class PanelRef:
    """Where a panel ended up: enough to link to it (``/d/<uid>?viewPanel=<id>``)."""

    board: str
    uid: str
    panel_id: int
    title: str
    url: str


_STREAM_INTERNALS: tuple[RowSlot, ...] = (
    RowSlot(
        "Latency: first token, chunk gaps, recovery, where the time goes",
        (
            PanelSlot("ttft-heatmap", "Time to first token (distribution)"),
            PanelSlot("ttft-quantiles", "Time to first token p50 / p95 / p99"),
            PanelSlot("chunk-gap", "Gap between chunks p50 / p95 / p99"),
            PanelSlot("recovery-latency", "Recovery after interruption p50 / p95 / p99"),
            PanelSlot(
                "phase-durations", "Where the time goes: p95 by phase (network vs model vs app)"
            ),
        ),
    ),
    RowSlot(
        "Traffic and load",
        (
            PanelSlot("outcomes", "Streams finished by outcome"),
            PanelSlot("bytes", "Content bytes delivered per second"),
            PanelSlot("in-flight", "In-flight streams: share of capacity"),
            PanelSlot("rejections", "Ingress rejections by reason"),
        ),
    ),
    RowSlot(
        "Failures",
        (
            PanelSlot("error-ratio", "Stream error ratio"),
            PanelSlot("errors-by-class", "Errors by class"),
            PanelSlot("timeouts-by-phase", "Timeouts by phase"),
            PanelSlot("idle-timeouts", "Idle timeouts"),
            PanelSlot("slow-aborts", "Slow-client aborts"),
            PanelSlot("reassembly-errors", "Reassembly errors by kind"),
        ),
    ),
    RowSlot(
        "Retries and resumes",
        (
            PanelSlot("retries-by-reason", "Retries by reason"),
            PanelSlot("rate-limits", "Rate limiting: 429 retries and rate-limited streams"),
            PanelSlot("retry-ratio", "Retries per stream vs the retry budget"),
            PanelSlot("retry-budget-exhausted", "Retries refused: budget exhausted"),
            PanelSlot("resumes", "Resumes: success and failure"),
            PanelSlot("loop-lag", "Process lag p99: event loop and watchdog"),
        ),
    ),
)


#: Every panel key of the stream internals board.
STREAM_INTERNALS_KEYS: frozenset[str] = frozenset(
    slot.key for row in _STREAM_INTERNALS for slot in row.panels
)


def slo_panel_keys(slo_name: str) -> tuple[str, str, str, str]:
    """Keys of an SLO's panels on the overview: SLI over the period, budget left, burn rate
    by window, SLI over time."""
    return (
        f"slo-{slo_name}-sli",
        f"slo-{slo_name}-budget",
        f"slo-{slo_name}-burn",
        f"slo-{slo_name}-sli-trend",
    )


def _slo_row(spec: Spec, slo: SLO) -> RowSlot:
    period = format_duration(spec.period)
    sli, budget, burn, trend = slo_panel_keys(slo.name)
    return RowSlot(
        f"SLO {slo.name}: {slo_summary(slo)}",
        (
            PanelSlot(
                sli, f"{slo.name}: SLI over {period} (objective {format_percent(slo.objective)})"
            ),
            PanelSlot(budget, f"{slo.name}: error budget remaining ({period})"),
            PanelSlot(burn, f"{slo.name}: burn rate by window"),
            PanelSlot(trend, f"{slo.name}: SLI over time"),
        ),
    )


def board_rows(spec: Spec, board: str) -> tuple[RowSlot, ...]:
    """The rows of ``board`` (one of :data:`steadystream.conventions.BOARDS`) for ``spec``."""
    if board == c.BOARD_SLO_OVERVIEW:
        return tuple(_slo_row(spec, slo) for slo in spec.slos)
    if board == c.BOARD_STREAM_INTERNALS:
        return _STREAM_INTERNALS
    raise ValueError(f"unknown board {board!r}; expected one of {', '.join(c.BOARDS)}")


def panel_ids(rows: tuple[RowSlot, ...]) -> dict[str, int]:
    """Every panel key of a board with its Grafana id (reading order from 1, rows included)."""
    ids: dict[str, int] = {}
    next_id = 1
    for row in rows:
        next_id += 1  # the row itself
        for slot in row.panels:
            if slot.key in ids:
                raise ValueError(f"duplicate panel key {slot.key!r}")
            ids[slot.key] = next_id
            next_id += 1
    return ids


@per_render(copy=dict)
def panel_index(spec: Spec) -> dict[str, PanelRef]:
    """Every panel of every board by its stable key (``"retries-by-reason"``,
    ``"slo-time-to-first-token-burn"``), with its board uid, panel id, title and URL."""
    index: dict[str, PanelRef] = {}
    for board in c.BOARDS:
        rows = board_rows(spec, board)
        titles = {slot.key: slot.title for row in rows for slot in row.panels}
        uid = c.dashboard_uid(spec.service, board)
        for key, panel_id in panel_ids(rows).items():
            if key in index:
                raise ValueError(f"panel key {key!r} is used on two boards")
            index[key] = PanelRef(
                board=board,
                uid=uid,
                panel_id=panel_id,
                title=titles[key],
                url=dashboard_url(spec, board, panel_id),
            )
    return index
