#!/usr/bin/env bash
# Boots one kernel in a VM that sees this machine's root read-only (a tmpfs overlay on top)
# and runs a command there, in the current directory; prints its output and exits with its
# status. The VM is killed at the timeout; when the run fails, the kernel's console is shown
# (WARN/BUG/Oops and verifier messages first).
#   run.sh KERNEL COMMAND…      KERNEL: as kernel.sh takes it (6.1, 6.12-rt, 6.1.0-57-amd64…)
#   GMON_VM_TIMEOUT (s, default 600), GMON_VM_MEMORY (MB, default 2048), GMON_VM_CPUS (default 2),
#   GMON_VM_APPEND (more kernel parameters, e.g. preempt=full)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kernel=$1; shift
read -r dir version < <("$here/kernel.sh" "$kernel")
"$here/initramfs.sh" "$dir" "$version"
job=$(mktemp -d /tmp/gmon-vm.XXXXXX)
trap 'rm -rf "$job"' EXIT
printf '%s\n' "$*" >"$job/cmd"
pwd >"$job/cwd"
# KVM when the CPU offers it and /dev/kvm works; software emulation otherwise.
accel="tcg,thread=multi"; cpu=max
if grep -qE '\b(vmx|svm)\b' /proc/cpuinfo && [ -w /dev/kvm ]; then accel=kvm; cpu=host; fi
start=$(date +%s)
status=0
timeout --kill-after=5 "${GMON_VM_TIMEOUT:-600}" qemu-system-x86_64 -accel "$accel" -cpu "$cpu" \
  -m "${GMON_VM_MEMORY:-2048}" -smp "${GMON_VM_CPUS:-2}" -nographic -no-reboot \
  -kernel "$dir/boot/vmlinuz-$version" -initrd "$dir/initramfs.gz" \
  -append "console=ttyS0 panic=-1 rdinit=/init quiet loglevel=5 ${GMON_VM_APPEND:-}" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path="$job",mount_tag=job,security_model=none \
  >"$job/console" 2>&1 || status=$?
took=$(( $(date +%s) - start ))
[ -f "$job/out" ] && cat "$job/out"
if [ ! -f "$job/status" ]; then
  why="did not finish"; [ $status = 124 ] || [ $status = 137 ] && why="was killed after ${GMON_VM_TIMEOUT:-600} s"
  echo "vm: $version ($accel): the VM $why (qemu status $status); its console:" >&2
  grep -aE "WARNING|BUG|Oops|panic|verifier|gmon-vm" "$job/console" >&2 || true
  tail -40 "$job/console" >&2
  exit 1
fi
rc=$(cat "$job/status")
if [ "$rc" != 0 ]; then
  echo "vm: $version ($accel): the command failed (status $rc) after $took s; the kernel's console:" >&2
  grep -aE "WARNING|BUG|Oops|panic|verifier" "$job/console" >&2 || true
  tail -20 "$job/console" >&2
fi
echo "vm: $version ($accel): status $rc in $took s" >&2
exit "$rc"
