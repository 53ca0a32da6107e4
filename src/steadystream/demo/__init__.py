"""``steadystream demo``: the whole loop on one machine, with nothing to set up.

Everything lives in :mod:`.driver` for now; this package re-exports what the CLI and the
tests use.
"""

from __future__ import annotations

from .driver import (
    DEFAULT_DURATION,
    DEFAULT_FAULTS,
    DEFAULT_SERVICE,
    DEFAULT_STREAMS,
    DEMO_MODEL,
    ClientTally,
    DemoReport,
    MetricsView,
    Progress,
    SLOResult,
    StreamFactory,
    build_report,
    failure_class_counts,
    histogram_quantile,
    resilient_stream,
    run_demo,
    run_demo_async,
    scrape_config,
    scrape_job,
    slo_results,
    slow_relay_stream,
)

__all__ = [
    "DEFAULT_DURATION",
    "DEFAULT_FAULTS",
    "DEFAULT_SERVICE",
    "DEFAULT_STREAMS",
    "DEMO_MODEL",
    "ClientTally",
    "DemoReport",
    "MetricsView",
    "Progress",
    "SLOResult",
    "StreamFactory",
    "build_report",
    "failure_class_counts",
    "histogram_quantile",
    "resilient_stream",
    "run_demo",
    "run_demo_async",
    "scrape_config",
    "scrape_job",
    "slo_results",
    "slow_relay_stream",
]
