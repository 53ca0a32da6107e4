"""The httpx2 / httpcore2 side of :mod:`.pool` and :mod:`.timeouts`: the transport the client
options bring (imported only when a client is built).

Two seams, each the narrowest one the libraries support:

* **Dial and TLS deadlines: a network backend.** httpcore2 hands the request's single
  ``connect`` timeout to both ``connect_tcp`` and ``start_tls``; a network backend is the only
  public place where the two steps are separate calls. :class:`DeadlineBackend` (and its async
  twin) passes each call the tighter of that timeout and its own deadline, and re-raises a
  ``ConnectTimeout`` marked with the step it happened in (``dial`` or ``tls``), which the one
  failure classifier reads (:func:`..providers.failures.connect_timeout_phase`).
* **Pool wait: the ``trace`` request extension.** A pool emits no trace event of its own; the
  first event of a request comes from the connection it was given (``connect_tcp`` for a new
  one, ``send_request_headers`` for a reused one). The time from the transport receiving the
  request to that first event is the wait for a free connection. The transport stores it in
  the response's extensions, where the stream wrapper reads it (:func:`.pool.pool_wait`).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore2
import httpx2

from ... import conventions as c
from ..providers.failures import CONNECT_PHASE_ATTR
from .pool import POOL_WAIT_EXTENSION

__all__ = [
    "AsyncDeadlineBackend",
    "AsyncMeasuredTransport",
    "DeadlineBackend",
    "MeasuredTransport",
    "http_client",
]

_SPEC_FIELD = {c.TIMEOUT_DIAL: "dial", c.TIMEOUT_TLS: "tls_handshake"}


def _tighter(timeout: float | None, deadline: float) -> float:
    return deadline if timeout is None else min(timeout, deadline)


def _marked(phase: str, where: str, deadline: float, cause: BaseException) -> Exception:
    """A ``ConnectTimeout`` saying which step ran out, marked for the failure classifier."""
    step = "TCP connect" if phase == c.TIMEOUT_DIAL else "TLS handshake"
    exc = httpcore2.ConnectTimeout(
        f"{step} to {where} timed out (stream.timeouts.{_SPEC_FIELD[phase]}: {deadline:g}s; "
        f"{cause or type(cause).__name__})"
    )
    setattr(exc, CONNECT_PHASE_ATTR, phase)
    return exc


class _DeadlineStream(httpcore2.NetworkStream):
    """A TCP stream whose ``start_tls`` runs under the TLS deadline."""

    def __init__(self, inner: httpcore2.NetworkStream, tls: float, where: str) -> None:
        self._inner = inner
        self._tls = tls
        self._where = where

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.NetworkStream:
        try:
            return self._inner.start_tls(ssl_context, server_hostname, _tighter(timeout, self._tls))
        except httpcore2.ConnectTimeout as exc:
            raise _marked(c.TIMEOUT_TLS, self._where, self._tls, exc) from exc

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore2.NetworkBackend):
    """httpcore2's sync backend with the TCP connect under ``dial`` seconds and the TLS
    handshake under ``tls`` seconds, each on its own."""

    def __init__(
        self, dial: float, tls: float, inner: httpcore2.NetworkBackend | None = None
    ) -> None:
        self._inner = inner if inner is not None else httpcore2.SyncBackend()
        self.dial = dial
        self.tls = tls

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        where = f"{host}:{port}"
        try:
            stream = self._inner.connect_tcp(
                host, port, _tighter(timeout, self.dial), local_address, socket_options
            )
        except httpcore2.ConnectTimeout as exc:
            raise _marked(c.TIMEOUT_DIAL, where, self.dial, exc) from exc
        return _DeadlineStream(stream, self.tls, where)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.NetworkStream:
        stream = self._inner.connect_unix_socket(path, _tighter(timeout, self.dial), socket_options)
        return _DeadlineStream(stream, self.tls, path)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncDeadlineStream(httpcore2.AsyncNetworkStream):
    """:class:`_DeadlineStream` for async clients."""

    def __init__(self, inner: httpcore2.AsyncNetworkStream, tls: float, where: str) -> None:
        self._inner = inner
        self._tls = tls
        self._where = where

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            return await self._inner.start_tls(
                ssl_context, server_hostname, _tighter(timeout, self._tls)
            )
        except httpcore2.ConnectTimeout as exc:
            raise _marked(c.TIMEOUT_TLS, self._where, self._tls, exc) from exc

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class AsyncDeadlineBackend(httpcore2.AsyncNetworkBackend):
    """:class:`DeadlineBackend` for async clients (over anyio: asyncio or trio)."""

    def __init__(
        self, dial: float, tls: float, inner: httpcore2.AsyncNetworkBackend | None = None
    ) -> None:
        self._inner = inner if inner is not None else httpcore2.AnyIOBackend()
        self.dial = dial
        self.tls = tls

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        where = f"{host}:{port}"
        try:
            stream = await self._inner.connect_tcp(
                host, port, _tighter(timeout, self.dial), local_address, socket_options
            )
        except httpcore2.ConnectTimeout as exc:
            raise _marked(c.TIMEOUT_DIAL, where, self.dial, exc) from exc
        return _AsyncDeadlineStream(stream, self.tls, where)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.AsyncNetworkStream:
        stream = await self._inner.connect_unix_socket(
            path, _tighter(timeout, self.dial), socket_options
        )
        return _AsyncDeadlineStream(stream, self.tls, path)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _pool_kwargs(limits: httpx2.Limits, verify: ssl.SSLContext | str | bool) -> dict[str, Any]:
    return {
        "ssl_context": httpx2.create_ssl_context(verify=verify),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


class MeasuredTransport(httpx2.HTTPTransport):
    """httpx2's transport over a pool of ``limits`` whose connections dial and shake hands
    under their own deadlines (:class:`DeadlineBackend`), recording each request's pool wait
    in ``response.extensions[POOL_WAIT_EXTENSION]`` (seconds).

    The pool is the one ``HTTPTransport`` itself would build from ``limits``, given the
    network backend its constructor has no parameter for.
    """

    def __init__(
        self,
        *,
        dial: float,
        tls: float,
        limits: httpx2.Limits,
        verify: ssl.SSLContext | str | bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(verify=verify, limits=limits)
        self._pool = httpcore2.ConnectionPool(
            **_pool_kwargs(limits, verify), network_backend=DeadlineBackend(dial, tls)
        )
        self.limits = limits
        self._clock = clock

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        clock = self._clock
        started = clock()
        acquired: list[float] = []
        outer = request.extensions.get("trace")

        def trace(name: str, info: dict[str, Any]) -> None:
            if not acquired:
                acquired.append(clock())
            if outer is not None:
                outer(name, info)

        request.extensions = {**request.extensions, "trace": trace}
        response = super().handle_request(request)
        if acquired:
            response.extensions[POOL_WAIT_EXTENSION] = max(0.0, acquired[0] - started)
        return response


class AsyncMeasuredTransport(httpx2.AsyncHTTPTransport):
    """:class:`MeasuredTransport` for async clients."""

    def __init__(
        self,
        *,
        dial: float,
        tls: float,
        limits: httpx2.Limits,
        verify: ssl.SSLContext | str | bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(verify=verify, limits=limits)
        self._pool = httpcore2.AsyncConnectionPool(
            **_pool_kwargs(limits, verify), network_backend=AsyncDeadlineBackend(dial, tls)
        )
        self.limits = limits
        self._clock = clock

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        clock = self._clock
        started = clock()
        acquired: list[float] = []
        outer: Callable[[str, dict[str, Any]], Awaitable[None]] | None = request.extensions.get(
            "trace"
        )

        async def trace(name: str, info: dict[str, Any]) -> None:
            if not acquired:
                acquired.append(clock())
            if outer is not None:
                await outer(name, info)

        request.extensions = {**request.extensions, "trace": trace}
        response = await super().handle_async_request(request)
        if acquired:
            response.extensions[POOL_WAIT_EXTENSION] = max(0.0, acquired[0] - started)
        return response


def http_client(
    *,
    dial: float,
    tls: float,
    limits: httpx2.Limits,
    timeout: httpx2.Timeout,
    asynchronous: bool,
    client_type: type[Any] | None = None,
) -> httpx2.Client | httpx2.AsyncClient:
    """An httpx2 client (``client_type``, by default ``httpx2.Client`` / ``AsyncClient``;
    the openai SDK passes its own ``DefaultHttpxClient`` so its defaults hold) over a
    :class:`MeasuredTransport` / :class:`AsyncMeasuredTransport`.

    A client given a transport ignores the proxy environment (``HTTPS_PROXY``, ``NO_PROXY``,
    ...), so the proxies it names are mounted here as httpx2 itself would mount them, with
    the same limits: requests through a proxy keep working and keep the pool's size, but
    connect under one connect budget and report no pool phase."""
    if asynchronous:
        kind = client_type if client_type is not None else httpx2.AsyncClient
        return kind(
            transport=AsyncMeasuredTransport(dial=dial, tls=tls, limits=limits),
            mounts=_proxy_mounts(limits, asynchronous=True),
            timeout=timeout,
            limits=limits,
        )
    kind = client_type if client_type is not None else httpx2.Client
    return kind(
        transport=MeasuredTransport(dial=dial, tls=tls, limits=limits),
        mounts=_proxy_mounts(limits, asynchronous=False),
        timeout=timeout,
        limits=limits,
    )


def _proxy_mounts(
    limits: httpx2.Limits, *, asynchronous: bool
) -> dict[str, httpx2.BaseTransport | httpx2.AsyncBaseTransport | None]:
    """The transports httpx2 mounts for the proxy environment variables (``None``: a
    ``NO_PROXY`` exception, served by the client's own transport)."""
    from httpx2._utils import get_environment_proxies

    kind = httpx2.AsyncHTTPTransport if asynchronous else httpx2.HTTPTransport
    return {
        pattern: None if url is None else kind(proxy=httpx2.Proxy(url=url), limits=limits)
        for pattern, url in get_environment_proxies().items()
    }
