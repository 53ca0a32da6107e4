"""The HTTP client's connection pool: its limits from the spec, and each stream's wait for a
free connection (the ``pool`` phase of ``stream_phase_duration_ms``).

``stream.pool: {max_connections, max_keepalive}`` sizes the pool of the clients that
``openai_client_options`` builds (:mod:`.timeouts`); without the section the pool has the
openai SDK's own defaults (1000 connections, 100 kept alive). A request that finds every
connection busy waits in the pool, up to the pool timeout (the ``dial`` budget), then fails
with a ``PoolTimeout`` (``network``: nothing was dialled, see
:mod:`..providers.failures`).

The transport those clients use (:mod:`._httpx2`) measures the wait from the request entering
the pool to its first trace event on the connection it was given, and stores it in the
response's extensions (:data:`POOL_WAIT_EXTENSION`). The stream wrapper reads it with
:func:`pool_wait` when the attempt opens, in the passive mode (``monitor.wrap``) and the active
one (``monitor.stream``, ``responses_stream``) alike, and reports it as its ``pool`` phase: a
part of ``open``, summed over the stream's attempts. A client built some other way has no such
extension, and its streams no ``pool`` phase (as a monitor without a queue has no ``queue``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .._response import from_response

if TYPE_CHECKING:
    from ...spec import Spec
    from ...spec.model import Pool

__all__ = ["POOL_WAIT_EXTENSION", "pool_settings", "pool_wait"]

#: The response extension holding the seconds a request waited for a pooled connection.
POOL_WAIT_EXTENSION: Final = "steadystream.pool_wait"


def pool_settings(spec: Spec) -> Pool:
    """``spec.stream.pool``, or the defaults when the spec has no such section."""
    from ...spec.model import Pool

    pool = spec.stream.pool
    return pool if pool is not None else Pool()


def pool_wait(stream: Any) -> float | None:
    """Seconds the request behind ``stream`` (an SDK stream, an httpx2 response, or either
    inside another instrumentation's wrapper) waited for a pooled connection; ``None`` when
    its client did not measure it."""
    return from_response(stream, _pool_wait_of)


def _pool_wait_of(holder: Any) -> float | None:
    extensions = getattr(holder, "extensions", None)
    if isinstance(extensions, dict):
        waited = extensions.get(POOL_WAIT_EXTENSION)
        if isinstance(waited, float):
            return waited
    return None
