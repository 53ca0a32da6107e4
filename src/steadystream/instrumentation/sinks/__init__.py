"""Where measurements go: the sink interface and its three implementations.

* :mod:`.telemetry` — :class:`~.telemetry.StreamObserver` / :class:`~.telemetry.TelemetrySink`,
  the interface the core reports to, and what every sink shares.
* :mod:`.prometheus` — the Prometheus sink (metrics in a ``prometheus_client`` registry; the
  ``/metrics`` endpoint that serves them is :mod:`steadystream.exporters.prometheus`).
* :mod:`.otel` — OpenTelemetry metric instruments and spans.
"""
