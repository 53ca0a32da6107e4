"""A real Redis on loopback, for tests of the shared (cluster-wide) limits.

Starts Debian's ``redis-server`` (``make tools`` installs it) with:

- ``--bind <host> --port <free port>``, so nothing listens beyond the loopback interface;
- no persistence (``--save ''``, ``--appendonly no``) and a temporary working directory,
  removed on stop;
- its log in that directory, whose tail every error carries.

Readiness is an answered ``PING``. :meth:`RedisServer.stop` then :meth:`RedisServer.start`
brings the server back on the same port, empty, as after a crash without persistence: the way
to test that clients survive an outage and pick the server up again.

    with RedisServer() as redis:
        monitor = StreamMonitor(spec_with_shared_url(redis.url))
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path

from ._process import LoopbackServer, ServerError

__all__ = ["RedisError", "RedisNotFound", "RedisServer", "find_redis_server"]

#: Where Debian's ``redis-server`` package installs the server.
DEBIAN_BINARY = "/usr/bin/redis-server"


class RedisError(ServerError):
    """redis-server failed to start, or a wait timed out.

    ``log_tail`` holds the last lines of the server's log (empty when there is none).
    """

    server = "redis-server"


class RedisNotFound(RedisError):
    """No ``redis-server`` on ``PATH`` or at ``/usr/bin/redis-server``."""


def find_redis_server() -> str:
    """Path of ``redis-server``: ``$PATH`` first, then Debian's location.

    Raises :class:`RedisNotFound` with the install hint (``make tools`` installs Debian's
    ``redis-server`` package) rather than letting a test skip silently.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    if os.access(DEBIAN_BINARY, os.X_OK):
        return DEBIAN_BINARY
    raise RedisNotFound(
        "redis-server was not found (on PATH or at /usr/bin/redis-server); run 'make tools' "
        "(installs the Debian 'redis-server' package) or install Redis >= 6.2 from "
        "https://redis.io/download/"
    )


class RedisServer(LoopbackServer):
    """A ``redis-server`` process on loopback with its own temporary directory.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`); ``port=0`` picks a
    free port, which a later :meth:`start` reuses.
    """

    name = "Redis"
    error = RedisError

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        binary: str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(host=host, port=port, binary=binary, startup_timeout=startup_timeout)

    @property
    def url(self) -> str:
        """``redis://host:port/0`` (valid once started)."""
        if self._proc is None:
            raise self.error(f"{self.name} is not running; call start() first")
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        """True while the server process is up."""
        return self._proc is not None and self._proc.poll() is None

    def _find_binary(self) -> str:
        return find_redis_server()

    def _prepare(self, directory: Path) -> Path:
        config_path = directory / "redis.conf"
        config_path.write_text(
            "\n".join(
                (
                    "save ''",
                    "appendonly no",
                    f"dir {directory}",
                    "daemonize no",
                    'logfile ""',
                    "loglevel notice",
                    "",
                )
            ),
            encoding="utf-8",
        )
        return config_path

    def _argv(self, binary: str, config_path: Path) -> list[str]:
        return [
            binary,
            str(config_path),
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
        ]

    def _ready(self) -> bool:
        return self.ping()

    def ping(self, timeout: float = 1.0) -> bool:
        """True when the server answers ``PING`` with ``PONG`` within ``timeout``."""
        with (
            contextlib.suppress(OSError),
            socket.create_connection((self.host, self.port), timeout=timeout) as sock,
        ):
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
        return False
