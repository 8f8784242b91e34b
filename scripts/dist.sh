#!/usr/bin/env bash
# make dist: a self-contained gmon and a .deb that installs it with a systemd unit.
# The Swift runtime, libbpf, libelf, zlib and Capstone are linked in (static archives
# from the -dev packages); only glibc's libraries stay dynamic, so the binary runs on
# any x86-64 Linux with glibc ≥ the build machine's, without the Swift toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${GMON_DIST:-$PWD/dist}"
ARCHIVES=$(mktemp -d)
trap 'rm -rf "$ARCHIVES"' EXIT
# A directory holding only the archives: searched first, so -lbpf, -lelf, -lz and
# -lcapstone find them before the shared objects in the system's directories.
# libbpf needs libelf, which needs zlib: one archive holds all three, so the order of the
# linker's -l flags (libbpf's comes from its module map) cannot leave symbols undefined.
printf 'create %s\naddlib %s\naddlib %s\naddlib %s\nsave\nend\n' "$ARCHIVES/libbpf.a" \
  /usr/lib/x86_64-linux-gnu/libbpf.a /usr/lib/x86_64-linux-gnu/libelf.a /usr/lib/x86_64-linux-gnu/libz.a | ar -M
for l in z capstone; do ln -s "/usr/lib/x86_64-linux-gnu/lib$l.a" "$ARCHIVES/"; done
# The Swift runtime asks for -lstdc++ and -lgcc_s by name: their archives stand in (GCC's
# static unwinder is libgcc_eh).
GCC_LIB=$(dirname "$(gcc -print-libgcc-file-name)")
ln -s "$GCC_LIB/libstdc++.a" "$ARCHIVES/libstdc++.a"
ln -s "$GCC_LIB/libgcc_eh.a" "$ARCHIVES/libgcc_s.a"
swift build -c release --product gmon --static-swift-stdlib --scratch-path .build/dist \
  -Xswiftc -DGMON_STATIC_CAPSTONE -Xlinker -L"$ARCHIVES" -Xlinker -lcapstone
mkdir -p "$OUT"
cp .build/dist/release/gmon "$OUT/gmon"
strip --strip-all "$OUT/gmon"

# Only glibc's own libraries may be dynamic.
allowed='^(linux-vdso\.so|libc\.so|libm\.so|libpthread\.so|libdl\.so|librt\.so|libutil\.so|ld-linux-x86-64\.so)'
bad=$(ldd "$OUT/gmon" | awk '{print $1}' | sed 's|.*/||' | grep -Ev "$allowed" || true)
if [ -n "$bad" ]; then echo "dist: gmon links libraries other than glibc's: $bad" >&2; exit 1; fi

# The .deb: /usr/bin/gmon and a systemd unit running it as a node agent (gmon --all).
# "gmon 0.1.0": the version is its last word.
VERSION=$("$OUT/gmon" --version | awk '{print $NF}')
PKG=$(mktemp -d)
install -D -m 755 "$OUT/gmon" "$PKG/usr/bin/gmon"
install -D -m 644 deploy/gmon.service "$PKG/lib/systemd/system/gmon.service"
install -D -m 644 deploy/gmon.default "$PKG/etc/default/gmon"
mkdir -p "$PKG/DEBIAN"
cat > "$PKG/DEBIAN/control" <<CONTROL
Package: gmon
Version: $VERSION
Architecture: amd64
Maintainer: gmon developers <gmon@localhost>
Depends: libc6 (>= 2.36)
Section: admin
Priority: optional
Description: goroutine monitor for every Go program on a host
 Watches unmodified Go programs from outside with eBPF: goroutines created and
 exiting, their creation sites, goroutines that already exist, per container and pod,
 as logs and Prometheus metrics.
CONTROL
echo "/etc/default/gmon" > "$PKG/DEBIAN/conffiles"
cat > "$PKG/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null || true; fi
POSTINST
cat > "$PKG/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl stop gmon.service >/dev/null 2>&1 || true; fi
PRERM
chmod 755 "$PKG/DEBIAN/postinst" "$PKG/DEBIAN/prerm"
dpkg-deb --root-owner-group --build "$PKG" "$OUT/gmon_${VERSION}_amd64.deb" >/dev/null
rm -rf "$PKG"
echo "dist: $OUT/gmon ($(du -h "$OUT/gmon" | cut -f1)), $OUT/gmon_${VERSION}_amd64.deb"
