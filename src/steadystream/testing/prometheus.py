"""A real Prometheus server on loopback, for end-to-end tests of generated rules and dashboards.

promtool proves that rules parse and that synthetic series fire them; only a running Prometheus
proves that the rules evaluate against what the instrumentation really exports. This module starts
the ``prometheus`` binary (Debian's package, or any release >= 2.40 on ``PATH``) with:

- a temporary data directory, removed on stop;
- ``--web.listen-address=127.0.0.1:<free port>``, so nothing is reachable from outside the host;
- a 1 s scrape and rule-evaluation interval by default, so tests wait seconds, not minutes;
- the given rule files (globs as in ``prometheus.yml``: ``out/alerts/*.yaml`` loads every rule
  file ``steadystream generate`` wrote) and static scrape targets;
- ``--web.enable-lifecycle``, so :meth:`PrometheusServer.reload` can pick up changed rule files.

Every wait is a bounded loop that stops by itself and, on timeout, raises with the last thing it
saw and the tail of Prometheus's own log, so a failing test says why.

    with PrometheusServer(rule_files=["out/alerts/*.yaml"],
                          targets=[ScrapeTarget("127.0.0.1:9464")]) as prom:
        prom.wait_for_targets_up()
        value = prom.query_value("sum(stream_requests_total)")
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import yaml

__all__ = [
    "PrometheusError",
    "PrometheusNotFound",
    "PrometheusServer",
    "ScrapeTarget",
    "find_prometheus",
    "scrape_config_yaml",
]

T = TypeVar("T")

#: Where Debian's ``prometheus`` package installs the server.
DEBIAN_BINARY = "/usr/bin/prometheus"
_LOG_TAIL_LINES = 30


class PrometheusError(RuntimeError):
    """Prometheus failed to start, answered an API call with an error, or a wait timed out.

    ``log_tail`` holds the last lines of the server's log (empty when there is none).
    """

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        self.log_tail = log_tail
        if log_tail:
            message = f"{message}\n--- prometheus log (last lines) ---\n{log_tail}"
        super().__init__(message)


class PrometheusNotFound(PrometheusError):
    """No ``prometheus`` binary on ``PATH`` or at ``/usr/bin/prometheus``."""


def find_prometheus() -> str:
    """Path of the ``prometheus`` server binary: ``$PATH`` first, then Debian's location.

    Raises :class:`PrometheusNotFound` with the install hint (``make tools`` installs Debian's
    ``prometheus`` package) rather than letting a test skip silently.
    """
    found = shutil.which("prometheus")
    if found:
        return found
    if os.access(DEBIAN_BINARY, os.X_OK):
        return DEBIAN_BINARY
    raise PrometheusNotFound(
        "the 'prometheus' server binary was not found on PATH or at /usr/bin/prometheus; "
        "run 'make tools' (installs the Debian 'prometheus' package) or install Prometheus "
        ">= 2.40 from https://prometheus.io/download/"
    )


@dataclass(frozen=True)
class ScrapeTarget:
    """One ``host:port`` Prometheus scrapes at ``metrics_path``, under the job name ``job``.

    ``labels`` are added to every scraped series (static_configs labels). The job name matters:
    a spec's ``selector`` such as ``{job: chat-gateway}`` only matches series scraped by that job.
    """

    address: str
    job: str = "steadystream"
    metrics_path: str = "/metrics"
    labels: Mapping[str, str] = field(default_factory=dict)


def _free_port(host: str) -> int:
    # The port is released before Prometheus binds it, so another process may take it first;
    # start() notices "address already in use" in the log and tries again with a new port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _seconds(value: float) -> str:
    """A Prometheus duration from seconds: whole milliseconds, the finest unit it accepts."""
    ms = round(value * 1000)
    if ms <= 0:
        raise ValueError(f"interval must be at least 1ms, got {value!r}s")
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


class PrometheusServer:
    """A Prometheus server process on loopback with its own temporary data directory.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`). ``rule_files`` are
    paths or globs, loaded as given (made absolute, so the working directory does not matter;
    a glob that matches no file is an error, not a Prometheus without rules);
    ``targets`` are scraped every ``scrape_interval`` seconds and rules evaluated every
    ``evaluation_interval`` seconds. ``port=0`` picks a free port.

    The query helpers raise :class:`PrometheusError` on an API error (a PromQL parse error
    included), carrying Prometheus's own message.
    """

    def __init__(
        self,
        *,
        rule_files: Iterable[str | os.PathLike[str]] = (),
        targets: Iterable[ScrapeTarget | str] = (),
        scrape_interval: float = 1.0,
        evaluation_interval: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        binary: str | None = None,
        startup_timeout: float = 30.0,
        external_labels: Mapping[str, str] | None = None,
    ) -> None:
        self.rule_files = [str(Path(p).resolve()) for p in rule_files]
        self.targets = [t if isinstance(t, ScrapeTarget) else ScrapeTarget(t) for t in targets]
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.host = host
        self.port = port
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.external_labels = dict(external_labels or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._log: Any = None
        self._client: httpx.Client | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (valid once started)."""
        if self._proc is None:
            raise PrometheusError("Prometheus is not running; call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        """The temporary directory holding the config, the TSDB and the log."""
        if self._dir is None:
            raise PrometheusError("Prometheus is not running; call start() first")
        return self._dir

    def config(self) -> dict[str, Any]:
        """The ``prometheus.yml`` this server runs with, as data."""
        interval = _seconds(self.scrape_interval)
        global_: dict[str, Any] = {
            "scrape_interval": interval,
            # Prometheus rejects a scrape timeout longer than the interval.
            "scrape_timeout": _seconds(min(self.scrape_interval, 10.0)),
            "evaluation_interval": _seconds(self.evaluation_interval),
        }
        if self.external_labels:
            global_["external_labels"] = dict(self.external_labels)
        jobs: dict[str, list[ScrapeTarget]] = {}
        for t in self.targets:
            jobs.setdefault(t.job, []).append(t)
        scrape_configs = []
        for job, members in jobs.items():
            paths = {t.metrics_path for t in members}
            if len(paths) > 1:
                raise ValueError(
                    f"targets of job {job!r} use different metrics paths {sorted(paths)}; "
                    "give each path its own job name"
                )
            scrape_configs.append(
                {
                    "job_name": job,
                    "metrics_path": members[0].metrics_path,
                    "static_configs": [
                        {"targets": [t.address], **({"labels": dict(t.labels)} if t.labels else {})}
                        for t in members
                    ],
                }
            )
        return {
            "global": global_,
            "rule_files": list(self.rule_files),
            "scrape_configs": scrape_configs,
        }

    def start(self) -> PrometheusServer:
        """Start Prometheus and wait (bounded by ``startup_timeout``) until ``/-/ready`` is 200.

        Raises :class:`PrometheusNotFound` when there is no binary, and :class:`PrometheusError`
        with the log tail when the process exits early (a bad rule file, say) or is not ready in
        time. Nothing is left running or on disk when it raises.
        """
        if self._proc is not None:
            raise PrometheusError("Prometheus is already running")
        binary = self.binary or find_prometheus()
        for pattern in self.rule_files:
            # Prometheus loads an empty glob silently; a test would then judge no rules at all.
            if glob.has_magic(pattern) and not glob.glob(pattern):
                raise PrometheusError(f"rule_files: {pattern!r} matches no file")
        self._dir = Path(tempfile.mkdtemp(prefix="steadystream-prometheus-"))
        config_path = self._dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False), encoding="utf-8")
        fixed_port = self.port != 0
        try:
            for attempt in range(5):
                if not fixed_port:
                    self.port = _free_port(self.host)
                if self._launch(binary, config_path, attempt, retry_port=not fixed_port):
                    return self
            raise PrometheusError(
                f"no free port found for Prometheus on {self.host} after 5 attempts",
                log_tail=self.log_tail(),
            )
        except BaseException:
            self.stop()
            raise

    def _launch(self, binary: str, config_path: Path, attempt: int, *, retry_port: bool) -> bool:
        """Run the binary once; True when ready, False when the picked port was taken (so
        another can be tried). A taken fixed port is an error."""
        assert self._dir is not None
        log_path = self._dir / f"prometheus-{attempt}.log"
        self._log_path = log_path
        self._log = log_path.open("wb")
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self._dir / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--web.enable-lifecycle",
            # Debian's defaults point the console templates at /etc/prometheus, which a test
            # neither needs nor may be able to read.
            f"--web.console.templates={self._dir}",
            f"--web.console.libraries={self._dir}",
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
                raise PrometheusError(
                    f"Prometheus exited with status {code} before it was ready", log_tail=tail
                )
            with contextlib.suppress(httpx.HTTPError):
                if self._client.get("/-/ready").status_code == 200:
                    return True
            time.sleep(0.1)
        raise PrometheusError(
            f"Prometheus was not ready on {self.host}:{self.port} within {self.startup_timeout:g}s",
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
        """Stop Prometheus (SIGTERM, then SIGKILL after 10 s) and delete its data directory.

        Safe to call more than once, and after a failed :meth:`start`.
        """
        self._discard_process()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of Prometheus's log ('' when there is none)."""
        path = getattr(self, "_log_path", None)
        if path is None or not Path(path).exists():
            return ""
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------------ HTTP API
    def _http(self) -> httpx.Client:
        if self._client is None or self._proc is None:
            raise PrometheusError("Prometheus is not running; call start() first")
        return self._client

    def api(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``; raise on an error status."""
        try:
            response = self._http().get(f"/api/v1/{path}", params=params)
        except httpx.HTTPError as exc:
            raise PrometheusError(
                f"GET /api/v1/{path} failed: {exc}", log_tail=self.log_tail()
            ) from exc
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(
                f"GET /api/v1/{path}: HTTP {response.status_code}, not JSON: {response.text[:200]}"
            ) from None
        if body.get("status") != "success":
            raise PrometheusError(
                f"GET /api/v1/{path} ({dict(params or {})}): {body.get('errorType', 'error')}: "
                f"{body.get('error', response.text[:200])}"
            )
        return body.get("data")

    def query(self, expr: str, *, at: float | None = None) -> list[dict[str, Any]]:
        """Evaluate an instant query; the ``result`` list (vector) or a one-item list (scalar).

        A PromQL syntax error raises :class:`PrometheusError` naming the problem.
        """
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", params)
        result = data.get("result")
        if data.get("resultType") in ("scalar", "string"):
            return [{"metric": {}, "value": result}]
        return list(result or [])

    def query_value(self, expr: str) -> float | None:
        """The single value of an instant query, or None when it returns no series.

        Raises when it returns more than one series (aggregate with ``sum`` first).
        """
        result = self.query(expr)
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusError(f"{expr!r} returned {len(result)} series, expected one")
        return float(result[0]["value"][1])

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule (recording and alerting), each with its ``group`` and ``file``."""
        out = []
        for group in self.api("rules")["groups"]:
            for rule in group["rules"]:
                out.append({**rule, "group": group["name"], "file": group["file"]})
        return out

    def alerts(self) -> list[dict[str, Any]]:
        """Active (pending or firing) alerts from ``/api/v1/alerts``."""
        return list(self.api("alerts")["alerts"])

    def active_targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their ``health`` and ``lastError``."""
        return list(self.api("targets", {"state": "active"})["activeTargets"])

    def reload(self) -> None:
        """Ask Prometheus to re-read its config and rule files (``POST /-/reload``)."""
        response = self._http().post("/-/reload")
        if response.status_code != 200:
            raise PrometheusError(
                f"reload failed: HTTP {response.status_code}: {response.text.strip()}",
                log_tail=self.log_tail(),
            )

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

        Returns that value. On timeout raises :class:`PrometheusError` with the last value (or
        exception) the probe produced and the log tail. Exceptions from the probe count as
        "not yet", so a probe may query series that do not exist yet.
        """
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise PrometheusError(
                    f"Prometheus exited while waiting for {what}", log_tail=self.log_tail()
                )
            try:
                value = probe()
            except PrometheusError as exc:
                last = exc
            else:
                if value:
                    return value
                last = value
            if time.monotonic() >= deadline:
                raise PrometheusError(
                    f"timed out after {timeout:g}s waiting for {what}; last: {last!r}",
                    log_tail=self.log_tail(),
                )
            time.sleep(interval)

    def wait_for_targets_up(self, *, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until every configured target has been scraped successfully at least once."""
        want = len(self.targets)

        def probe() -> list[dict[str, Any]] | None:
            targets = self.active_targets()
            up = [t for t in targets if t.get("health") == "up"]
            return targets if want and len(up) >= want else None

        return self.wait_until(probe, timeout=timeout, what=f"{want} scrape target(s) up")

    def wait_for_query(
        self,
        expr: str,
        *,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Wait until ``expr`` returns a result that satisfies ``predicate`` (default: any)."""

        def probe() -> list[dict[str, Any]] | None:
            result = self.query(expr)
            return result if predicate(result) else None

        return self.wait_until(probe, timeout=timeout, what=f"query {expr!r}")

    def wait_for_rule_evaluations(self, *, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until every loaded rule has been evaluated at least once; return the rules."""

        def probe() -> list[dict[str, Any]] | None:
            rules = self.rules()
            pending = [r for r in rules if r.get("lastEvaluation", "").startswith("0001-")]
            return rules if rules and not pending else None

        return self.wait_until(probe, timeout=timeout, what="every rule evaluated once")


def scrape_config_yaml(targets: Sequence[str], *, job: str, scrape_interval: str = "15s") -> str:
    """A ``scrape_configs`` snippet for ``prometheus.yml`` that scrapes ``targets`` as ``job``."""
    return yaml.safe_dump(
        {
            "scrape_configs": [
                {
                    "job_name": job,
                    "scrape_interval": scrape_interval,
                    "static_configs": [{"targets": list(targets)}],
                }
            ]
        },
        sort_keys=False,
    )
