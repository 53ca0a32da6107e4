"""What the loopback test servers share: a binary started on a free port in its own temporary
directory, waited for until ready (``/-/ready`` for the HTTP servers), stopped cleanly, and
bounded waits that report the tail of the server's own log.

:class:`~steadystream.testing.PrometheusServer` and
:class:`~steadystream.testing.AlertmanagerServer` supply only what differs: how to find the
binary, what to write into the directory, the command line, and their error class;
:class:`~steadystream.testing.RedisServer` also how to tell it is ready.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import httpx

T = TypeVar("T")

_LOG_TAIL_LINES = 30
_PORT_ATTEMPTS = 5


class ServerError(RuntimeError):
    """A server failed to start, answered an API call with an error, or a wait timed out.

    ``log_tail`` holds the last lines of the server's log (empty when there is none).
    """

    #: The server's name as its log header says it (``prometheus``).
    server: ClassVar[str] = "server"

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        self.log_tail = log_tail
        if log_tail:
            message = f"{message}\n--- {self.server} log (last lines) ---\n{log_tail}"
        super().__init__(message)


def free_port(host: str) -> int:
    # The port is released before the server binds it, so another process may take it first;
    # start() notices "address already in use" in the log and tries again with a new port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LoopbackServer:
    """A server process on ``host`` (loopback) with its own temporary directory."""

    #: Shown in messages (``Prometheus``); the subclass's error class.
    name: ClassVar[str]
    error: ClassVar[type[ServerError]]

    def __init__(self, *, host: str, port: int, binary: str | None, startup_timeout: float) -> None:
        self.host = host
        self.port = port
        self.binary = binary
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._log: Any = None
        self._log_path: Path | None = None
        self._client: httpx.Client | None = None

    # ------------------------------------------------------------------ what differs
    def _find_binary(self) -> str:
        raise NotImplementedError

    def _prepare(self, directory: Path) -> Path:
        """Write the configuration into ``directory``; return the config file's path."""
        raise NotImplementedError

    def _argv(self, binary: str, config_path: Path) -> list[str]:
        """The command line, listening on ``self.host:self.port``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (valid once started)."""
        if self._proc is None:
            raise self.error(f"{self.name} is not running; call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        """The temporary directory holding the config, the server's data and its log."""
        if self._dir is None:
            raise self.error(f"{self.name} is not running; call start() first")
        return self._dir

    def start(self) -> Self:
        """Start the server and wait (bounded by ``startup_timeout``) until it is ready
        (``/-/ready`` is 200, for the HTTP servers).

        Raises the subclass's error, with the log tail, when the binary is missing, the process
        exits early (a bad configuration, say) or is not ready in time. Nothing is left running
        or on disk when it raises.
        """
        if self._proc is not None:
            raise self.error(f"{self.name} is already running")
        binary = self.binary or self._find_binary()
        self._dir = Path(tempfile.mkdtemp(prefix=f"steadystream-{self.name.lower()}-"))
        fixed_port = self.port != 0
        try:
            config_path = self._prepare(self._dir)
            for attempt in range(_PORT_ATTEMPTS):
                if not fixed_port:
                    self.port = free_port(self.host)
                if self._launch(binary, config_path, attempt, retry_port=not fixed_port):
                    return self
            raise self.error(
                f"no free port found for {self.name} on {self.host} after "
                f"{_PORT_ATTEMPTS} attempts",
                log_tail=self.log_tail(),
            )
        except BaseException:
            self.stop()
            raise

    def _launch(self, binary: str, config_path: Path, attempt: int, *, retry_port: bool) -> bool:
        """Run the binary once; True when ready, False when the picked port was taken (so
        another can be tried). A taken fixed port is an error."""
        assert self._dir is not None
        self._log_path = self._dir / f"{self.name.lower()}-{attempt}.log"
        self._log = self._log_path.open("wb")
        self._proc = subprocess.Popen(
            self._argv(binary, config_path),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._client = httpx.Client(base_url=f"http://{self.host}:{self.port}", timeout=5.0)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                tail = self.log_tail()
                self._discard_process()
                if "address already in use" in tail.lower() and retry_port:
                    return False
                raise self.error(
                    f"{self.name} exited with status {code} before it was ready", log_tail=tail
                )
            if self._ready():
                return True
            time.sleep(0.1)
        raise self.error(
            f"{self.name} was not ready on {self.host}:{self.port} within "
            f"{self.startup_timeout:g}s",
            log_tail=self.log_tail(),
        )

    def _ready(self) -> bool:
        """One readiness probe: ``GET /-/ready`` answers 200 (servers without HTTP override)."""
        assert self._client is not None
        with contextlib.suppress(httpx.HTTPError):
            return self._client.get("/-/ready").status_code == 200
        return False

    def _discard_process(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=10)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and delete its directory.

        Safe to call more than once, and after a failed :meth:`start`.
        """
        self._discard_process()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server's log ('' when there is none)."""
        path = self._log_path
        if path is None or not path.exists():
            return ""
        text = path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _http(self) -> httpx.Client:
        if self._client is None or self._proc is None:
            raise self.error(f"{self.name} is not running; call start() first")
        return self._client

    def _request(
        self, method: str, path: str, *, any_status: bool = False, **kw: Any
    ) -> httpx.Response:
        """One HTTP call to the server. A transport failure, or (unless ``any_status``) a
        status other than 200, raises the subclass's error with the log tail."""
        try:
            response = self._http().request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise self.error(f"{method} {path} failed: {exc}", log_tail=self.log_tail()) from exc
        if not any_status and response.status_code != 200:
            raise self.error(
                f"{method} {path}: HTTP {response.status_code}: {response.text[:500].strip()}",
                log_tail=self.log_tail(),
            )
        return response

    # ------------------------------------------------------------------ bounded waits
    def wait_until(
        self,
        probe: Callable[[], T],
        *,
        timeout: float = 30.0,
        interval: float = 0.25,
        what: str = "condition",
    ) -> T:
        """Call ``probe`` until it returns a truthy value, at most ``timeout`` seconds.

        Returns that value. On timeout raises the subclass's error with the last value (or
        exception) the probe produced and the log tail. That error raised by the probe counts
        as "not yet", so a probe may query what does not exist yet.
        """
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise self.error(
                    f"{self.name} exited while waiting for {what}", log_tail=self.log_tail()
                )
            try:
                value = probe()
            except self.error as exc:
                last = exc
            else:
                if value:
                    return value
                last = value
            if time.monotonic() >= deadline:
                raise self.error(
                    f"timed out after {timeout:g}s waiting for {what}; last: {last!r}",
                    log_tail=self.log_tail(),
                )
            time.sleep(interval)
