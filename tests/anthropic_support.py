"""Shared set-up of the Anthropic tests: a monitor with in-memory telemetry, request helpers."""

from __future__ import annotations

import hashlib
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c

MODEL = "claude-sim"
PROMPT = "hi"
TOKENS = 24
LABELS = {"service": "svc", "model": MODEL, "provider": "anthropic"}
MESSAGES = [{"role": "user", "content": PROMPT}]


def make_spec(**timeouts: str) -> ss.Spec:
    """Generous timeouts (a loaded CI machine never crosses them) unless a test sets short ones
    for the fault it injects; retries with short backoff."""
    t = {"first_token": "20s", "stream_idle": "20s", "total": "60s", **timeouts}
    return ss.Spec.model_validate(
        {
            "version": 1,
            "service": "svc",
            "stream": {
                "timeouts": t,
                "checkpoint": {"every": 4},
                "retry": {
                    "max_retries": 3,
                    "base_backoff": "10ms",
                    "max_backoff": "50ms",
                    "budget": "100%",
                    "min_per_second": 10,
                },
            },
        }
    )


class Telemetry:
    """A monitor with a fresh Prometheus registry and in-memory spans."""

    def __init__(self, spec: ss.Spec | None = None) -> None:
        self.registry = CollectorRegistry()
        self.spans = InMemorySpanExporter()
        tp = TracerProvider()
        tp.add_span_processor(SimpleSpanProcessor(self.spans))
        self.monitor = ss.StreamMonitor(
            spec or make_spec(), registry=self.registry, tracer_provider=tp
        )

    def value(self, name: str, **extra: str) -> float:
        v = self.registry.get_sample_value(name, {**LABELS, **extra})
        return 0.0 if v is None else v

    def snapshot(self) -> dict[str, float]:
        """Every sample of the registry (for exact deltas: compare two snapshots)."""
        out: dict[str, float] = {}
        for metric in self.registry.collect():
            for s in metric.samples:
                if s.name.endswith(("_created", "_bucket")) or s.name.endswith("_sum"):
                    continue
                key = s.name + "".join(
                    f",{k}={v}" for k, v in sorted(s.labels.items()) if k not in LABELS
                )
                out[key] = s.value
        return out

    def stream_spans(self) -> list[Any]:
        return [s for s in self.spans.get_finished_spans() if s.name == c.SPAN_STREAM]


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What changed between two snapshots (gauges included), without zero changes."""
    keys = set(before) | set(after)
    out = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in keys}
    return {k: v for k, v in sorted(out.items()) if v}


def text_of(events: list[Any]) -> str:
    """The answer text of Anthropic SDK events or dicts."""
    parts = []
    for e in events:
        typ = e["type"] if isinstance(e, dict) else e.type
        if typ != "content_block_delta":
            continue
        d = e["delta"] if isinstance(e, dict) else e.delta
        dtype = d["type"] if isinstance(d, dict) else d.type
        if dtype == "text_delta":
            parts.append(d["text"] if isinstance(d, dict) else d.text)
    return "".join(parts)


def types_of(events: list[Any]) -> list[str]:
    return [e["type"] if isinstance(e, dict) else e.type for e in events]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def fault(spec: str) -> dict[str, str]:
    return {c.HEADER_FAULT: spec}
