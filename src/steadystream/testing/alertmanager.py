"""A real Alertmanager on loopback, for end-to-end tests of generated routes and inhibit rules.

``amtool check-config`` proves that a configuration parses; only a running Alertmanager proves
which alerts its inhibit rules silence. This module starts the Alertmanager binary (Debian's
``prometheus-alertmanager`` package installs it as ``/usr/bin/prometheus-alertmanager``;
upstream releases call it ``alertmanager``) with:

- a temporary directory for the configuration, the notification log and silences, removed on
  stop;
- ``--web.listen-address=127.0.0.1:<free port>`` and clustering switched off
  (``--cluster.listen-address=``), so nothing listens beyond the loopback interface;
- the given configuration (data, YAML text or a file).

Every wait is a bounded loop that stops by itself and, on timeout, raises with the last thing it
saw and the tail of Alertmanager's own log.

    with AlertmanagerServer(Path("out/alertmanager/chat-gateway.yaml")) as am:
        am.post_alerts([{"labels": {"alertname": "StreamRetryStorm", "service": "chat-gateway"}}])
        am.wait_until(lambda: am.alerts(), what="the alert to arrive")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import yaml

from .prometheus import _free_port

__all__ = [
    "AlertmanagerError",
    "AlertmanagerNotFound",
    "AlertmanagerServer",
    "find_alertmanager",
]

T = TypeVar("T")

#: The names the server binary goes by: upstream's, then Debian's.
BINARY_NAMES = ("alertmanager", "prometheus-alertmanager")
#: Where Debian's ``prometheus-alertmanager`` package installs the server.
DEBIAN_BINARY = "/usr/bin/prometheus-alertmanager"
_LOG_TAIL_LINES = 30


class AlertmanagerError(RuntimeError):
    """Alertmanager failed to start, answered an API call with an error, or a wait timed out.

    ``log_tail`` holds the last lines of the server's log (empty when there is none).
    """

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        self.log_tail = log_tail
        if log_tail:
            message = f"{message}\n--- alertmanager log (last lines) ---\n{log_tail}"
        super().__init__(message)


class AlertmanagerNotFound(AlertmanagerError):
    """No Alertmanager binary on ``PATH`` or at ``/usr/bin/prometheus-alertmanager``."""


def find_alertmanager() -> str:
    """Path of the Alertmanager server binary: ``$PATH`` first (``alertmanager``, then
    ``prometheus-alertmanager``), then Debian's location.

    Raises :class:`AlertmanagerNotFound` with the install hint (``make tools`` installs Debian's
    ``prometheus-alertmanager`` package) rather than letting a test skip silently.
    """
    for name in BINARY_NAMES:
        found = shutil.which(name)
        if found:
            return found
    if os.access(DEBIAN_BINARY, os.X_OK):
        return DEBIAN_BINARY
    raise AlertmanagerNotFound(
        "the Alertmanager server binary was not found (alertmanager or prometheus-alertmanager "
        "on PATH, or /usr/bin/prometheus-alertmanager); run 'make tools' (installs the Debian "
        "'prometheus-alertmanager' package) or install Alertmanager >= 0.25 from "
        "https://prometheus.io/download/"
    )


class AlertmanagerServer:
    """An Alertmanager process on loopback with its own temporary directory.

    ``config`` is the ``alertmanager.yml`` as data, as YAML text, or a path to a file (copied
    into the temporary directory). Use it as a context manager (or call :meth:`start` and
    :meth:`stop`); ``port=0`` picks a free port. The API helpers speak Alertmanager's v2 API.
    """

    def __init__(
        self,
        config: Mapping[str, Any] | str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        binary: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        if isinstance(config, Mapping):
            self.config_text = yaml.safe_dump(dict(config), sort_keys=False)
        elif isinstance(config, str) and "\n" in config:
            self.config_text = config
        else:
            self.config_text = Path(config).read_text(encoding="utf-8")
        self.host = host
        self.port = port
        self.binary = binary
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._log: Any = None
        self._log_path: Path | None = None
        self._client: httpx.Client | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (valid once started)."""
        if self._proc is None:
            raise AlertmanagerError("Alertmanager is not running; call start() first")
        return f"http://{self.host}:{self.port}"

    def start(self) -> AlertmanagerServer:
        """Start Alertmanager and wait (bounded by ``startup_timeout``) until ``/-/ready`` is 200.

        Raises :class:`AlertmanagerNotFound` when there is no binary, and
        :class:`AlertmanagerError` with the log tail when the process exits early (a bad
        configuration, say) or is not ready in time. Nothing is left running or on disk when
        it raises.
        """
        if self._proc is not None:
            raise AlertmanagerError("Alertmanager is already running")
        binary = self.binary or find_alertmanager()
        self._dir = Path(tempfile.mkdtemp(prefix="steadystream-alertmanager-"))
        config_path = self._dir / "alertmanager.yml"
        config_path.write_text(self.config_text, encoding="utf-8")
        fixed_port = self.port != 0
        try:
            for attempt in range(5):
                if not fixed_port:
                    self.port = _free_port(self.host)
                if self._launch(binary, config_path, attempt, retry_port=not fixed_port):
                    return self
            raise AlertmanagerError(
                f"no free port found for Alertmanager on {self.host} after 5 attempts",
                log_tail=self.log_tail(),
            )
        except BaseException:
            self.stop()
            raise

    def _launch(self, binary: str, config_path: Path, attempt: int, *, retry_port: bool) -> bool:
        assert self._dir is not None
        self._log_path = self._dir / f"alertmanager-{attempt}.log"
        self._log = self._log_path.open("wb")
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={self._dir / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            # No gossip: a lone test instance must not listen on 0.0.0.0:9094.
            "--cluster.listen-address=",
            "--log.level=info",
        ]
        self._proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self._client = httpx.Client(base_url=f"http://{self.host}:{self.port}", timeout=5.0)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                tail = self.log_tail()
                self._discard_process()
                if "address already in use" in tail and retry_port:
                    return False
                raise AlertmanagerError(
                    f"Alertmanager exited with status {code} before it was ready", log_tail=tail
                )
            with contextlib.suppress(httpx.HTTPError):
                if self._client.get("/-/ready").status_code == 200:
                    return True
            time.sleep(0.1)
        raise AlertmanagerError(
            f"Alertmanager was not ready on {self.host}:{self.port} within "
            f"{self.startup_timeout:g}s",
            log_tail=self.log_tail(),
        )

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
        """Stop Alertmanager (SIGTERM, then SIGKILL after 10 s) and delete its directory.

        Safe to call more than once, and after a failed :meth:`start`.
        """
        self._discard_process()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> AlertmanagerServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of Alertmanager's log ('' when there is none)."""
        path = self._log_path
        if path is None or not path.exists():
            return ""
        text = path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------------ HTTP API (v2)
    def _http(self) -> httpx.Client:
        if self._client is None or self._proc is None:
            raise AlertmanagerError("Alertmanager is not running; call start() first")
        return self._client

    def post_alerts(self, alerts: Iterable[Mapping[str, Any]]) -> None:
        """``POST /api/v2/alerts``: each alert a mapping with ``labels`` (and optionally
        ``annotations``, ``startsAt``, ``endsAt``, ``generatorURL``), as Prometheus sends them."""
        body = [dict(a) for a in alerts]
        try:
            response = self._http().post("/api/v2/alerts", json=body)
        except httpx.HTTPError as exc:
            raise AlertmanagerError(
                f"POST /api/v2/alerts failed: {exc}", log_tail=self.log_tail()
            ) from exc
        if response.status_code != 200:
            raise AlertmanagerError(
                f"POST /api/v2/alerts: HTTP {response.status_code}: {response.text[:500]}",
                log_tail=self.log_tail(),
            )

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: every alert, active, silenced, inhibited or unprocessed, each
        with ``labels``, ``fingerprint`` and ``status`` (``state``, ``inhibitedBy``,
        ``silencedBy``)."""
        params = {"active": "true", "silenced": "true", "inhibited": "true", "unprocessed": "true"}
        try:
            response = self._http().get("/api/v2/alerts", params=params)
        except httpx.HTTPError as exc:
            raise AlertmanagerError(
                f"GET /api/v2/alerts failed: {exc}", log_tail=self.log_tail()
            ) from exc
        if response.status_code != 200:
            raise AlertmanagerError(
                f"GET /api/v2/alerts: HTTP {response.status_code}: {response.text[:500]}",
                log_tail=self.log_tail(),
            )
        return list(response.json())

    # ------------------------------------------------------------------ bounded waits
    def wait_until(
        self,
        probe: Callable[[], T],
        *,
        timeout: float = 60.0,
        interval: float = 0.25,
        what: str = "condition",
    ) -> T:
        """Call ``probe`` until it returns a truthy value, at most ``timeout`` seconds.

        Returns that value. On timeout raises :class:`AlertmanagerError` with the last value
        (or exception) the probe produced and the log tail. :class:`AlertmanagerError` from the
        probe counts as "not yet".
        """
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise AlertmanagerError(
                    f"Alertmanager exited while waiting for {what}", log_tail=self.log_tail()
                )
            try:
                value = probe()
            except AlertmanagerError as exc:
                last = exc
            else:
                if value:
                    return value
                last = value
            if time.monotonic() >= deadline:
                raise AlertmanagerError(
                    f"timed out after {timeout:g}s waiting for {what}; last: {last!r}",
                    log_tail=self.log_tail(),
                )
            time.sleep(interval)
