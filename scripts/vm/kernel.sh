#!/usr/bin/env bash
# Fetches one of Debian's kernels into the cache (never into /boot) and prints its directory,
# which holds vmlinuz-<version> and lib/modules/<version>.
#   kernel.sh 6.1 | 6.1-rt | 6.12 | 6.12-rt    the newest of that line in the archive
#   kernel.sh 6.1.0-57-rt-amd64                 that exact kernel
set -euo pipefail
name=$1
CACHE="${GMON_KERNEL_CACHE:-/var/cache/gmon/kernels}"
case $name in
  6.1)     pattern='^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' ;;
  6.1-rt)  pattern='^linux-image-6\.1\.0-[0-9]+-rt-amd64-unsigned$' ;;
  6.12)    pattern='^linux-image-6\.12\.[0-9]+\+deb[0-9]+-amd64-unsigned$' ;;
  6.12-rt) pattern='^linux-image-6\.12\.[0-9]+\+deb[0-9]+-rt-amd64-unsigned$' ;;
  *)       pattern="^linux-image-${name//./\\.}-unsigned\$" ;;
esac
pkg=$(apt-cache search --names-only "$pattern" 2>/dev/null | awk '{print $1}' | sort -V | tail -1)
if [ -z "$pkg" ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  pkg=$(apt-cache search --names-only "$pattern" | awk '{print $1}' | sort -V | tail -1)
fi
[ -n "$pkg" ] || { echo "kernel.sh: no Debian package matches $name ($pattern)" >&2; exit 1; }
version=${pkg#linux-image-}; version=${version%-unsigned}
dir="$CACHE/$version"
if [ ! -f "$dir/.done" ]; then
  rm -rf "$dir"; mkdir -p "$dir/dl"
  chmod 777 "$dir/dl"   # apt downloads as its own user
  (cd "$dir/dl" && apt-get download -q "$pkg" >/dev/null 2>&1)
  dpkg-deb -x "$dir"/dl/*.deb "$dir"
  rm -rf "$dir/dl"
  depmod -b "$dir" "$version"
  touch "$dir/.done"
fi
echo "$dir $version"
