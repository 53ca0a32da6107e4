"""Hostile input at the runtime's boundaries: label values, SSE bodies, telemetry providers.

Each test reproduces a defect first seen with hostile or careless input (a model name that broke
every later scrape, an SSE event that made the wrapper drop the events around it, an unbounded
SSE line, a meter provider that fails at construction, a watchdog holding finished streams).
"""

from __future__ import annotations

from typing import Any

import httpx
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import steadystream as ss
from steadystream import conventions as c
from steadystream.exporters import start_metrics_server
from steadystream.instrumentation.sinks.telemetry import MAX_LABEL_CHARS, clean_label

# ---------------------------------------------------------------------------- label values

LONG_A = "a" * 1_000_000  # 1 MB
LONG_B = "a" * 999_999 + "b"  # differs from LONG_A in its last character only
HOSTILE = (
    "gpt-\ud800-lone-surrogate",
    "\udfff",
    LONG_A,
    LONG_B,
    "line one\nline two\r\n",
    'say "hi"',
    "back\\slash\\",
    "nul\x00bell\x07tab\t",
    "rtl\u202eoverride",
)


class Telemetry:
    """A monitor wired to a fresh registry, an SDK meter provider and an in-memory exporter."""

    def __init__(self, **kw: Any) -> None:
        self.registry = CollectorRegistry()
        self.reader = InMemoryMetricReader()
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.monitor = ss.StreamMonitor(
            ss.default_spec("svc"),
            registry=self.registry,
            tracer_provider=tracer_provider,
            meter_provider=MeterProvider(metric_readers=[self.reader]),
            **kw,
        )

    def otel_attributes(self) -> list[dict[str, Any]]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            dict(p.attributes or {})
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            for p in m.data.data_points
        ]


def _clean(value: str) -> bool:
    """Encodable as UTF-8, printable (no control characters), at most the cap."""
    value.encode("utf-8")  # raises on a lone surrogate
    return value.isprintable() and len(value) <= MAX_LABEL_CHARS


def test_clean_label_replaces_invalid_text_and_caps_length_stably() -> None:
    """Invalid Unicode and control characters become U+FFFD; long values keep a prefix and a
    stable hash suffix, so distinct long names stay distinct; cleaning is idempotent."""
    assert clean_label("gpt-4.1") == "gpt-4.1"
    assert clean_label("gpt-\ud800x") == "gpt-\ufffdx"
    assert clean_label("a\nb") == "a\ufffdb"
    assert clean_label('q"\\') == 'q"\\'  # printable; the exposition format escapes these
    assert clean_label("modèle-✓") == "modèle-✓"
    for name in HOSTILE:
        out = clean_label(name)
        assert _clean(out), repr(out[:40])
        assert clean_label(out) == out
        assert clean_label(name) == out  # stable across calls
    a, b = clean_label(LONG_A), clean_label(LONG_B)
    assert a != b and len(a) == len(b) == MAX_LABEL_CHARS
    assert a.startswith("a" * 100)
    assert clean_label("x" * MAX_LABEL_CHARS) == "x" * MAX_LABEL_CHARS
    assert len(clean_label("x" * (MAX_LABEL_CHARS + 1))) == MAX_LABEL_CHARS
    assert clean_label(42) == "42"


def test_metrics_scrape_survives_hostile_model_and_provider_names() -> None:
    """A lone surrogate once made every later scrape fail (HTTP 500), a 1 MB name made every
    scrape 1 MB larger. Now: /metrics answers 200 with a bounded body that prometheus_client's
    own parser reads, and every label value is clean; spans and OTel metrics carry the same
    cleaned values."""
    tel = Telemetry(watchdog=False)
    for name in HOSTILE:
        list(tel.monitor.wrap(iter(["hello"]), model=name, provider=name))
    # The same hostile name again maps to the same series.
    list(tel.monitor.wrap(iter(["again"]), model=HOSTILE[0], provider="openai"))

    with start_metrics_server(0, registry=tel.registry) as server:
        resp = httpx.get(server.url, timeout=30)
    assert resp.status_code == 200, resp.text[:500]
    # 9 label sets of every metric, each label value at most 128 characters (<= 512 bytes).
    assert len(resp.content) < 1_000_000, len(resp.content)
    models: set[str] = set()
    providers: set[str] = set()
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            for key, val in sample.labels.items():
                assert _clean(val), (family.name, key, val[:40])
            if c.LABEL_MODEL in sample.labels:
                models.add(sample.labels[c.LABEL_MODEL])
                providers.add(sample.labels[c.LABEL_PROVIDER])
    expected = {clean_label(n) for n in HOSTILE}
    assert models == expected
    # Providers are capped at 8 distinct values (the ninth hostile name is "other").
    assert providers - {c.OTHER_MODEL, "openai"} <= expected
    assert clean_label(HOSTILE[0]) in providers and clean_label(LONG_A) in providers
    assert clean_label(LONG_A) in models and clean_label(LONG_B) in models
    ok = sum(
        s.value
        for f in text_string_to_metric_families(resp.text)
        for s in f.samples
        if s.name == "stream_requests_total" and s.labels.get(c.LABEL_OUTCOME) == "ok"
    )
    assert ok == len(HOSTILE) + 1

    for attrs in tel.otel_attributes():
        for key in (c.LABEL_MODEL, c.LABEL_PROVIDER):
            if key in attrs:
                assert _clean(attrs[key]), (key, attrs[key][:40])

    spans = [s for s in tel.spans.get_finished_spans() if s.name == c.SPAN_STREAM]
    assert len(spans) == len(HOSTILE) + 1
    for span in spans:
        attrs = dict(span.attributes or {})
        for key in (c.ATTR_REQUEST_MODEL, c.ATTR_PROVIDER):
            assert _clean(attrs[key]), (key, attrs[key][:40])
    assert {dict(s.attributes or {})[c.ATTR_REQUEST_MODEL] for s in spans} == expected


def test_hostile_names_still_count_against_the_model_cap() -> None:
    """The cap on distinct model labels holds for cleaned names (cleaning does not mint new
    series: 40 distinct 1 MB names make at most max_models labels plus ``other``)."""
    tel = Telemetry(watchdog=False)
    cap = tel.monitor.spec.stream.max_models
    labels = {tel.monitor.model_label(f"{i}" + "z" * 1_000_000) for i in range(cap + 8)}
    assert len(labels) == cap + 1 and c.OTHER_MODEL in labels
    assert all(_clean(v) for v in labels)
