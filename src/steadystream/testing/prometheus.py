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

import glob
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from ._process import LoopbackServer, ServerError

__all__ = [
    "PrometheusError",
    "PrometheusNotFound",
    "PrometheusServer",
    "ScrapeTarget",
    "find_prometheus",
    "scrape_config_yaml",
]

#: Where Debian's ``prometheus`` package installs the server.
DEBIAN_BINARY = "/usr/bin/prometheus"


class PrometheusError(ServerError):
    """Prometheus failed to start, answered an API call with an error, or a wait timed out.

    ``log_tail`` holds the last lines of the server's log (empty when there is none).
    """

    server = "prometheus"


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


#: Where each web UI page may live, the current UI first.
_UI_PAGES: dict[str, tuple[str, ...]] = {
    "alerts": ("/alerts", "/classic/alerts"),
    "graph": ("/graph", "/query", "/classic/graph"),
}


def _seconds(value: float) -> str:
    """A Prometheus duration from seconds: whole milliseconds, the finest unit it accepts."""
    ms = round(value * 1000)
    if ms <= 0:
        raise ValueError(f"interval must be at least 1ms, got {value!r}s")
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


class PrometheusServer(LoopbackServer):
    """A Prometheus server process on loopback with its own temporary data directory.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`). ``rule_files`` are
    paths or globs, loaded as given (made absolute, so the working directory does not matter;
    a glob that matches no file is an error, not a Prometheus without rules);
    ``targets`` are scraped every ``scrape_interval`` seconds and rules evaluated every
    ``evaluation_interval`` seconds. ``port=0`` picks a free port.

    The query helpers raise :class:`PrometheusError` on an API error (a PromQL parse error
    included), carrying Prometheus's own message; :meth:`wait_until` bounds every wait.
    """

    name = "Prometheus"
    error = PrometheusError

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
        super().__init__(host=host, port=port, binary=binary, startup_timeout=startup_timeout)
        self.rule_files = [str(Path(p).resolve()) for p in rule_files]
        self.targets = [t if isinstance(t, ScrapeTarget) else ScrapeTarget(t) for t in targets]
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.external_labels = dict(external_labels or {})

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

    @property
    def pid(self) -> int:
        """The server process's id (valid once started): what a caller that must account
        for its children (``steadystream demo``, its tests) looks for."""
        if self._proc is None:
            raise PrometheusError("Prometheus is not running; call start() first")
        return self._proc.pid

    def _find_binary(self) -> str:
        return find_prometheus()

    def _prepare(self, directory: Path) -> Path:
        for pattern in self.rule_files:
            # Prometheus loads an empty glob silently; a test would then judge no rules at all.
            if glob.has_magic(pattern) and not glob.glob(pattern):
                raise PrometheusError(f"rule_files: {pattern!r} matches no file")
        config_path = directory / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False), encoding="utf-8")
        return config_path

    def _argv(self, binary: str, config_path: Path) -> list[str]:
        directory = config_path.parent
        return [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--web.enable-lifecycle",
            # Debian's defaults point the console templates at /etc/prometheus, which a test
            # neither needs nor may be able to read.
            f"--web.console.templates={directory}",
            f"--web.console.libraries={directory}",
            "--log.level=info",
        ]

    # ------------------------------------------------------------------ HTTP API
    def api(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``; raise on an error status."""
        # An API error comes with a JSON body saying what failed, whatever its status.
        response = self._request("GET", f"/api/v1/{path}", any_status=True, params=params)
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

    def ui_page(self, page: Literal["alerts", "graph"]) -> str:
        """The URL of a page of the web UI, as this build serves it: ``/alerts`` and
        ``/graph`` (or ``/query`` from 3.0), or the classic UI's ``/classic/...`` where the
        build ships only that one (Debian's package). A graph URL takes the ``g0.expr``
        query parameters in all of them."""
        candidates = _UI_PAGES[page]
        for path in candidates:
            response = self._request("GET", path, any_status=True, follow_redirects=False)
            if response.status_code == 200:
                return f"{self.url}{path}"
        return f"{self.url}{candidates[0]}"

    def reload(self) -> None:
        """Ask Prometheus to re-read its config and rule files (``POST /-/reload``)."""
        self._request("POST", "/-/reload")

    # ------------------------------------------------------------------ bounded waits
    def wait_for_targets_up(self, *, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until every configured target has been scraped successfully at least once."""
        want = len(self.targets)

        def probe() -> list[dict[str, Any]] | None:
            targets = self.active_targets()
            up = [t for t in targets if t.get("health") == "up"]
            return targets if want and len(up) >= want else None

        return self.wait_until(probe, timeout=timeout, what=f"{want} scrape target(s) up")

    def wait_for_scrapes(self, count: int = 1, *, timeout: float = 30.0) -> None:
        """Wait until every active target has been scraped ``count`` more times, counted from
        this call: a condition on Prometheus's own ``lastScrape`` record, not a guessed time."""
        start = {t["scrapeUrl"]: t.get("lastScrape") for t in self.active_targets()}
        seen: dict[str, set[str]] = {url: set() for url in start}

        def probe() -> bool:
            for t in self.active_targets():
                last = t.get("lastScrape")
                if t["scrapeUrl"] in seen and last != start[t["scrapeUrl"]]:
                    seen[t["scrapeUrl"]].add(last)
            return bool(seen) and all(len(v) >= count for v in seen.values())

        self.wait_until(
            probe, timeout=timeout, interval=0.1, what=f"{count} more scrape(s) of every target"
        )

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

    def wait_for_rule_evaluations(
        self, *, after: float | None = None, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Wait until every loaded rule has been evaluated at least once, or with ``after``
        (Unix seconds) once since then: its ``lastEvaluation`` record, not a guessed time.
        Returns the rules."""

        def evaluated(rule: dict[str, Any]) -> bool:
            when = rule.get("lastEvaluation", "")
            if when.startswith("0001-"):  # Go's zero time: never evaluated
                return False
            return after is None or rfc3339_seconds(when) > after

        def probe() -> list[dict[str, Any]] | None:
            rules = self.rules()
            return rules if rules and all(evaluated(r) for r in rules) else None

        what = "every rule evaluated once" + ("" if after is None else " since the wait began")
        return self.wait_until(probe, timeout=timeout, what=what)


def rfc3339_seconds(text: str) -> float:
    """Unix seconds of an RFC 3339 timestamp as Prometheus's API writes it (Go's
    ``RFC3339Nano``: up to nine fractional digits, ``Z`` or an offset)."""
    match = re.fullmatch(r"(.+?T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    head, fraction, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone
    whole = datetime.fromisoformat(head + zone).timestamp()
    return whole + (float(f"0.{fraction}") if fraction else 0.0)


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
