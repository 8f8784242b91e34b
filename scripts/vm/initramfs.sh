#!/usr/bin/env bash
# Builds the small initramfs a VM boots: busybox (static) and the kernel's modules for
# virtio, 9p and overlayfs, with an init that mounts the host's root read-only over 9p
# under a tmpfs overlay, runs the job's command there and writes its output and exit
# status back to the job directory (read-write 9p).
#   initramfs.sh KERNEL_DIR VERSION   → KERNEL_DIR/initramfs.gz
set -euo pipefail
dir=$1; version=$2
out="$dir/initramfs.gz"
[ -f "$out" ] && [ "$out" -nt "$0" ] && exit 0
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
mkdir -p "$W"/{bin,proc,sys,dev,lower,upper,newroot,lib/modules}
cp /bin/busybox "$W/bin/busybox"
mods="$dir/lib/modules/$version"
# Each wanted module after what it depends on (modules.dep), decompressed for busybox's insmod.
order=()
add() {
  local m=$1 line deps d
  line=$(grep -E "(^|/)$m\.ko(\.xz|\.zst)?:" "$mods/modules.dep" || true)
  [ -z "$line" ] && return 0   # built in
  deps=${line#*:}
  for d in $deps; do add "$(basename "$d" | sed -E 's/\.ko(\.xz|\.zst)?$//')"; done
  local path=${line%%:*}
  for o in "${order[@]:-}"; do [ "$o" = "$path" ] && return 0; done
  order+=("$path")
}
for m in virtio_pci virtio_console 9pnet_virtio 9p overlay; do add "$m"; done
: >"$W/modules.order"
for path in "${order[@]}"; do
  name=$(basename "$path" | sed -E 's/\.ko(\.xz|\.zst)?$//').ko
  case $path in
    *.xz) xz -dc "$mods/$path" >"$W/lib/modules/$name" ;;
    *.zst) zstd -dcq "$mods/$path" >"$W/lib/modules/$name" ;;
    *) cp "$mods/$path" "$W/lib/modules/$name" ;;
  esac
  echo "$name" >>"$W/modules.order"
done
cat >"$W/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m 2>/dev/null; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 hostroot /lower || { echo "gmon-vm: cannot mount the host's root"; poweroff -f; }
mount -t tmpfs -o size=1g tmpfs /upper; mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot
mkdir -p /newroot/gmon-job
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 job /newroot/gmon-job
mount -t proc proc /newroot/proc; mount -t sysfs sys /newroot/sys; mount -t devtmpfs dev /newroot/dev
mount -t tmpfs tmpfs /newroot/run   # /tmp stays the host's (a clone may live there); writes go to the overlay
mount -t bpf bpf /newroot/sys/fs/bpf 2>/dev/null
mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup 2>/dev/null   # runc puts containers in cgroups
ip link set lo up   # fixtures talk to themselves over 127.0.0.1
echo "gmon-vm: running on $(uname -r)"
chroot /newroot /bin/sh -c 'cd "$(cat /gmon-job/cwd)" && exec /bin/sh /gmon-job/cmd' >/newroot/gmon-job/out 2>&1
echo $? >/newroot/gmon-job/status
sync
poweroff -f
INIT
chmod 755 "$W/init"
(cd "$W" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
