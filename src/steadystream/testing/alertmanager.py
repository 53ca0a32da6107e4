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

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ._process import LoopbackServer, ServerError

__all__ = [
    "AlertmanagerError",
    "AlertmanagerNotFound",
    "AlertmanagerServer",
    "find_alertmanager",
]

#: The names the server binary goes by: upstream's, then Debian's.
BINARY_NAMES = ("alertmanager", "prometheus-alertmanager")
#: Where Debian's ``prometheus-alertmanager`` package installs the server.
DEBIAN_BINARY = "/usr/bin/prometheus-alertmanager"


class AlertmanagerError(ServerError):
    """Alertmanager failed to start, answered an API call with an error, or a wait timed out.

    ``log_tail`` holds the last lines of the server's log (empty when there is none).
    """

    server = "alertmanager"


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


class AlertmanagerServer(LoopbackServer):
    """An Alertmanager process on loopback with its own temporary directory.

    ``config`` is the ``alertmanager.yml`` as data, as YAML text, or a path to a file (copied
    into the temporary directory). Use it as a context manager (or call :meth:`start` and
    :meth:`stop`); ``port=0`` picks a free port. The API helpers speak Alertmanager's v2 API;
    :meth:`wait_until` bounds every wait.
    """

    name = "Alertmanager"
    error = AlertmanagerError

    def __init__(
        self,
        config: Mapping[str, Any] | str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        binary: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        super().__init__(host=host, port=port, binary=binary, startup_timeout=startup_timeout)
        if isinstance(config, Mapping):
            self.config_text = yaml.safe_dump(dict(config), sort_keys=False)
        elif isinstance(config, str) and "\n" in config:
            self.config_text = config
        else:
            self.config_text = Path(config).read_text(encoding="utf-8")

    def _find_binary(self) -> str:
        return find_alertmanager()

    def _prepare(self, directory: Path) -> Path:
        config_path = directory / "alertmanager.yml"
        config_path.write_text(self.config_text, encoding="utf-8")
        return config_path

    def _argv(self, binary: str, config_path: Path) -> list[str]:
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={config_path.parent / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            # No gossip: a lone test instance must not listen on 0.0.0.0:9094.
            "--cluster.listen-address=",
            "--log.level=info",
        ]

    # ------------------------------------------------------------------ HTTP API (v2)
    def post_alerts(self, alerts: Iterable[Mapping[str, Any]]) -> None:
        """``POST /api/v2/alerts``: each alert a mapping with ``labels`` (and optionally
        ``annotations``, ``startsAt``, ``endsAt``, ``generatorURL``), as Prometheus sends them."""
        self._request("POST", "/api/v2/alerts", json=[dict(a) for a in alerts])

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: every alert, active, silenced, inhibited or unprocessed, each
        with ``labels``, ``fingerprint`` and ``status`` (``state``, ``inhibitedBy``,
        ``silencedBy``)."""
        params = {"active": "true", "silenced": "true", "inhibited": "true", "unprocessed": "true"}
        response = self._request("GET", "/api/v2/alerts", params=params)
        return list(response.json())
