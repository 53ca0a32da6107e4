"""Sloth ``prometheus/v1`` specs to a steadystream spec.

Sloth's alerting is steadystream's default: the four SRE Workbook tiers (page on 1h/5m and
6h/30m, ticket on 1d/2h and 3d/6h, spending 2%, 5%, 10% and 10% of the budget) over a 30 day
period. Sloth's labels go on the SLO's alerts (``alerts.labels``), its alert name, annotations
and page/ticket overrides to ``alerts``.
"""

from __future__ import annotations

import re
from typing import Any

from ..spec.loader import Document
from ._common import Builder, mapping, str_map, unknown_keys

#: Sloth's default SLO period (its ``--default-slo-period``).
SLOTH_PERIOD = "30d"

_TOP = ("version", "service", "labels", "slos", "slo_plugins")
_SLO = ("name", "objective", "description", "labels", "sli", "alerting", "plugins")
_PLUGINS = (
    "cannot map {field}: Sloth SLO plugins are Go code that Sloth runs over its rules; "
    "steadystream generates its rules itself (remove {field})"
)
_ALERTING = ("name", "labels", "annotations", "page_alert", "ticket_alert")
_OVERRIDE = ("labels", "annotations", "disable")
_RATE = re.compile(r"\b(i?rate)\s*\(")


def values_of(*queries: str) -> str | None:
    """``None`` (per-second rates, the default) when every query reads ``rate``/``irate``,
    else ``"count"``: Sloth's ``sum_over_time``/``increase`` style queries count events over
    the window."""
    texts = [q for q in queries if isinstance(q, str)]
    return None if all(_RATE.search(q) for q in texts) else "count"


def import_sloth(b: Builder, docs: list[Document]) -> None:
    """Fill ``b`` from Sloth documents (one service per steadystream spec)."""
    doc = docs[0]
    for other in docs[1:]:
        b.refuse(
            other,
            (),
            "a second Sloth document: a steadystream spec holds one service; "
            "import each document from a file of its own",
            key=False,
        )
    top = mapping(b, doc, (), doc.data, "a Sloth spec")
    unknown_keys(b, doc, (), top, _TOP, "Sloth")
    if "slo_plugins" in top:
        b.refuse(doc, ("slo_plugins",), _PLUGINS.format(field="slo_plugins"))
    if "service" in top:
        b.set(("service",), top["service"], doc, ("service",))
    b.set(("period",), SLOTH_PERIOD, doc, ("version",))
    service_labels = str_map(b, doc, ("labels",), top.get("labels"), "labels")
    slos = top.get("slos")
    if not isinstance(slos, list) or not slos:
        b.refuse(doc, ("slos",), "a Sloth spec needs a non-empty 'slos' list", key=False)
        return
    for i, raw in enumerate(slos):
        _slo(b, doc, i, raw, service_labels)


def _slo(b: Builder, doc: Document, i: int, raw: Any, service_labels: dict[str, str]) -> None:
    src = ("slos", i)
    slo = mapping(b, doc, src, raw, "an SLO")
    unknown_keys(b, doc, src, slo, _SLO, "Sloth SLO")
    if "plugins" in slo:
        b.refuse(doc, (*src, "plugins"), _PLUGINS.format(field="plugins"))
    for field in ("name", "description"):
        if field in slo:
            b.set(("slos", i, field), slo[field], doc, (*src, field))
    if "objective" in slo:
        objective = slo["objective"]
        # Sloth writes percents as numbers (99.9); steadystream reads "99.9%".
        value = f"{objective}%" if isinstance(objective, int | float) else objective
        b.set(("slos", i, "objective"), value, doc, (*src, "objective"))
    _sli(b, doc, i, slo.get("sli"))
    labels = {**service_labels, **str_map(b, doc, (*src, "labels"), slo.get("labels"), "labels")}
    alerting = mapping(b, doc, (*src, "alerting"), slo.get("alerting"), "alerting")
    unknown_keys(b, doc, (*src, "alerting"), alerting, _ALERTING, "Sloth alerting")
    a_src = (*src, "alerting")
    labels.update(str_map(b, doc, (*a_src, "labels"), alerting.get("labels"), "labels"))
    out = ("slos", i, "alerts")
    if labels:
        b.set((*out, "labels"), labels, doc, (*a_src, "labels") if alerting else (*src,))
    if "name" in alerting:
        b.set((*out, "name"), alerting["name"], doc, (*a_src, "name"))
    annotations = str_map(b, doc, (*a_src, "annotations"), alerting.get("annotations"), "annot.")
    if annotations:
        b.set((*out, "annotations"), annotations, doc, (*a_src, "annotations"))
    for sloth, ours in (("page_alert", "page"), ("ticket_alert", "ticket")):
        o_src = (*a_src, sloth)
        override = mapping(b, doc, o_src, alerting.get(sloth), sloth)
        unknown_keys(b, doc, o_src, override, _OVERRIDE, f"Sloth {sloth}")
        if override.get("disable") is True:
            b.set((*out, ours, "enabled"), False, doc, (*o_src, "disable"))
        elif "disable" in override and override["disable"] is not False:
            b.refuse(doc, (*o_src, "disable"), "disable must be true or false", key=False)
        for field in ("labels", "annotations"):
            values = str_map(b, doc, (*o_src, field), override.get(field), field)
            if values:
                b.set((*out, ours, field), values, doc, (*o_src, field))


def _sli(b: Builder, doc: Document, i: int, raw: Any) -> None:
    src = ("slos", i, "sli")
    sli = mapping(b, doc, src, raw, "sli")
    if not sli:
        b.refuse(doc, src, "an SLO needs an 'sli' (events)", key=True)
        return
    unknown_keys(b, doc, src, sli, ("events", "raw", "plugin"), "Sloth sli")
    if "plugin" in sli:
        b.refuse(
            doc,
            (*src, "plugin"),
            "cannot map sli.plugin: a Sloth SLI plugin is Go code that runs inside Sloth; "
            "write the queries it generates as sli.events (error_query, total_query)",
        )
    if "raw" in sli:
        b.refuse(
            doc,
            (*src, "raw"),
            "cannot map sli.raw: a raw error ratio carries no event counts, which "
            "steadystream's event-weighted long windows and low-traffic guard need; write it "
            "as sli.events (error_query, total_query)",
        )
    if "events" not in sli:
        return
    ev_src = (*src, "events")
    events = mapping(b, doc, ev_src, sli["events"], "sli.events")
    unknown_keys(b, doc, ev_src, events, ("error_query", "total_query"), "Sloth sli.events")
    out = ("slos", i, "indicator")
    queries = []
    for sloth, ours in (("error_query", "errors_query"), ("total_query", "total_query")):
        if sloth in events:
            b.set((*out, ours), events[sloth], doc, (*ev_src, sloth))
            if isinstance(events[sloth], str):
                queries.append(events[sloth])
    if not events.get("total_query") or not events.get("error_query"):
        b.refuse(doc, ev_src, "sli.events needs error_query and total_query", key=True)
    values = values_of(*queries) if queries else None
    if values is not None:
        b.set((*out, "values"), values, doc, ev_src)
        b.notes.append(
            f"slos[{i}]: its queries do not read rate(): their values are read as event "
            "counts over the window (values: count)"
        )
