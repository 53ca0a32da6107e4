"""``steadystream demo``: the whole loop on one machine, with nothing to set up.

:func:`run_demo` starts the fault-injecting upstream (:mod:`steadystream.simulate`) on loopback,
drives ``streams`` concurrent resilient streams through it with the real ``openai.AsyncOpenAI``
client and :func:`steadystream.instrumentation.openai.responses_stream` (retries, retry budget,
exactly-once resume, timeouts), serves the metrics on ``/metrics`` for a Prometheus to scrape,
shows live progress, and ends with a :class:`DemoReport`: each SLO's measured value against its
target, and what happened per failure class.

The package is split by job:

* :mod:`.driver` starts the upstream and the ``/metrics`` server, drives the concurrent
  consumer streams and counts what they saw (:func:`run_demo`, :func:`run_demo_async`);
* :mod:`.report` reads the registry (:class:`MetricsView`, :func:`histogram_quantile`) and builds
  the closing :class:`DemoReport`: each SLO's verdict and the failure classes seen;
* :mod:`.live` is the live progress view (a rich table on a TTY, plain lines otherwise);
* :mod:`.scrape` is the ``prometheus.yml`` fragment under which the generated rules find the demo;
* :mod:`.incident` is the Prometheus loop: the compressed-time demo spec, its generated rules in
  a real Prometheus, the scripted incident (healthy, fault, recovery), ``ALERTS`` watched,
  triage at the peak and the timeline (:func:`run_incident`).

Two independent views are kept, on purpose:

* the demo's **own count** of what its consumers saw (streams finished ok, failed with which
  error, abandoned at shutdown), kept by the driver loop; and
* the **metrics** the instrumentation exported to the registry (the same numbers a Prometheus
  scraping ``/metrics`` sees), from which the SLO verdict is computed exactly as the generated
  recording rules compute it: good events are the histogram bucket at the threshold.

The end-to-end tests check that the two agree, and that Prometheus agrees with both.

    report = run_demo(duration=10, streams=8, faults="mixed", metrics_port=None)
    print(report.render_text())

Names load on first use, so the CLI reads the demo's defaults (:mod:`.defaults`) without the
driver, the simulator and asyncio: ``generate`` and ``triage`` do not pay for the demo.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "AlertRecord": ".incident",
    "ClientTally": ".report",
    "DEFAULT_DURATION": ".defaults",
    "DEFAULT_FAULTS": ".defaults",
    "DEFAULT_INCIDENT": ".defaults",
    "DEFAULT_SERVICE": ".defaults",
    "DEFAULT_STREAMS": ".defaults",
    "DEMO_MODEL": ".driver",
    "DemoReport": ".report",
    "IncidentReport": ".incident",
    "MetricsView": ".report",
    "Phase": ".incident",
    "Progress": ".live",
    "SLOResult": ".report",
    "StreamFactory": ".driver",
    "build_report": ".report",
    "cause_classes": ".incident",
    "demo_spec": ".incident",
    "failure_class_counts": ".report",
    "histogram_quantile": ".report",
    "resilient_stream": ".driver",
    "run_demo": ".driver",
    "run_demo_async": ".driver",
    "run_incident": ".incident",
    "run_incident_async": ".incident",
    "scrape_config": ".scrape",
    "scrape_job": ".scrape",
    "slo_results": ".report",
    "slow_relay_stream": ".driver",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'steadystream.demo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "DEFAULT_DURATION",
    "DEFAULT_FAULTS",
    "DEFAULT_INCIDENT",
    "DEFAULT_SERVICE",
    "DEFAULT_STREAMS",
    "DEMO_MODEL",
    "AlertRecord",
    "ClientTally",
    "DemoReport",
    "IncidentReport",
    "MetricsView",
    "Phase",
    "Progress",
    "SLOResult",
    "StreamFactory",
    "build_report",
    "cause_classes",
    "demo_spec",
    "failure_class_counts",
    "histogram_quantile",
    "resilient_stream",
    "run_demo",
    "run_demo_async",
    "run_incident",
    "run_incident_async",
    "scrape_config",
    "scrape_job",
    "slo_results",
    "slow_relay_stream",
]
