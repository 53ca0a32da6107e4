"""The demo's defaults, in a module of their own: the CLI builds its ``demo`` options from them
without importing the driver, the simulator or asyncio."""

from __future__ import annotations

__all__ = [
    "DEFAULT_DURATION",
    "DEFAULT_FAULTS",
    "DEFAULT_INCIDENT",
    "DEFAULT_SERVICE",
    "DEFAULT_STREAMS",
    "INCIDENT_STREAMS",
]

#: The demo's service name: the example spec's, so rules generated from
#: ``examples/chat-gateway/slo.yaml`` match the demo's series as they are.
DEFAULT_SERVICE = "chat-gateway"
#: Seconds of steady load of ``demo --duration`` (the load and SLO report, no incident).
DEFAULT_DURATION = 20.0
DEFAULT_STREAMS = 16
DEFAULT_FAULTS = "mixed"
#: The incident ``demo`` plays by default: the upstream answers every request 503, the
#: everyday provider outage (retries pile up behind it; the cause's runbook comes first).
DEFAULT_INCIDENT = "outage"
#: The incident's load: 8 concurrent streams of a model writing a delta every 40 ms (about
#: 1.5 s per answer), light enough that a loaded 2-core machine keeps healthy traffic healthy.
INCIDENT_STREAMS = 8
