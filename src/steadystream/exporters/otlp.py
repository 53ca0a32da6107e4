"""OTLP export of spans and metrics in one call (extra ``steadystream[otlp]``).

::

    from steadystream.exporters import setup_otlp
    otlp = setup_otlp("http://otel-collector:4318", service_name="chat-gateway")
    monitor = ss.StreamMonitor(spec, tracer_provider=otlp.tracer_provider,
                               meter_provider=otlp.meter_provider)
    ...
    otlp.shutdown()      # flushes what is pending

It speaks OTLP/HTTP (protobuf) to ``{endpoint}/v1/traces`` and ``{endpoint}/v1/metrics``. With
``set_global=True`` (the default) the providers are also installed as OpenTelemetry's global
ones, so a monitor created afterwards with no providers uses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["OtlpExport", "setup_otlp"]


@dataclass(frozen=True)
class OtlpExport:
    """The providers :func:`setup_otlp` built, and how to stop them."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        """Export everything pending now; True when both exports succeeded in time."""
        spans = self.tracer_provider.force_flush(timeout_millis)
        metrics = self.meter_provider.force_flush(timeout_millis)
        return bool(spans and metrics)

    def shutdown(self) -> None:
        """Flush and stop both exporters."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def setup_otlp(
    endpoint: str,
    *,
    service_name: str = "steadystream",
    headers: Mapping[str, str] | None = None,
    export_interval: float = 15.0,
    timeout: float = 10.0,
    set_global: bool = True,
) -> OtlpExport:
    """Export spans (batched) and metrics (every ``export_interval`` seconds) to an OTLP/HTTP
    endpoint such as ``http://localhost:4318``. ``headers`` go with every request (for
    authentication: pass them in, never put secrets in the endpoint URL)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "OTLP export needs the 'otlp' extra: pip install 'steadystream[otlp]'"
        ) from exc
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    base = endpoint.rstrip("/")
    hdrs = dict(headers or {})
    resource = Resource.create({"service.name": service_name})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=hdrs, timeout=timeout)
        )
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{base}/v1/metrics", headers=hdrs, timeout=timeout),
        export_interval_millis=export_interval * 1000.0,
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    if set_global:
        from opentelemetry import metrics, trace

        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    return OtlpExport(tracer_provider, meter_provider)
