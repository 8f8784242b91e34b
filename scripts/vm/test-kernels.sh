#!/usr/bin/env bash
# make test-kernels: gmon's end-to-end core (scripts/vm/e2e-core.sh) on each kernel of
# KERNELS, each in a VM of its own, and on this machine's own kernel directly; a line per
# kernel, and a failure when any kernel fails.
#   KERNELS="6.1 6.1-rt 6.12 6.12-rt" (default), or exact names: 6.1.0-57-rt-amd64
set -uo pipefail
cd "$(dirname "$0")/../.."
KERNELS=${KERNELS:-"6.1 6.1-rt 6.12 6.12-rt"}
HOST=${GMON_VM_HOST:-1}
results=(); failed=0
if [ "$HOST" = 1 ]; then
  start=$(date +%s)
  if sh scripts/vm/e2e-core.sh >/tmp/gmon-host-e2e.out 2>&1; then r=PASS; else r=FAIL; failed=1; cat /tmp/gmon-host-e2e.out; fi
  results+=("$(uname -r) (this machine): $r in $(( $(date +%s) - start )) s")
fi
for k in $KERNELS; do
  start=$(date +%s)
  if scripts/vm/run.sh "$k" "GMON_VM_STORM_S=${GMON_VM_STORM_S:-20} sh scripts/vm/e2e-core.sh" >/tmp/gmon-vm-$k.out 2>&1; then r=PASS
  else r=FAIL; failed=1; cat "/tmp/gmon-vm-$k.out"; fi
  results+=("$(grep -m1 '^kernel ' "/tmp/gmon-vm-$k.out" | cut -d' ' -f2 || echo "$k") (VM, $k): $r in $(( $(date +%s) - start )) s")
done
echo "test-kernels:"
printf '  %s\n' "${results[@]}"
exit $failed
