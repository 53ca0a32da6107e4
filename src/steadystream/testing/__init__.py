"""Test helpers shipped as API: run generated rules against a real Prometheus, generated
inhibit rules against a real Alertmanager, and shared limits against a real Redis, on loopback.

``steadystream.testing`` is for the test suites of steadystream and of the services that use it
(in the spirit of OpenTelemetry's ``InMemorySpanExporter`` and httpx's ``MockTransport``): the
helpers drive the real tools, so a green test means the real consumer accepted the artifacts.

    from steadystream.testing import PrometheusServer, ScrapeTarget

    with PrometheusServer(rule_files=["out/alerts/*.yaml"],
                          targets=[ScrapeTarget("127.0.0.1:9464", job="chat-gateway")]) as prom:
        prom.wait_for_targets_up()
        print(prom.query("sum(stream_requests_total)"))
"""

from __future__ import annotations

from .alertmanager import (
    AlertmanagerError,
    AlertmanagerNotFound,
    AlertmanagerServer,
    find_alertmanager,
)
from .prometheus import (
    PrometheusError,
    PrometheusNotFound,
    PrometheusServer,
    ScrapeTarget,
    find_prometheus,
    scrape_config_yaml,
)
from .redis import RedisError, RedisNotFound, RedisServer, find_redis_server

__all__ = [
    "AlertmanagerError",
    "AlertmanagerNotFound",
    "AlertmanagerServer",
    "PrometheusError",
    "PrometheusNotFound",
    "PrometheusServer",
    "RedisError",
    "RedisNotFound",
    "RedisServer",
    "ScrapeTarget",
    "find_alertmanager",
    "find_prometheus",
    "find_redis_server",
    "scrape_config_yaml",
]
