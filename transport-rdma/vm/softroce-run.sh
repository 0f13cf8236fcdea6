#!/usr/bin/env bash
# transport-rdma/vm/softroce-run.sh: runs a guest script on a real verbs stack (Soft-RoCE, rdma_rxe) in a qemu VM.
#
#   softroce-run.sh [--guest SCRIPT] [--log FILE]   boot, create rxe0, run SCRIPT (default: guest-suite.sh), power off
#   softroce-run.sh --can-run                      exit 0 when this machine can run the VM, else print why and exit 77
#
# The VM boots Debian's stock kernel under qemu TCG (software emulation: no KVM, no RDMA hardware), loads rdma_rxe,
# adds rxe0 on its virtio NIC (10.0.2.15; GID index 1 is the IPv4-mapped RoCE v2 GID) and runs SCRIPT with bash in a
# chroot of THIS machine's root file system, shared read-only over 9p. So the guest sees the repository, the JDK and
# the build exactly as the host has them (build on the host first); only $WORK is writable there, as $SOFTROCE_WORK,
# plus tmpfs on /tmp, /run and /var/tmp. The guest gets PEGAFLOW_ROOT (this checkout) and SOFTROCE_OUT ($WORK/out,
# where it leaves what the host should see).
#
# Exit status: the guest script's; 77 cannot run here (not root, no apt-get, or packages missing: says which);
# 99 the guest script never reported; 124 the VM ran past VM_TIMEOUT seconds (default 540).
# Environment: WORK (default /var/tmp/softroce-ops), VM_TIMEOUT, VM_SMP (2), VM_MEM (MiB, 3072), KERNEL_META
# (linux-image-amd64: bookworm's 6.1; linux-image-6.12-amd64 for 6.12). SUITE_* and BENCH_* variables are passed
# on to the guest script.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="${WORK:-/var/tmp/softroce-ops}"
GUEST="$HERE/guest-suite.sh"
LOG=/dev/stdout
CAN_RUN_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --guest) GUEST="$(readlink -f "$2")"; shift 2 ;;
    --log) LOG="$2"; shift 2 ;;
    --can-run) CAN_RUN_ONLY=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "softroce-run: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "[softroce] $*" >&2; }
cannot_run() { say "NOT RUN: $*"; exit 77; }

HOST_PACKAGES=(qemu-system-x86 busybox-static ibverbs-providers ibverbs-utils rdma-core libibverbs1 kmod cpio xz-utils
  iproute2)

# What the host lacks, as package names (empty: nothing).
missing_packages() {
  local m=()
  command -v qemu-system-x86_64 >/dev/null || m+=(qemu-system-x86)
  [ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx insmod || m+=(busybox-static)
  command -v ibv_devices >/dev/null || m+=(ibverbs-utils)
  ls /usr/lib/*/libibverbs/librxe-rdmav*.so >/dev/null 2>&1 || m+=(ibverbs-providers)
  ls /usr/lib/*/libibverbs.so.1 >/dev/null 2>&1 || m+=(libibverbs1)
  command -v rdma >/dev/null || m+=(iproute2)
  [ -x /sbin/depmod ] && [ -x /sbin/modprobe ] || m+=(kmod)
  command -v cpio >/dev/null || m+=(cpio)
  command -v xz >/dev/null || m+=(xz-utils)
  echo "${m[*]}"
}

# 1. Host prerequisites: installed through apt when root, else a clear NOT RUN.
missing="$(missing_packages)"
if [ -n "$missing" ]; then
  [ "$(id -u)" = 0 ] || cannot_run "needs root to install: $missing (apt-get install $missing)"
  command -v apt-get >/dev/null || cannot_run "no apt-get to install: $missing"
  [ "$CAN_RUN_ONLY" = 1 ] && { say "can run: will install $missing"; exit 0; }
  say "installing $missing"
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    "${HOST_PACKAGES[@]}" >/dev/null || cannot_run "apt-get install ${HOST_PACKAGES[*]} failed"
  missing="$(missing_packages)"
  [ -z "$missing" ] || cannot_run "still missing after apt-get: $missing"
fi
[ "$(id -u)" = 0 ] || cannot_run "needs root (the guest chroots into / and the 9p share must read every file)"
if [ ! -f "$WORK/kernel/ready" ]; then
  command -v apt-get >/dev/null || cannot_run "no kernel cached in $WORK/kernel and no apt-get to download one"
fi
[ "$CAN_RUN_ONLY" = 1 ] && { say "can run"; exit 0; }
[ -f "$GUEST" ] || { say "no guest script $GUEST"; exit 2; }

mkdir -p "$WORK/out"
cd "$WORK"

# 2. Kernel: the package linux-image-amd64 points at, unpacked (not installed) into $WORK/kernel; cached.
if [ ! -f kernel/ready ]; then
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null || true
  pkg="$(apt-cache depends "${KERNEL_META:-linux-image-amd64}" | awk '/Depends: linux-image-[0-9]/{print $2; exit}')"
  [ -n "$pkg" ] || cannot_run "apt-cache found no kernel package behind ${KERNEL_META:-linux-image-amd64}"
  say "downloading kernel $pkg"
  rm -rf kernel kernel-dl; mkdir -p kernel-dl
  (cd kernel-dl && apt-get download -qq "$pkg" >/dev/null 2>&1) || cannot_run "apt-get download $pkg failed"
  dpkg-deb -x kernel-dl/*.deb kernel
  rm -rf kernel-dl
  kv="${pkg#linux-image-}"
  /sbin/depmod -b kernel "$kv"
  echo "$kv" >kernel/ready
fi
KV="$(cat kernel/ready)"

# 3. initramfs: busybox, the modules rdma_rxe and the shares need (in dependency order), and an /init that mounts
#    the host's root, adds rxe0 and runs the guest command in a chroot.
rm -rf initrd; mkdir -p initrd/bin initrd/mods initrd/proc initrd/sys initrd/dev initrd/host
cp /bin/busybox initrd/bin/busybox
ln -s busybox initrd/bin/sh
/sbin/modprobe -d kernel -S "$KV" --show-depends -a \
  virtio_pci virtio_net 9pnet_virtio 9p crc32_generic rdma_rxe |
  awk '$1 == "insmod" && !seen[$2]++ {print $2}' |
  while read -r ko; do
    name="$(basename "$ko")"
    case "$name" in
      *.ko.xz) xz -dc "$ko" >"initrd/mods/${name%.xz}"; name="${name%.xz}" ;;
      *) cp "$ko" "initrd/mods/$name" ;;
    esac
    echo "$name" >>initrd/mods/load-order
  done
cat >initrd/init <<'INIT'
#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
while read -r m; do insmod "/mods/$m" || echo "[guest-init] insmod $m failed"; done </mods/load-order
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
WORK=$(arg pegaflow.work); ROOT=$(arg pegaflow.root)
R=/host
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose hostroot $R
mount -t proc proc $R/proc; mount -t sysfs sysfs $R/sys; mount -t devtmpfs devtmpfs $R/dev
mount -t devpts devpts $R/dev/pts 2>/dev/null
for d in tmp run var/tmp; do mount -t tmpfs tmpfs $R/$d; done
mkdir -p $R$WORK
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 work $R$WORK
# The checkout as a share of its own, mounted after the tmpfs mounts: a clone under /tmp, /run or /var/tmp is
# hidden by them otherwise.
mkdir -p $R$ROOT 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose repo $R$ROOT || echo "[guest-init] mount of $ROOT failed"
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0
# The host's name, which its /etc/hosts (the guest's too) resolves: a nameless guest makes every JVM's
# InetAddress.getLocalHost wait for DNS.
hostname "$(cat $R/etc/hostname 2>/dev/null || echo localhost)"
chroot $R /usr/bin/rdma link add rxe0 type rxe netdev eth0 || echo "[guest-init] rdma link add rxe0 failed"
echo "[guest-init] guest command starts at uptime $(cut -d' ' -f1 /proc/uptime)s"
chroot $R /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LANG=C.UTF-8 \
  SOFTROCE_WORK=$WORK SOFTROCE_OUT=$WORK/out PEGAFLOW_ROOT=$ROOT PEGAFLOW_IN_SOFTROCE_VM=1 \
  /bin/bash $WORK/out/guest-command.sh
rc=$?
echo $rc >$R$WORK/out/guest-rc
echo "[guest-init] guest command rc=$rc at uptime $(cut -d' ' -f1 /proc/uptime)s"
sync; umount $R$WORK; poweroff -f
INIT
chmod +x initrd/init
(cd initrd && find . | cpio -o -H newc --quiet | gzip -1) >initrd.cpio.gz

# 4. Boot: qemu TCG, serial console into LOG, user-mode network, the three 9p shares.
rm -f out/guest-rc
# SUITE_* and BENCH_* variables reach the guest (its environment is otherwise clean).
{
  for v in $(compgen -v | grep -E '^(SUITE|BENCH)_' || true); do printf 'export %s=%q\n' "$v" "${!v}"; done
  cat "$GUEST"
} >out/guest-command.sh
say "booting kernel $KV (TCG, ${VM_SMP:-2} cpus, ${VM_MEM:-3072} MiB); guest script $(basename "$GUEST"); log $LOG"
start=$(date +%s)
set +e
timeout "${VM_TIMEOUT:-570}" qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu max -smp "${VM_SMP:-2}" -m "${VM_MEM:-3072}" \
  -nographic -no-reboot -nodefaults -serial stdio -monitor none \
  -kernel "kernel/boot/vmlinuz-$KV" -initrd initrd.cpio.gz \
  -append "console=ttyS0 panic=-1 quiet loglevel=3 pegaflow.work=$WORK pegaflow.root=$ROOT" \
  -netdev user,id=net0 -device virtio-net-pci,netdev=net0 \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$WORK,mount_tag=work,security_model=none,multidevs=remap" \
  -virtfs "local,path=$ROOT,mount_tag=repo,security_model=none,readonly=on,multidevs=remap" \
  </dev/null >"$LOG" 2>&1
qemu_rc=$?
set -e
say "VM ran $(($(date +%s) - start)) s"
if [ "$qemu_rc" = 124 ]; then say "VM timed out after ${VM_TIMEOUT:-570} s"; exit 124; fi
[ -f out/guest-rc ] || { say "the guest script never reported (qemu rc $qemu_rc)"; exit 99; }
exit "$(cat out/guest-rc)"
