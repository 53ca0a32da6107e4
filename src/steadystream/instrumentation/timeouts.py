"""HTTP client timeouts from the spec: the budgets the wrapper cannot enforce itself.

The wrapper enforces first-token, idle and total budgets on the stream. Connecting happens
inside the HTTP client, so ``dial`` and ``tls_handshake`` become the client's *connect* timeout
(httpx has one connect budget covering TCP connect and the TLS handshake, so it is their sum).
The read timeout is ``stream_idle``, a per-read backstop under the wrapper's own idle timeout;
``write`` is ``first_token`` (sending the request is part of waiting for the first token) and
``pool`` (waiting for a free pooled connection) is ``dial``::

    client = httpx.Client(timeout=ss.httpx_timeout(spec))
    client = OpenAI(**ss.openai_client_options(spec))     # or AsyncOpenAI(...)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from ..spec import Spec

__all__ = ["httpx_timeout", "openai_client_options", "timeout_parts"]


def timeout_parts(spec: Spec) -> dict[str, float]:
    """``connect``, ``read``, ``write`` and ``pool`` in seconds, as described above."""
    t = spec.stream.timeouts
    return {
        "connect": t.dial + t.tls_handshake,
        "read": t.stream_idle,
        "write": t.first_token,
        "pool": t.dial,
    }


def httpx_timeout(spec: Spec) -> httpx.Timeout:
    """An ``httpx.Timeout`` for ``spec`` (httpx is imported here, not at module import)."""
    import httpx

    return httpx.Timeout(**timeout_parts(spec))


def openai_client_options(spec: Spec) -> dict[str, Any]:
    """Keyword arguments for ``OpenAI(...)`` / ``AsyncOpenAI(...)``: ``timeout`` as the SDK's
    own ``openai.Timeout`` type (httpx2 in openai 3.x, httpx before)."""
    import openai

    return {"timeout": openai.Timeout(**timeout_parts(spec))}
