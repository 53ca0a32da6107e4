"""``steadystream.testing.AlertmanagerServer``: a real Alertmanager on loopback that starts,
answers its v2 API, reports a bad configuration with its own log, and leaves nothing behind."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from steadystream.testing import AlertmanagerError, AlertmanagerServer, find_alertmanager

CONFIG = {"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}


def test_starts_on_loopback_accepts_alerts_and_cleans_up() -> None:
    find_alertmanager()  # fails with the `make tools` hint when missing; never skips
    server = AlertmanagerServer(CONFIG, startup_timeout=120)
    with server as am:
        assert am.url.startswith("http://127.0.0.1:")
        data_dir = server.data_dir
        assert data_dir.is_dir()
        am.post_alerts(
            [
                {
                    "labels": {"alertname": "Probe", "service": "x"},
                    "startsAt": datetime.now(UTC).isoformat(),
                }
            ]
        )
        got = am.wait_until(
            lambda: [a for a in am.alerts() if a["status"]["state"] == "active"],
            timeout=60,
            what="the probe alert active",
        )
        assert [a["labels"] for a in got] == [{"alertname": "Probe", "service": "x"}]
    assert not Path(data_dir).exists()
    server.stop()  # idempotent


def test_a_bad_config_fails_with_the_log_tail(tmp_path: Path) -> None:
    path = tmp_path / "am.yml"
    path.write_text("route:\n  receiver: nowhere\nreceivers: []\n")
    server = AlertmanagerServer(path, startup_timeout=120)
    with pytest.raises(AlertmanagerError, match="exited") as info:
        server.start()
    assert "nowhere" in str(info.value)
    server.stop()
