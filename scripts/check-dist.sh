#!/usr/bin/env bash
# Checks make dist's output the way a user without a build machine would use it:
#  1. gmon runs where the Swift toolchain and the -dev packages' libraries are absent
#     (a mount namespace hides /opt/swift, the headers and the shared libraries gmon's
#     normal build uses), and watches the demo program there;
#  2. the .deb installs (into a scratch root, not this machine's /), its systemd unit is
#     valid, and the command the unit runs starts, attaches and stops cleanly on SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
DIST="${GMON_DIST:-$PWD/dist}"
W=$(mktemp -d)
cleanup() { [ -n "${DPID:-}" ] && kill "$DPID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
fail() { echo "check-dist: $*" >&2; exit 1; }

.fixtures/demo -addr 127.0.0.1:18177 2>/dev/null & DPID=$!
sleep 0.3

# 1. No toolchain, no -dev libraries.
hide=(/opt/swift /usr/include)
for l in libbpf.so.1 libelf.so.1 libz.so.1 libcapstone.so.4 libstdc++.so.6 libgcc_s.so.1; do
  f=$(readlink -f "/usr/lib/x86_64-linux-gnu/$l" 2>/dev/null || true)
  [ -n "$f" ] && [ -e "$f" ] && hide+=("$f")
done
unshare -m bash -c '
  set -e
  for p in "$@"; do
    if [ -d "$p" ]; then mount -t tmpfs none "$p"; else mount --bind /dev/null "$p"; fi
  done
  test ! -e /opt/swift/usr/bin/swift
  [ ! -s "$(readlink -f /usr/lib/x86_64-linux-gnu/libbpf.so.1)" ]
  exec '"$DIST"'/gmon --pid '"$DPID"' --duration 3 --no-metrics
' _ "${hide[@]}" >"$W/out" 2>"$W/err" || fail "gmon from dist/ failed without the toolchain: $(cat "$W/err")"
grep -q "gmon: watching process $DPID" "$W/err" || fail "gmon from dist/ did not attach: $(cat "$W/err")"
grep -q "gmon summary" "$W/err" || fail "gmon from dist/ gave no summary: $(cat "$W/err")"
echo "check-dist: dist/gmon watches the demo without /opt/swift and without libbpf, libelf, zlib, Capstone, libstdc++"

# 2. The .deb.
DEB=$(ls "$DIST"/gmon_*_amd64.deb | head -1)
ROOT="$W/root"
mkdir -p "$ROOT/var/lib/dpkg/updates" "$ROOT/var/lib/dpkg/info"
touch "$ROOT/var/lib/dpkg/status"
dpkg --root="$ROOT" --force-depends --force-not-root --force-script-chrootless -i "$DEB" >"$W/dpkg" 2>&1 || fail "the .deb did not install: $(cat "$W/dpkg")"
[ -x "$ROOT/usr/bin/gmon" ] && [ -f "$ROOT/lib/systemd/system/gmon.service" ] || fail "the .deb installed no gmon or no unit"
if command -v systemd-analyze >/dev/null; then
  # The unit as installed, pointed at the scratch root's binary.
  sed "s|/usr/bin/gmon|$ROOT/usr/bin/gmon|" "$ROOT/lib/systemd/system/gmon.service" >"$W/gmon.service"
  systemd-analyze verify "$W/gmon.service" 2>&1 | grep -v "^$" >"$W/verify" || true
  if grep -qiE "error|invalid|unknown" "$W/verify"; then fail "systemd-analyze verify: $(cat "$W/verify")"; fi
fi
# What the unit runs: ExecStart with /etc/default/gmon's GMON_ARGS, stopped by SIGTERM.
exec_start=$(sed -n 's/^ExecStart=//p' "$ROOT/lib/systemd/system/gmon.service")
GMON_ARGS=$(. "$ROOT/etc/default/gmon"; echo "$GMON_ARGS")
cmd=${exec_start//\$GMON_ARGS/$GMON_ARGS}
cmd=${cmd//\/usr\/bin\/gmon/$ROOT/usr/bin/gmon}
# With only the unit's capabilities, on a demo run by another user (as a container's
# program is): it must attach and read the demo's goroutines from memory.
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$ROOT/lib/systemd/system/gmon.service" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
setpriv --reuid=65534 --regid=65534 --clear-groups .fixtures/demo -addr 127.0.0.1:18176 2>/dev/null & NPID=$!
sleep 0.3
setpriv --bounding-set "-all,$caps" --inh-caps -all -- $cmd --exe demo --metrics-address 127.0.0.1:0 >"$W/svc.out" 2>"$W/svc.err" & SPID=$!
for _ in $(seq 200); do grep -q "watching every Go program" "$W/svc.err" && break; sleep 0.1; done
kill $NPID 2>/dev/null || true
grep -q "gmon: watching .*demo.*: 2 processes, [1-9][0-9]* goroutines already running" "$W/svc.err" \
  || { kill -9 $SPID 2>/dev/null || true; fail "the unit's command, with the unit's capabilities ($caps), did not watch both demos and read their goroutines: $(cat "$W/svc.err")"; }
start=$(date +%s%N)
kill -TERM $SPID
status=0; wait $SPID || status=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ $status = 0 ] || fail "the unit's command exited $status on SIGTERM: $(cat "$W/svc.err")"
[ $ms -le 1500 ] || fail "the unit's command took $ms ms to stop on SIGTERM"
echo "check-dist: the .deb installs; its unit verifies; its command watched the demo and stopped on SIGTERM in $ms ms"
