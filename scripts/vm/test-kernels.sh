#!/usr/bin/env bash
# make test-kernels: gmon's end-to-end core (scripts/vm/e2e-core.sh) on each kernel of
# KERNELS, each in a VM of its own, and on this machine's own kernel directly; a line per
# kernel, and a failure when any kernel fails.
#   KERNELS="6.1 6.1-rt 6.12 6.12-rt 6.12@preempt=full" (default), or exact names: 6.1.0-57-rt-amd64;
#   KERNEL@PARAMETERS boots KERNEL with those kernel parameters (Debian's generic kernels
#   choose their preemption model at boot: preempt=full makes BPF programs preemptible)
set -uo pipefail
cd "$(dirname "$0")/../.."
KERNELS=${KERNELS:-"6.1 6.1-rt 6.12 6.12-rt 6.12@preempt=full"}
HOST=${GMON_VM_HOST:-1}
results=(); failed=0
if [ "$HOST" = 1 ]; then
  start=$(date +%s)
  if sh scripts/vm/e2e-core.sh >/tmp/gmon-host-e2e.out 2>&1; then r=PASS; else r=FAIL; failed=1; cat /tmp/gmon-host-e2e.out; fi
  results+=("$(uname -r) (this machine): $r in $(( $(date +%s) - start )) s")
fi
for entry in $KERNELS; do
  k=${entry%%@*}; params=""; [ "$k" = "$entry" ] || params=${entry#*@}
  start=$(date +%s)
  if GMON_VM_APPEND="$params" scripts/vm/run.sh "$k" "GMON_VM_STORM_S=${GMON_VM_STORM_S:-20} sh scripts/vm/e2e-core.sh" >"/tmp/gmon-vm-$entry.out" 2>&1; then r=PASS
  else r=FAIL; failed=1; cat "/tmp/gmon-vm-$entry.out"; fi
  results+=("$(grep -m1 '^kernel ' "/tmp/gmon-vm-$entry.out" | cut -d' ' -f2 || echo "$k") (VM, $entry): $r in $(( $(date +%s) - start )) s")
done
echo "test-kernels:"
printf '  %s\n' "${results[@]}"
exit $failed
