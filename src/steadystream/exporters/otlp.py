"""OTLP export of spans and metrics in one call (extra ``steadystream[otlp]``).

::

    from steadystream.exporters import setup_otlp
    otlp = setup_otlp("http://otel-collector:4318", service_name="chat-gateway")
    monitor = ss.StreamMonitor(spec, tracer_provider=otlp.tracer_provider,
                               meter_provider=otlp.meter_provider)
    ...
    otlp.shutdown()      # flushes what is pending

The meter provider is the SDK's, without views, so a monitor's histograms are bucketed in the
monitor's batched flush and added to each export (one SDK call per export, not per
observation; see ``steadystream.instrumentation.sinks.otel_aggregate``). The temporality is
the exporter's: ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta`` gives delta
histograms and counters.

It speaks OTLP/HTTP (protobuf) to ``{endpoint}/v1/traces`` and ``{endpoint}/v1/metrics``. With
``set_global=True`` (the default) the providers are also installed as OpenTelemetry's global
ones, so a monitor created afterwards with no providers uses them.

The standard OpenTelemetry environment is honoured, and an explicit argument always wins over
it:

==========================================  ===================================================
``OTEL_SERVICE_NAME``                        ``service.name`` (else ``service.name`` from
                                             ``OTEL_RESOURCE_ATTRIBUTES``, else
                                             ``steadystream``); ``service_name=`` wins
``OTEL_RESOURCE_ATTRIBUTES``                 more resource attributes (``k=v,k2=v2``,
                                             percent-encoded values); ``resource_attributes=``
                                             wins key by key
``OTEL_EXPORTER_OTLP_ENDPOINT``              base URL, default ``http://localhost:4318``;
                                             ``endpoint=`` wins
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,      the full URL of one signal (used as it is, no
``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``      ``/v1/...`` appended); ``endpoint=`` wins
``OTEL_EXPORTER_OTLP_HEADERS``,              headers (``k=v,k2=v2``); the per-signal variable
``OTEL_EXPORTER_OTLP_{TRACES,METRICS}_...``  replaces the common one; ``headers=`` wins key
                                             by key
``OTEL_EXPORTER_OTLP_PROTOCOL`` (and per     ``http/protobuf`` only (the default); anything
signal)                                      else is a ``ValueError`` naming the variable
==========================================  ===================================================

``timeout=None`` and ``export_interval=None`` leave the exporter's own variables in charge
(``OTEL_EXPORTER_OTLP_TIMEOUT``, ``OTEL_METRIC_EXPORT_INTERVAL``, compression, certificates).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["DEFAULT_ENDPOINT", "DEFAULT_SERVICE_NAME", "OtlpExport", "setup_otlp"]

#: The OTLP/HTTP endpoint when neither ``endpoint=`` nor the environment names one.
DEFAULT_ENDPOINT = "http://localhost:4318"
#: ``service.name`` when neither ``service_name=`` nor the environment names one.
DEFAULT_SERVICE_NAME = "steadystream"
_PROTOCOL = "http/protobuf"
_SIGNALS = {"traces": "v1/traces", "metrics": "v1/metrics"}


@dataclass(frozen=True)
class OtlpExport:
    """The providers :func:`setup_otlp` built, and how to stop them."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    traces_endpoint: str
    """Where spans go."""
    metrics_endpoint: str
    """Where metrics go."""

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        """Export everything pending now; True when both exports succeeded in time."""
        spans = self.tracer_provider.force_flush(timeout_millis)
        metrics = self.meter_provider.force_flush(timeout_millis)
        return bool(spans and metrics)

    def shutdown(self) -> None:
        """Flush and stop both exporters."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def _pairs(name: str, text: str) -> dict[str, str]:
    """``k=v,k2=v2`` (percent-encoded) as the OpenTelemetry variables write headers and
    resource attributes; a malformed item is a ``ValueError`` naming the variable."""
    out: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{name}: {item.strip()!r} is not key=value (items are k=v,k2=v2)")
        out[unquote(key.strip())] = unquote(value.strip())
    return out


def _signal_endpoint(signal: str, endpoint: str | None, env: Mapping[str, str]) -> str:
    if endpoint is None:
        own = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "").strip()
        if own:
            return own
        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or DEFAULT_ENDPOINT
    return f"{endpoint.rstrip('/')}/{_SIGNALS[signal]}"


def _signal_headers(
    signal: str, headers: Mapping[str, str] | None, env: Mapping[str, str]
) -> dict[str, str]:
    # The per-signal variable replaces the common one, as the specification says; header
    # names are case-insensitive, and an explicit header wins key by key (the exporter itself
    # merges the variables the same way).
    own = f"OTEL_EXPORTER_OTLP_{signal.upper()}_HEADERS"
    name = own if env.get(own, "").strip() else "OTEL_EXPORTER_OTLP_HEADERS"
    out = {k.lower(): v for k, v in _pairs(name, env.get(name, "")).items()}
    out.update({k.lower(): v for k, v in (headers or {}).items()})
    return out


def _check_protocol(signal: str, env: Mapping[str, str]) -> None:
    for name in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = env.get(name, "").strip()
        if value:
            if value != _PROTOCOL:
                raise ValueError(
                    f"{name}={value}: setup_otlp speaks OTLP/HTTP with protobuf only; set it "
                    f"to {_PROTOCOL} (the collector's port 4318) or unset it"
                )
            return  # the per-signal variable, when set, decides for its signal


def _resource_attributes(
    service_name: str | None,
    resource_attributes: Mapping[str, str] | None,
    env: Mapping[str, str],
) -> dict[str, str]:
    attrs = _pairs("OTEL_RESOURCE_ATTRIBUTES", env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    if env.get("OTEL_SERVICE_NAME", "").strip():
        attrs["service.name"] = env["OTEL_SERVICE_NAME"].strip()
    attrs.update(resource_attributes or {})
    if service_name is not None:
        attrs["service.name"] = service_name
    attrs.setdefault("service.name", DEFAULT_SERVICE_NAME)
    return attrs


def setup_otlp(
    endpoint: str | None = None,
    *,
    service_name: str | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    export_interval: float | None = None,
    timeout: float | None = None,
    set_global: bool = True,
    environ: Mapping[str, str] | None = None,
) -> OtlpExport:
    """Export spans (batched) and metrics (every ``export_interval`` seconds; default: the
    ``OTEL_METRIC_EXPORT_INTERVAL`` variable, else 60) to an OTLP/HTTP endpoint such as
    ``http://localhost:4318``.

    Every argument left at ``None`` comes from the standard OpenTelemetry variables (see the
    module documentation), read from ``environ`` (default: ``os.environ``); an argument given
    wins over them. ``headers`` go with every request (for authentication: pass them in or set
    ``OTEL_EXPORTER_OTLP_HEADERS``, never put secrets in the endpoint URL). Raises
    ``ValueError`` for a protocol other than ``http/protobuf`` or a malformed variable.
    """
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

    env = os.environ if environ is None else environ
    for signal in _SIGNALS:
        _check_protocol(signal, env)
    traces_url = _signal_endpoint("traces", endpoint, env)
    metrics_url = _signal_endpoint("metrics", endpoint, env)
    # Built from the attributes resolved above (plus the SDK's telemetry.sdk.* ones), so the
    # variables are read once, from ``environ``, with the arguments' precedence.
    sdk = {
        k: v for k, v in Resource.create({}).attributes.items() if k.startswith("telemetry.sdk.")
    }
    resource = Resource({**sdk, **_resource_attributes(service_name, resource_attributes, env)})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(
                endpoint=traces_url,
                headers=_signal_headers("traces", headers, env),
                timeout=timeout,
            )
        )
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(
            endpoint=metrics_url,
            headers=_signal_headers("metrics", headers, env),
            timeout=timeout,
        ),
        export_interval_millis=None if export_interval is None else export_interval * 1000.0,
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    if set_global:
        from opentelemetry import metrics, trace

        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    return OtlpExport(tracer_provider, meter_provider, traces_url, metrics_url)
