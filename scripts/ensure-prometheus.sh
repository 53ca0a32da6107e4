#!/usr/bin/env bash
# Installs Debian's `prometheus` package (promtool and the server) when either is missing.
set -euo pipefail
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "steadystream: promtool/prometheus not found and apt-get is unavailable." >&2
  echo "  Install Prometheus >= 2.40 (https://prometheus.io/download/) and put promtool and prometheus on PATH." >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "steadystream: promtool not found; run 'apt-get install -y prometheus' as root." >&2
    exit 1
  fi
fi
echo "steadystream: installing Debian package 'prometheus' (for promtool and a real Prometheus server)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null
