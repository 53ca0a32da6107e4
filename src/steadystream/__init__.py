"""steadystream: observability and SRE operations for LLM token streaming.

One YAML SLO spec drives the instrumented stream wrapper, the Prometheus rules, the Grafana
dashboards and the runbooks::

    import steadystream as ss

    spec = ss.load_spec("slo.yaml")
    monitor = ss.StreamMonitor(spec)
    for event in monitor.wrap(stream, model="gpt-4.1", provider="openai"):
        ...
"""

from __future__ import annotations

from .instrumentation.core.checkpoint import Checkpoint
from .instrumentation.core.reassembly import ServerSentEvent
from .instrumentation.errors import (
    ClientTooSlow,
    FirstTokenTimeout,
    IdleTimeout,
    IngressRejected,
    ResumeFailed,
    RetryBudgetExhausted,
    StreamError,
    StreamTimeout,
    TotalTimeout,
    UpstreamError,
)
from .instrumentation.monitor import StreamMonitor
from .instrumentation.policy.timeouts import httpx_timeout, openai_client_options
from .spec import Spec, SpecError, default_spec, load_spec
from .version import __version__

__all__ = [
    "Checkpoint",
    "ClientTooSlow",
    "FirstTokenTimeout",
    "IdleTimeout",
    "IngressRejected",
    "ResumeFailed",
    "RetryBudgetExhausted",
    "ServerSentEvent",
    "Spec",
    "SpecError",
    "StreamError",
    "StreamMonitor",
    "StreamTimeout",
    "TotalTimeout",
    "UpstreamError",
    "__version__",
    "default_spec",
    "httpx_timeout",
    "load_spec",
    "openai_client_options",
]
