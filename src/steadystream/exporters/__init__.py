"""Exporters: Prometheus ``/metrics`` (standalone server, ASGI app, multiprocess mode) and OTLP.

Nothing here imports an optional dependency until it is called.
"""

from __future__ import annotations

from .otlp import OtlpExport, setup_otlp
from .prometheus import (
    MetricsServer,
    mark_process_dead,
    metrics_asgi_app,
    multiprocess_registry,
    start_metrics_server,
)

__all__ = [
    "MetricsServer",
    "OtlpExport",
    "mark_process_dead",
    "metrics_asgi_app",
    "multiprocess_registry",
    "setup_otlp",
    "start_metrics_server",
]
