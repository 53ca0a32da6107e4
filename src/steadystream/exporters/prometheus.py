"""Serving ``/metrics`` to Prometheus: a standalone server, an ASGI app, multiprocess mode.

Standalone (a background thread; pick the address, default loopback)::

    from steadystream.exporters import start_metrics_server
    server = start_metrics_server(port=9464, addr="0.0.0.0")
    ...
    server.close()

In Starlette / FastAPI, as a route::

    from steadystream.exporters import metrics_asgi_app
    app.add_route("/metrics", metrics_asgi_app())

A route answers ``/metrics`` itself. ``app.mount("/metrics", metrics_asgi_app())`` also works,
but a mount only matches the paths *below* ``/metrics/``: Starlette's router answers
``/metrics`` with a 307 redirect to ``/metrics/`` before the app sees the request (Prometheus
follows it, at the cost of a second request per scrape).

Multiprocess mode (gunicorn or uvicorn with several workers). Each worker is its own process
with its own metric values, so prometheus_client must keep them in files that the scrape
endpoint adds up:

1. Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory *before* Python starts (the
   prometheus_client import reads it), and empty it on every deploy.
2. Serve ``metrics_asgi_app(multiprocess=True)`` or
   ``start_metrics_server(port, multiprocess=True)``: a fresh registry with a
   ``MultiProcessCollector`` that reads every worker's files.
3. In gunicorn's ``child_exit`` hook call ``steadystream.exporters.mark_process_dead(worker.pid)``
   so the live gauges (``stream_in_flight``) forget dead workers.

In that mode ``stream_in_flight`` is summed over live workers and ``stream_error_rate`` is
reported per worker (``pid`` label), updated when a stream ends: it is a local view by design;
SLO math uses the counters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import threading
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry

__all__ = [
    "MetricsServer",
    "mark_process_dead",
    "metrics_asgi_app",
    "multiprocess_registry",
    "start_metrics_server",
]


def multiprocess_registry() -> CollectorRegistry:
    """A registry that collects every worker's metrics from ``PROMETHEUS_MULTIPROC_DIR``.

    Use it only for serving; the monitors in the workers keep the default registry.
    """
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def mark_process_dead(pid: int) -> None:
    """Forget the live gauges of a dead worker (call it from gunicorn's ``child_exit``)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


def _serving_registry(registry: Any, multiprocess: bool) -> Any:
    if multiprocess:
        if registry is not None:
            raise ValueError("pass either registry= or multiprocess=True, not both")
        return multiprocess_registry()
    if registry is None:
        from prometheus_client import REGISTRY

        return REGISTRY
    return registry


@dataclass
class MetricsServer:
    """A running ``/metrics`` server; ``url`` is where Prometheus scrapes it."""

    host: str
    port: int
    _server: WSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_metrics_server(
    port: int,
    addr: str = "127.0.0.1",
    *,
    registry: CollectorRegistry | None = None,
    multiprocess: bool = False,
) -> MetricsServer:
    """Serve ``registry`` (default: the global one) on ``addr:port`` in a daemon thread.

    ``port=0`` picks a free port (read it from the result). The default address is loopback:
    exposing metrics beyond the host is a decision to make explicitly (``addr="0.0.0.0"``).
    """
    from prometheus_client import start_http_server

    server, thread = start_http_server(
        port, addr=addr, registry=_serving_registry(registry, multiprocess)
    )
    return MetricsServer(addr, server.server_port, server, thread)


class _MetricsApp:
    """The ASGI app :func:`metrics_asgi_app` returns.

    An object, not a function: Starlette's ``Route`` (and so ``app.add_route``) wraps a plain
    function as a request handler, but hands an object's ``__call__`` the raw ASGI scope.
    """

    def __init__(self, registry: Any) -> None:
        from prometheus_client import make_asgi_app

        self.registry = registry
        self._app = make_asgi_app(registry)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)


def metrics_asgi_app(
    registry: CollectorRegistry | None = None, *, multiprocess: bool = False
) -> Callable[..., Any]:
    """An ASGI app serving the Prometheus text format at any path it is given.

    Route it at ``/metrics`` (``app.add_route("/metrics", metrics_asgi_app())`` in Starlette
    and FastAPI, ``Route("/metrics", metrics_asgi_app())`` in a route list), so ``/metrics``
    answers without a redirect; a mount at ``/metrics`` serves ``/metrics/`` and leaves
    ``/metrics`` to Starlette's 307 redirect.
    """
    return _MetricsApp(_serving_registry(registry, multiprocess))
