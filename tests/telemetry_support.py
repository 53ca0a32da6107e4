"""Support shared by the wrapper tests: :class:`Recorder`, a StreamObserver that records
every call, and a StreamMonitor wired to in-memory telemetry (a fresh Prometheus registry,
finished spans, and OTel metrics read back from an SDK meter provider).

Each test module subclasses :class:`Telemetry` with its own ``labels`` (the service, model and
provider its streams carry) and ``default_spec``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import steadystream as ss
from steadystream import conventions as c
from steadystream.simulate import prompt_key


def simulated_input_tokens(prompt: object) -> int:
    """The input tokens the simulator reports for a request whose prompt is ``prompt``: its
    usage generation counts a quarter of the prompt's canonical key (``prompt_key``) in UTF-8
    bytes, at least 1 (the same for Responses, Chat Completions and Messages; a Messages
    continuation's prompt is the conversation without its assistant prefill)."""
    return max(1, len(prompt_key(prompt).encode()) // 4)


def token_deltas(input_tokens: int, output_tokens: int) -> dict[str, float]:
    """The ``stream_tokens_total`` deltas of a stream whose requests reported these sums."""
    return {
        f"{c.TOKENS_TOTAL},{c.LABEL_TOKEN_TYPE}={c.TOKEN_INPUT}": input_tokens,
        f"{c.TOKENS_TOTAL},{c.LABEL_TOKEN_TYPE}={c.TOKEN_OUTPUT}": output_tokens,
    }


def is_stream_span(span: Any) -> bool:
    """The span of a logical stream (the GenAI span, named ``{operation} {model}``), told
    apart from its attempts and from other instrumentations' spans by steadystream's role
    attribute, not by its name."""
    return (span.attributes or {}).get(c.ATTR_SPAN_ROLE) == c.SPAN_ROLE_STREAM


def is_attempt_span(span: Any) -> bool:
    """One attempt of a logical stream (an INTERNAL child of the stream span)."""
    return (span.attributes or {}).get(c.ATTR_SPAN_ROLE) == c.SPAN_ROLE_ATTEMPT


class Telemetry:
    """A monitor with a fresh registry, in-memory spans and in-memory OTel metrics."""

    labels: ClassVar[dict[str, str]] = {}

    @staticmethod
    def default_spec() -> ss.Spec:
        return ss.default_spec("svc")

    def __init__(self, spec: ss.Spec | None = None, **kw: Any) -> None:
        self.registry = CollectorRegistry()
        self.spans = InMemorySpanExporter()
        self.tracer_provider = tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.monitor = ss.StreamMonitor(
            spec or self.default_spec(),
            registry=self.registry,
            tracer_provider=tracer_provider,
            meter_provider=MeterProvider(metric_readers=[self.reader]),
            **kw,
        )

    def value(self, name: str, **extra: str) -> float:
        """A Prometheus sample with the module's labels (0.0 when absent)."""
        v = self.registry.get_sample_value(name, {**self.labels, **extra})
        return 0.0 if v is None else v

    def snapshot(self) -> dict[str, float]:
        """Every counter and count sample of the registry, keyed by name and the labels beyond
        the module's (for exact deltas: compare two snapshots)."""
        out: dict[str, float] = {}
        for metric in self.registry.collect():
            for s in metric.samples:
                if s.name.endswith(("_created", "_bucket", "_sum")):
                    continue
                if s.name.startswith(c.LOOP_LAG):
                    continue  # the process's lag, sampled by time, not by stream
                key = s.name + "".join(
                    f",{k}={v}" for k, v in sorted(s.labels.items()) if k not in self.labels
                )
                out[key] = s.value
        return out

    def stream_spans(self) -> list[Any]:
        return [s for s in self.spans.get_finished_spans() if is_stream_span(s)]

    def otel_attributes(self) -> list[dict[str, Any]]:
        """The attributes of every OTel metric data point recorded so far."""
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            dict(p.attributes or {})
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            for p in m.data.data_points
        ]


class Recorder:
    """A StreamObserver that records every call as (method, args)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]
