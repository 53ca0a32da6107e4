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

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .instrumentation.core.checkpoint import Checkpoint
    from .instrumentation.core.reassembly import ServerSentEvent
    from .instrumentation.errors import (
        ClientTooSlow,
        EventTooLarge,
        FirstTokenTimeout,
        IdleTimeout,
        IngressRejected,
        LagTimeout,
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


#: Where each public name lives. They load on first use, so importing one part of the package
#: (``steadystream.runbooks`` in a CI job, ``steadystream.spec`` in an editor plugin) does not
#: load the stream wrapper, and the wrapper does not load the generators.
_LAZY: dict[str, str] = {
    "Checkpoint": ".instrumentation.core.checkpoint",
    "ClientTooSlow": ".instrumentation.errors",
    "EventTooLarge": ".instrumentation.errors",
    "FirstTokenTimeout": ".instrumentation.errors",
    "IdleTimeout": ".instrumentation.errors",
    "IngressRejected": ".instrumentation.errors",
    "LagTimeout": ".instrumentation.errors",
    "ResumeFailed": ".instrumentation.errors",
    "RetryBudgetExhausted": ".instrumentation.errors",
    "ServerSentEvent": ".instrumentation.core.reassembly",
    "Spec": ".spec",
    "SpecError": ".spec",
    "StreamError": ".instrumentation.errors",
    "StreamMonitor": ".instrumentation.monitor",
    "StreamTimeout": ".instrumentation.errors",
    "TotalTimeout": ".instrumentation.errors",
    "UpstreamError": ".instrumentation.errors",
    "default_spec": ".spec",
    "httpx_timeout": ".instrumentation.policy.timeouts",
    "load_spec": ".spec",
    "openai_client_options": ".instrumentation.policy.timeouts",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'steadystream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Checkpoint",
    "ClientTooSlow",
    "EventTooLarge",
    "FirstTokenTimeout",
    "IdleTimeout",
    "IngressRejected",
    "LagTimeout",
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
