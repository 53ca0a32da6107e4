"""HTTP client timeouts from the spec: the budgets the wrapper cannot enforce itself.

The wrapper enforces first-token, idle and total budgets on the stream. Connecting happens
inside the HTTP client, so ``dial`` and ``tls_handshake`` become the client's *connect* timeout
(httpx has one connect budget covering TCP connect and the TLS handshake, so it is their sum).
The read timeout is only a backstop behind the wrapper's own first-token and idle timers, so it
is 1.5 x the longer of ``first_token`` and ``stream_idle`` (plus 250 ms): one read waits for the
response headers and the first bytes, which may legitimately take the whole first-token budget
(reasoning models: ``first_token`` 30 s, ``stream_idle`` 8 s), and a read timeout equal to a
budget would race the wrapper's typed timeout with the client's untyped one. ``write`` is
``first_token`` (sending the request is part of waiting for the first token) and ``pool``
(waiting for a free pooled connection) is ``dial``::

    client = httpx.Client(timeout=ss.httpx_timeout(spec))
    client = OpenAI(**ss.openai_client_options(spec))     # or AsyncOpenAI(...)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from ...spec import Spec

__all__ = ["httpx_timeout", "openai_client_options", "read_backstop", "timeout_parts"]


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


def openai_client_options(spec: Spec) -> dict[str, Any]:
    """Keyword arguments for ``OpenAI(...)`` / ``AsyncOpenAI(...)``: ``timeout`` as the SDK's
    own ``openai.Timeout`` type (httpx2 in openai 3.x, httpx before)."""
    import openai

    return {"timeout": openai.Timeout(**timeout_parts(spec))}
