"""A deliberately small HTTP/1.1 layer on asyncio streams.

An ASGI server would hide exactly what the faults need to control: where the bytes of a frame
are cut, when a write happens, and the moment the TCP connection dies. Here every body chunk
is one ``Transfer-Encoding: chunked`` chunk written by us, and a drop is ``transport.abort()``.

Supported: keep-alive, ``Content-Length`` and chunked request bodies, ``Connection: close``.
Not supported (never sent by the ``openai`` client): pipelining beyond sequential requests,
``Expect: 100-continue``, HTTP/2.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final
from urllib.parse import parse_qsl, unquote, urlsplit

MAX_HEADER_BYTES: Final = 64 * 1024
MAX_BODY_BYTES: Final = 16 * 1024 * 1024


class BadRequest(Exception):
    """The request cannot be parsed; the connection answers 400 and closes."""


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    query: dict[str, str]
    version: str
    headers: dict[str, str]
    """Lower-cased names; a repeated header keeps its last value."""
    body: bytes

    @property
    def keep_alive(self) -> bool:
        """Whether the client wants the connection kept open after this request."""
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on the connection, or ``None`` on a clean EOF between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise BadRequest("connection closed inside the request head") from None
    except asyncio.LimitOverrunError:
        raise BadRequest("request head too large") from None
    lines = head[:-4].decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise BadRequest(f"malformed request line {lines[0]!r}") from None
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(f"unsupported HTTP version {version!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(f"malformed header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    body = await _read_body(reader, headers)
    parts = urlsplit(target)
    return Request(
        method=method.upper(),
        path=unquote(parts.path),
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        version=version,
        headers=headers,
        body=body,
    )


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers, ignored
                    return bytes(body)
                if len(body) + size > MAX_BODY_BYTES:
                    raise BadRequest("request body too large")
                body += await reader.readexactly(size)
                await reader.readexactly(2)
        length = int(headers.get("content-length", "0") or "0")
    except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise BadRequest("malformed or truncated request body") from None
    if length < 0 or length > MAX_BODY_BYTES:
        raise BadRequest("bad Content-Length")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise BadRequest("connection closed inside the request body") from None


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ResponseWriter:
    """Writes one response on a connection: either a sized body or a chunked stream."""

    def __init__(
        self,
        writer: asyncio.StreamWriter,
        *,
        keep_alive: bool,
        on_status: Callable[[int], None] | None = None,
    ) -> None:
        self._writer = writer
        self.keep_alive = keep_alive
        self.status: int | None = None
        # Called with the status before the first byte is written, so counters are up to date
        # by the time the client can observe the response.
        self._on_status = on_status

    def _set_status(self, status: int) -> None:
        self.status = status
        if self._on_status is not None:
            self._on_status(status)

    def _connection_headers(self) -> list[tuple[str, str]]:
        return [("connection", "keep-alive" if self.keep_alive else "close")]

    async def send(
        self, status: int, body: bytes, content_type: str, headers: list[tuple[str, str]]
    ) -> None:
        """A complete response with ``Content-Length``."""
        self._set_status(status)
        all_headers = [
            ("content-type", content_type),
            ("content-length", str(len(body))),
            *self._connection_headers(),
            *headers,
        ]
        self._writer.write(_head(status, all_headers) + body)
        await self._writer.drain()

    async def start_stream(self, status: int, headers: list[tuple[str, str]]) -> None:
        """The head of a chunked ``text/event-stream`` response, flushed at once."""
        self._set_status(status)
        all_headers = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("transfer-encoding", "chunked"),
            *self._connection_headers(),
            *headers,
        ]
        self._writer.write(_head(status, all_headers))
        await self._writer.drain()

    async def chunk(self, data: bytes) -> None:
        """One body chunk (one write, one HTTP chunk: the receiver sees this boundary)."""
        if data:
            self._writer.write(b"%x\r\n%b\r\n" % (len(data), data))
            await self._writer.drain()

    async def end_stream(self) -> None:
        """The terminating zero-length chunk: a clean end of the body."""
        self._writer.write(b"0\r\n\r\n")
        await self._writer.drain()

    def abort(self) -> None:
        """Kill the TCP connection now, mid-body: the client sees an incomplete message."""
        self.keep_alive = False
        self._writer.transport.abort()
