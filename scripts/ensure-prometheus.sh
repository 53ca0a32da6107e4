#!/usr/bin/env bash
# Installs Debian's `prometheus` package (promtool and the server) when either is missing, and
# Debian's `prometheus-alertmanager` (the Alertmanager server and amtool) when either of those is
# missing: the test suite runs the generated rules in a real Prometheus and the generated
# inhibit rules in a real Alertmanager. Also Debian's `redis-server` when it is missing: the
# shared (cluster-wide) rate limit and retry budget are tested against a real Redis.
set -euo pipefail
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/bin/$1" ]; }
packages=()
if ! have promtool || ! have prometheus; then
  packages+=(prometheus)
fi
# Debian installs the server as /usr/bin/prometheus-alertmanager (upstream calls it alertmanager).
if ! { have alertmanager || have prometheus-alertmanager; } || ! have amtool; then
  packages+=(prometheus-alertmanager)
fi
if ! have redis-server; then
  packages+=(redis-server)
fi
if [ "${#packages[@]}" -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "steadystream: ${packages[*]} missing and apt-get is unavailable." >&2
  echo "  Install Prometheus >= 2.40 and Alertmanager >= 0.25 (https://prometheus.io/download/)" >&2
  echo "  and Redis >= 6.2 (https://redis.io/download/), and put promtool, prometheus," >&2
  echo "  alertmanager, amtool and redis-server on PATH." >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "steadystream: run 'apt-get install -y ${packages[*]}' as root." >&2
    exit 1
  fi
fi
echo "steadystream: installing Debian package(s) ${packages[*]} (promtool, a real Prometheus, Alertmanager and Redis for the tests)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
have promtool
have amtool
have redis-server
