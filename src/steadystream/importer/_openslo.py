"""OpenSLO ``openslo/v1alpha`` and ``openslo/v1`` SLOs to a steadystream spec.

Each objective of an ``Occurrences`` SLO with a Prometheus ``ratioMetric`` (v1) or
``ratioMetrics`` (v1alpha) becomes one steadystream SLO with a generic PromQL indicator: its
``good`` or ``bad`` query and its ``total`` query. An ``indicatorRef`` is resolved against the
``SLI`` documents of the same file, a ``metricSourceRef`` against its ``DataSource`` documents.
"""

from __future__ import annotations

import re
from typing import Any

from ..spec.loader import Document
from ._common import Builder, mapping, str_map, unknown_keys
from ._sloth import values_of

_V1ALPHA_UNITS = {"Second": "s", "Minute": "m", "Hour": "h", "Day": "d", "Week": "w"}
_V1_DURATION = re.compile(r"^(\d+)([smhdw])$")


class _Ctx:
    def __init__(self, b: Builder, docs: list[Document]) -> None:
        self.b = b
        self.slis: dict[str, tuple[Document, dict[str, Any]]] = {}
        self.sources: dict[str, tuple[Document, dict[str, Any]]] = {}
        self.slos: list[Document] = []
        self.services: list[Document] = []
        self.period: tuple[str, Document, tuple[Any, ...]] | None = None
        self.service: tuple[str, Document] | None = None
        self.count = 0


def import_openslo(b: Builder, docs: list[Document]) -> None:
    """Fill ``b`` from the OpenSLO documents of one file (SLOs of one service)."""
    ctx = _Ctx(b, docs)
    for doc in docs:
        data = mapping(b, doc, (), doc.data, "an OpenSLO document")
        kind = data.get("kind")
        name = (
            (data.get("metadata") or {}).get("name")
            if isinstance(data.get("metadata"), dict)
            else None
        )
        if kind == "SLO":
            ctx.slos.append(doc)
        elif kind == "SLI" and isinstance(name, str):
            ctx.slis[name] = (doc, mapping(b, doc, ("spec",), data.get("spec"), "spec"))
        elif kind == "DataSource" and isinstance(name, str):
            ctx.sources[name] = (doc, mapping(b, doc, ("spec",), data.get("spec"), "spec"))
        elif kind == "Service":
            ctx.services.append(doc)
        else:
            b.refuse(
                doc,
                ("kind",),
                f"cannot map an OpenSLO {kind!r} document: steadystream imports SLO documents "
                "with the SLI, DataSource and Service documents they use",
            )
    if not ctx.slos:
        b.refuse(docs[0], (), "the file holds no OpenSLO SLO document", key=False)
        return
    for doc in ctx.slos:
        _slo(ctx, doc)
    for doc in ctx.services:
        meta = doc.data.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if ctx.service is not None and name != ctx.service[0]:
            b.refuse(
                doc,
                ("metadata", "name"),
                f"service {name!r} has no SLO in this file (its SLOs are for {ctx.service[0]!r})",
                key=False,
            )


def _slo(ctx: _Ctx, doc: Document) -> None:
    b = ctx.b
    data = doc.data
    alpha = data.get("apiVersion") == "openslo/v1alpha"
    unknown_keys(b, doc, (), data, ("apiVersion", "kind", "metadata", "spec"), "OpenSLO")
    meta = mapping(b, doc, ("metadata",), data.get("metadata"), "metadata")
    unknown_keys(
        b, doc, ("metadata",), meta, ("name", "displayName", "labels", "annotations"), "metadata"
    )
    if "annotations" in meta:
        b.refuse(
            doc,
            ("metadata", "annotations"),
            "cannot map metadata.annotations: steadystream has no place for an SLO's metadata; "
            "set alert annotations in the imported spec's slos[].alerts.annotations",
        )
    spec = mapping(b, doc, ("spec",), data.get("spec"), "spec")
    known = [
        "service",
        "description",
        "budgetingMethod",
        "objectives",
        "indicator",
        "indicatorRef",
        "alertPolicies",
        "timeWindows" if alpha else "timeWindow",
    ]
    unknown_keys(b, doc, ("spec",), spec, known, "OpenSLO spec")
    _service(ctx, doc, spec)
    _period(ctx, doc, spec, alpha)
    method = spec.get("budgetingMethod", "Occurrences")
    if method != "Occurrences":
        b.refuse(
            doc,
            ("spec", "budgetingMethod"),
            f"cannot map budgetingMethod {method!r}: steadystream budgets occurrences (good "
            "events out of all events), not timeslices",
            key=False,
        )
    if spec.get("alertPolicies"):
        b.refuse(
            doc,
            ("spec", "alertPolicies"),
            "cannot map alertPolicies: steadystream alerts on multi-window burn rates "
            "(alerting.tiers); remove them and set the tiers in the imported spec",
        )
    base_name = meta.get("name")
    if "displayName" in meta:
        b.notes.append(
            f"{base_name}: metadata.displayName {meta['displayName']!r} is display text, "
            "which a steadystream spec does not hold"
        )
    labels = str_map(b, doc, ("metadata", "labels"), meta.get("labels"), "labels")
    indicator = _indicator(ctx, doc, spec, alpha)
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or not objectives:
        b.refuse(doc, ("spec", "objectives"), "an SLO needs a non-empty objectives list")
        return
    for j, raw in enumerate(objectives):
        o_src = ("spec", "objectives", j)
        obj = mapping(b, doc, o_src, raw, "an objective")
        okeys = ["displayName", "target", "targetPercent"] + (["ratioMetrics"] if alpha else [])
        unknown_keys(b, doc, o_src, obj, okeys, "OpenSLO objective")
        i = ctx.count
        ctx.count += 1
        if "displayName" in obj:
            b.notes.append(
                f"{base_name}: objectives[{j}].displayName {obj['displayName']!r} is display "
                "text, which a steadystream spec does not hold"
            )
        out = ("slos", i)
        name = base_name if len(objectives) == 1 else f"{base_name}-{j}"
        b.set((*out, "name"), name, doc, ("metadata", "name"))
        if "description" in spec:
            b.set((*out, "description"), spec["description"], doc, ("spec", "description"))
        if "target" in obj:
            b.set((*out, "objective"), obj["target"], doc, (*o_src, "target"))
        elif "targetPercent" in obj:
            target = obj["targetPercent"]
            value = f"{target}%" if isinstance(target, int | float) else target
            b.set((*out, "objective"), value, doc, (*o_src, "targetPercent"))
        else:
            b.refuse(doc, o_src, "an objective needs a target", key=False)
        if labels:
            b.set((*out, "alerts", "labels"), labels, doc, ("metadata", "labels"))
        pair = indicator
        if alpha:
            if "ratioMetrics" in obj:
                pair = _alpha_ratio(ctx, doc, (*o_src, "ratioMetrics"), obj["ratioMetrics"])
            else:
                b.refuse(doc, o_src, "a v1alpha objective needs ratioMetrics", key=False)
        if pair is not None:
            for field, (query, src) in pair.items():
                b.set((*out, "indicator", field), query, *src)
            values = values_of(*(q for q, _ in pair.values()))
            if values is not None:
                b.set((*out, "indicator", "values"), values, *next(iter(pair.values()))[1])


def _service(ctx: _Ctx, doc: Document, spec: dict[str, Any]) -> None:
    service = spec.get("service")
    if ctx.service is None:
        ctx.service = (service, doc)
        ctx.b.set(("service",), service, doc, ("spec", "service"))
    elif service != ctx.service[0]:
        ctx.b.refuse(
            doc,
            ("spec", "service"),
            f"service {service!r} differs from {ctx.service[0]!r}: a steadystream spec holds one "
            "service; import its SLOs from a file of their own",
            key=False,
        )


def _period(ctx: _Ctx, doc: Document, spec: dict[str, Any], alpha: bool) -> None:
    b = ctx.b
    field = "timeWindows" if alpha else "timeWindow"
    windows = spec.get(field)
    src: tuple[Any, ...] = ("spec", field)
    if windows is None:
        return
    if not isinstance(windows, list) or len(windows) != 1 or not isinstance(windows[0], dict):
        b.refuse(doc, src, f"{field} must hold exactly one window", key=False)
        return
    w = windows[0]
    src = (*src, 0)
    unknown_keys(
        b,
        doc,
        src,
        w,
        ("count", "unit", "isRolling") if alpha else ("duration", "isRolling"),
        f"OpenSLO {field}",
    )
    if w.get("isRolling") is False or "calendar" in w:
        b.refuse(
            doc,
            (*src, "isRolling"),
            "cannot map a calendar-aligned window: steadystream's period is rolling",
            key=True,
        )
        return
    if alpha:
        unit_name = w.get("unit")
        unit = _V1ALPHA_UNITS.get(unit_name) if isinstance(unit_name, str) else None
        if unit is None or not isinstance(w.get("count"), int):
            b.refuse(
                doc,
                (*src, "unit"),
                f"cannot map the window {w.get('count')!r} {w.get('unit')!r}: steadystream "
                "periods are whole seconds, minutes, hours, days or weeks",
            )
            return
        period = f"{w['count']}{unit}"
        at = (*src, "count")
    else:
        duration = w.get("duration")
        if not isinstance(duration, str) or not _V1_DURATION.match(duration):
            b.refuse(
                doc,
                (*src, "duration"),
                f"cannot map the duration {duration!r}: steadystream periods are whole "
                "seconds, minutes, hours, days or weeks (months, quarters and years vary)",
                key=False,
            )
            return
        period = duration
        at = (*src, "duration")
    if ctx.period is None:
        ctx.period = (period, doc, at)
        b.set(("period",), period, doc, at)
    elif ctx.period[0] != period:
        b.refuse(
            doc,
            at,
            f"period {period} differs from {ctx.period[0]}: a steadystream spec has one period",
            key=False,
        )


_Pair = dict[str, tuple[Any, tuple[Document, tuple[Any, ...]]]]


def _indicator(ctx: _Ctx, doc: Document, spec: dict[str, Any], alpha: bool) -> _Pair | None:
    """The v1 SLO's indicator (inline or by reference) as generic query fields."""
    b = ctx.b
    if alpha:
        if "indicator" in spec or "indicatorRef" in spec:
            b.refuse(
                doc,
                ("spec", "indicator" if "indicator" in spec else "indicatorRef"),
                "cannot map a v1alpha indicator: give ratioMetrics in each objective",
            )
        return None
    if "indicatorRef" in spec:
        ref = spec["indicatorRef"]
        if not isinstance(ref, str) or ref not in ctx.slis:
            b.refuse(
                doc,
                ("spec", "indicatorRef"),
                f"indicatorRef {ref!r} names no SLI document in this file",
                key=False,
            )
            return None
        sli_doc, sli_spec = ctx.slis[ref]
        return _v1_sli(ctx, sli_doc, ("spec",), sli_spec)
    ind = mapping(b, doc, ("spec", "indicator"), spec.get("indicator"), "indicator")
    if not ind:
        b.refuse(doc, ("spec",), "an SLO needs an indicator or an indicatorRef", key=False)
        return None
    unknown_keys(b, doc, ("spec", "indicator"), ind, ("metadata", "spec"), "indicator")
    src = ("spec", "indicator", "spec")
    return _v1_sli(ctx, doc, src, mapping(b, doc, src, ind.get("spec"), "indicator spec"))


def _v1_sli(ctx: _Ctx, doc: Document, src: tuple[Any, ...], sli: dict[str, Any]) -> _Pair | None:
    b = ctx.b
    unknown_keys(b, doc, src, sli, ("ratioMetric", "thresholdMetric", "description"), "SLI")
    if "thresholdMetric" in sli:
        b.refuse(
            doc,
            (*src, "thresholdMetric"),
            "cannot map thresholdMetric: it compares one query's value with a threshold over "
            "time slices; steadystream counts good and bad events (a ratioMetric, e.g. a "
            "histogram bucket at the threshold as good and its _count as total)",
        )
        return None
    r_src = (*src, "ratioMetric")
    ratio = mapping(b, doc, r_src, sli.get("ratioMetric"), "ratioMetric")
    if not ratio:
        b.refuse(doc, src, "an SLI needs a ratioMetric", key=False)
        return None
    unknown_keys(b, doc, r_src, ratio, ("counter", "good", "bad", "total"), "ratioMetric")
    out: _Pair = {}
    for name, field in (("good", "good_query"), ("bad", "errors_query"), ("total", "total_query")):
        if name not in ratio:
            continue
        m_src = (*r_src, name)
        part = mapping(b, doc, m_src, ratio[name], name)
        unknown_keys(b, doc, m_src, part, ("metricSource",), name)
        ms_src = (*m_src, "metricSource")
        source = mapping(b, doc, ms_src, part.get("metricSource"), "metricSource")
        unknown_keys(b, doc, ms_src, source, ("type", "metricSourceRef", "spec"), "metricSource")
        kind = source.get("type")
        ref = source.get("metricSourceRef")
        if kind is None and isinstance(ref, str) and ref in ctx.sources:
            kind = ctx.sources[ref][1].get("type")
        if not isinstance(kind, str) or kind.lower() != "prometheus":
            b.refuse(
                doc,
                (*ms_src, "type"),
                f"cannot map a {kind!r} metric source: steadystream generates Prometheus "
                "rules, so only Prometheus queries map",
                key=False,
            )
            continue
        q_src = (*ms_src, "spec")
        qspec = mapping(b, doc, q_src, source.get("spec"), "metricSource spec")
        unknown_keys(b, doc, q_src, qspec, ("query",), "metricSource spec")
        if "query" not in qspec:
            b.refuse(doc, q_src, "a Prometheus metric source needs spec.query", key=False)
            continue
        out[field] = (qspec["query"], (doc, (*q_src, "query")))
    return out or None


def _alpha_ratio(ctx: _Ctx, doc: Document, src: tuple[Any, ...], raw: Any) -> _Pair | None:
    b = ctx.b
    ratio = mapping(b, doc, src, raw, "ratioMetrics")
    unknown_keys(b, doc, src, ratio, ("good", "bad", "total", "incremental"), "ratioMetrics")
    if ratio.get("incremental"):
        b.refuse(
            doc,
            (*src, "incremental"),
            "cannot map incremental ratioMetrics: give queries over {{.window}}",
        )
    out: _Pair = {}
    for name, field in (("good", "good_query"), ("bad", "errors_query"), ("total", "total_query")):
        if name not in ratio:
            continue
        m_src = (*src, name)
        part = mapping(b, doc, m_src, ratio[name], name)
        unknown_keys(b, doc, m_src, part, ("source", "queryType", "query", "metadata"), name)
        if (
            str(part.get("source", "")).lower() != "prometheus"
            or part.get("queryType", "promql") != "promql"
        ):
            b.refuse(
                doc,
                (*m_src, "source"),
                f"cannot map source {part.get('source')!r}/{part.get('queryType')!r}: only "
                "Prometheus PromQL queries map",
                key=False,
            )
            continue
        if "metadata" in part:
            b.refuse(doc, (*m_src, "metadata"), "cannot map a query's metadata")
        if "query" not in part:
            b.refuse(doc, m_src, "a Prometheus query needs 'query'", key=False)
            continue
        out[field] = (part["query"], (doc, (*m_src, "query")))
    return out or None
