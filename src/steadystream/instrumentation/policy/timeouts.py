"""HTTP client timeouts from the spec: the budgets the wrapper cannot enforce itself.

The wrapper enforces first-token, idle and total budgets on the stream. Connecting happens
inside the HTTP client, in two steps with a budget each: ``dial`` (the TCP connect) and
``tls_handshake``. httpx and httpx2 have a single *connect* timeout, handed to both steps, so on
its own it can only be a backstop: their sum. The clients :func:`openai_client_options` builds
enforce the two separately, through a network backend (:mod:`._httpx2`): a TLS handshake that
stalls fails after ``tls_handshake``, not after ``dial + tls_handshake``, and each timeout is
counted under its own ``stream_timeouts_total{phase}`` (``dial`` or ``tls``, read by
:func:`..providers.failures.connect_timeout_phase`). Both are ``connect_timeout`` failures,
retried like any transient network failure.

The read timeout is only a backstop behind the wrapper's own first-token and idle timers, so it
is 1.5 x the longer of ``first_token`` and ``stream_idle`` (plus 250 ms): one read waits for the
response headers and the first bytes, which may legitimately take the whole first-token budget
(reasoning models: ``first_token`` 30 s, ``stream_idle`` 8 s), and a read timeout equal to a
budget would race the wrapper's typed timeout with the client's untyped one. ``write`` is
``first_token`` (sending the request is part of waiting for the first token) and ``pool``
(waiting for a free pooled connection, see :mod:`.pool`) is ``dial``::

    client = OpenAI(**monitor.openai_client_options())                      # sync
    aclient = AsyncOpenAI(**monitor.openai_client_options(asynchronous=True))
    client = OpenAI(**ss.openai_client_options(spec))                       # without a monitor
    client = httpx.Client(timeout=ss.httpx_timeout(spec))   # one connect budget: dial + TLS
    client = httpx.Client(timeout=monitor.httpx_timeout(), limits=monitor.httpx_limits())

``openai_client_options`` gives ``timeout`` and ``http_client``: an httpx2 client (the SDK's
own ``DefaultHttpxClient`` / ``DefaultAsyncHttpxClient``, so its other defaults hold) whose
pool has ``stream.pool``'s limits, whose connections dial and shake hands under their own
deadlines, and which measures each request's wait for a connection (the ``pool`` phase). The
client is sync or async, so an ``AsyncOpenAI`` needs ``asynchronous=True`` (the SDK refuses a
sync client with a ``TypeError`` naming the argument). With openai before 3.x (httpx, not
httpx2) only ``timeout`` is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from ...spec import Spec

__all__ = [
    "httpx_limits",
    "httpx_timeout",
    "openai_client_options",
    "read_backstop",
    "timeout_parts",
]


def timeout_parts(spec: Spec) -> dict[str, float]:
    """``connect``, ``read``, ``write`` and ``pool`` in seconds, as described above."""
    t = spec.stream.timeouts
    return {
        "connect": t.dial + t.tls_handshake,
        "read": read_backstop(spec),
        "write": t.first_token,
        "pool": t.dial,
    }


def read_backstop(spec: Spec) -> float:
    """The HTTP client's read timeout: past both the first-token and the idle budget, so the
    wrapper's typed timeouts always fire first (see the module docstring)."""
    t = spec.stream.timeouts
    return max(t.first_token, t.stream_idle) * 1.5 + 0.25


def httpx_timeout(spec: Spec) -> httpx.Timeout:
    """An ``httpx.Timeout`` for ``spec`` (httpx is imported here, not at module import)."""
    import httpx

    return httpx.Timeout(**timeout_parts(spec))


def httpx_limits(spec: Spec) -> httpx.Limits:
    """An ``httpx.Limits`` with ``stream.pool``'s sizes, for a plain httpx client
    (``httpx.Client(timeout=httpx_timeout(spec), limits=httpx_limits(spec))``). Such a client
    has one connect budget and reports no ``pool`` phase; :func:`openai_client_options` builds
    one that does both."""
    import httpx

    from .pool import pool_settings

    pool = pool_settings(spec)
    return httpx.Limits(
        max_connections=pool.max_connections, max_keepalive_connections=pool.max_keepalive
    )


def openai_client_options(spec: Spec, *, asynchronous: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``OpenAI(...)`` (``asynchronous=True``: ``AsyncOpenAI(...)``):
    ``timeout`` as the SDK's own ``openai.Timeout`` type and, with openai 3.x (httpx2), an
    ``http_client`` with the spec's pool and separate dial and TLS deadlines (see the module
    docstring)."""
    import openai

    timeout = openai.Timeout(**timeout_parts(spec))
    options: dict[str, Any] = {"timeout": timeout}
    try:
        import httpx2
    except ImportError:  # openai before 3.x streams over httpx: timeouts only
        return options
    if not issubclass(openai.DefaultHttpxClient, httpx2.Client):
        return options
    from ._httpx2 import http_client
    from .pool import pool_settings

    pool = pool_settings(spec)
    t = spec.stream.timeouts
    limits = httpx2.Limits(
        max_connections=pool.max_connections, max_keepalive_connections=pool.max_keepalive
    )
    kind = openai.DefaultAsyncHttpxClient if asynchronous else openai.DefaultHttpxClient
    options["http_client"] = http_client(
        dial=t.dial,
        tls=t.tls_handshake,
        limits=limits,
        timeout=timeout,
        asynchronous=asynchronous,
        client_type=kind,
    )
    return options
