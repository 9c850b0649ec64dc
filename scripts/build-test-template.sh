#!/bin/bash
# Builds the small bootable qcow2 test template: the Debian cloud kernel and a busybox root file
# system on one ext3 partition booted by extlinux from the image's own MBR (no -kernel on the host).
# Its init brings up the network with udhcpc, reads CloudStack metadata, user data and the password
# from the DHCP server (the virtual router), and prints every step on the serial console as
# "NIMBO: ...". A build whose inputs (this script, the kernel package) did not change is reused.
#   scripts/build-test-template.sh OUTPUT.qcow2
# Needs root (loop mount for extlinux) and: busybox-static cpio fdisk extlinux syslinux-common qemu-utils e2fsprogs.
set -euo pipefail

die() { echo "build-test-template: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: $0 OUTPUT.qcow2"
OUT=$(realpath -m "$1")
[ "$(id -u)" = 0 ] || die "must run as root (extlinux needs a loop mount)"
for tool in busybox cpio sfdisk extlinux mkfs.ext3 qemu-img apt-get dpkg-deb losetup; do
  command -v "$tool" >/dev/null || die "$tool is missing; run npm run setup:host"
done
BUSYBOX=$(command -v busybox)
ldd "$BUSYBOX" >/dev/null 2>&1 && die "$BUSYBOX is not static; install busybox-static"
MBR=/usr/lib/syslinux/mbr/mbr.bin
[ -f "$MBR" ] || die "$MBR is missing; install syslinux-common"

CACHE=${NIMBOSTACK_CACHE_DIR:-/var/cache/nimbostack}/test-template
mkdir -p "$CACHE" "$(dirname "$OUT")"
KPKG=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
[ -n "$KPKG" ] || die "cannot resolve linux-image-cloud-amd64 (apt-get update?)"
STAMP="$(sha256sum "$0" | cut -c1-16) $KPKG"
if [ -f "$OUT" ] && [ "$(cat "$OUT.stamp" 2>/dev/null)" = "$STAMP" ]; then
  echo "build-test-template: $OUT is up to date ($KPKG)"
  exit 0
fi

KX=$CACHE/$KPKG
if [ ! -d "$KX/boot" ]; then
  rm -rf "$KX.tmp" && mkdir -p "$KX.tmp"
  (cd "$KX.tmp" && apt-get download -q "$KPKG" >/dev/null 2>&1) || die "apt-get download $KPKG failed"
  dpkg-deb -x "$KX.tmp"/*.deb "$KX.tmp/x"
  mv "$KX.tmp/x" "$KX" && rm -rf "$KX.tmp"
fi
KV=$(ls "$KX/lib/modules")
KM=$KX/lib/modules/$KV/kernel

WORK=$(mktemp -d "$CACHE/build.XXXXXX")
MNT=$WORK/mnt
cleanup() {
  mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
  rm -rf "$WORK"
}
trap cleanup EXIT

populate_busybox() {
  mkdir -p "$1/bin" "$1/sbin"
  cp "$BUSYBOX" "$1/bin/busybox"
  # busybox --list names busybox itself: linking it would replace the binary by a self-link.
  for a in $("$BUSYBOX" --list); do [ "$a" = busybox ] || ln -sf busybox "$1/bin/$a"; done
}

# --- initramfs: loads the virtio drivers (modules in the cloud kernel) and switches to the disk root.
I=$WORK/initrd
mkdir -p "$I"/{proc,sys,dev,newroot,lib/modules}
populate_busybox "$I"
# Dependency order, read from the modules' depends= (the .deb ships no modules.dep).
VIRTIO="drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev
  drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/block/virtio_blk
  net/core/failover drivers/net/net_failover drivers/net/virtio_net"
for m in $VIRTIO; do cp "$KM/$m.ko" "$I/lib/modules/"; done
cat > "$I/init" <<'S'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk failover net_failover virtio_net; do
  insmod /lib/modules/$m.ko || echo "NIMBO: insmod $m failed"
done
echo "NIMBO: initramfs uptime=$(cut -d' ' -f1 /proc/uptime)"
ROOT=
for i in $(seq 50); do
  ROOT=$(findfs LABEL=nimboroot 2>/dev/null) && break
  sleep 0.1
done
[ -n "$ROOT" ] || { echo "NIMBO: no root file system (LABEL=nimboroot)"; exec sh; }
mount -t ext4 "$ROOT" /newroot || { echo "NIMBO: cannot mount $ROOT"; exec sh; }
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
S
chmod +x "$I/init"

# --- root file system
R=$WORK/root
mkdir -p "$R"/{proc,sys,dev,run,tmp,root,var/log,etc/init.d,etc/acpi/PWRF,lib/modules,usr/share/udhcpc,boot/extlinux}
populate_busybox "$R"
ln -sf ../bin/busybox "$R/sbin/init"
cp "$KM/drivers/acpi/button.ko" "$KM/drivers/input/evdev.ko" "$R/lib/modules/"
cp "$KX"/boot/vmlinuz-* "$R/boot/vmlinuz"
(cd "$I" && find . | cpio -o -H newc --quiet | gzip -1) > "$R/boot/initrd.gz"
cat > "$R/boot/extlinux/extlinux.conf" <<'S'
SERIAL 0 115200
DEFAULT linux
TIMEOUT 0
PROMPT 0
LABEL linux
  KERNEL /boot/vmlinuz
  INITRD /boot/initrd.gz
  APPEND console=tty0 console=ttyS0,115200n8 quiet panic=-1
S
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:*:0:0:99999:7:::' > "$R/etc/shadow" && chmod 600 "$R/etc/shadow"
echo 'root:x:0:' > "$R/etc/group"
echo nimbo-template > "$R/etc/hostname"
cat > "$R/etc/inittab" <<'S'
::sysinit:/etc/init.d/rcS
ttyS0::respawn:/bin/getty -L 115200 ttyS0 vt100
tty1::respawn:/bin/getty 38400 tty1
::ctrlaltdel:/bin/reboot
::shutdown:/bin/umount -a -r
S
printf '#!/bin/sh\necho "NIMBO: acpi power-off" > /dev/console\npoweroff\n' > "$R/etc/acpi/PWRF/00000080"
chmod +x "$R/etc/acpi/PWRF/00000080"
# busybox uevent runs this for every device event after boot: tests see hot-plugged disks and
# NICs (with the MAC the guest sees, read while the interface still exists).
cat > "$R/sbin/hotplug" <<'S'
#!/bin/sh
[ "$SUBSYSTEM" = block ] && [ "$DEVTYPE" = disk ] && echo "NIMBO: disk $ACTION $DEVNAME" > /dev/console
if [ "$SUBSYSTEM" = net ] && [ -n "$INTERFACE" ] && [ "$INTERFACE" != lo ]; then
  case "$ACTION" in
    add) echo "NIMBO: net add $INTERFACE $(cat /sys/class/net/$INTERFACE/address 2>/dev/null)" > /dev/console ;;
    remove) echo "NIMBO: net remove $INTERFACE" > /dev/console ;;
  esac
fi
exit 0
S
chmod +x "$R/sbin/hotplug"
cat > "$R/usr/share/udhcpc/default.script" <<'S'
#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    echo "ip=$ip serverid=$serverid router=${router%% *}" > /run/dhcp.lease ;;
esac
S
chmod +x "$R/usr/share/udhcpc/default.script"
cat > "$R/etc/init.d/rcS" <<'S'
#!/bin/sh
# Every step is printed as "NIMBO: ..." on the serial console; nothing waits forever, so a guest
# without a network (or without a router) still reaches "NIMBO: ready".
say() { echo "NIMBO: $*"; }
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -o remount,rw /
mkdir -p /dev/pts /run; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /run
say "init uptime=$(cut -d' ' -f1 /proc/uptime)"
hostname -F /etc/hostname
uevent /sbin/hotplug &
insmod /lib/modules/button.ko 2>/dev/null; insmod /lib/modules/evdev.ko 2>/dev/null
acpid && say "acpi ready"
ip link set lo up

fetch() { timeout 5 wget -q -O - "$@" 2>/dev/null; }
if ip link show eth0 >/dev/null 2>&1; then
  ip link set eth0 up
  if udhcpc -s /usr/share/udhcpc/default.script -i eth0 -n -q -t 3 -T 1 >/dev/null 2>&1; then
    . /run/dhcp.lease
    say "dhcp $ip"
  else
    say "dhcp none"
  fi
else
  say "no network"
fi
SERVER=${serverid:-$router}
if [ -n "$SERVER" ]; then
  MD=http://$SERVER/latest
  ID=$(fetch "$MD/meta-data/instance-id") && say "instance-id $ID"
  NAME=$(fetch "$MD/meta-data/local-hostname") && [ -n "$NAME" ] && {
    echo "$NAME" > /etc/hostname; hostname "$NAME"; say "hostname $NAME"; }
  IP4=$(fetch "$MD/meta-data/local-ipv4") && say "local-ipv4 $IP4"
  if KEYS=$(fetch "$MD/meta-data/public-keys") && [ -n "$KEYS" ]; then
    mkdir -p /root/.ssh && chmod 700 /root/.ssh
    echo "$KEYS" > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys
    say "sshkey $(echo "$KEYS" | grep -c .) key(s) installed"
  fi
  if fetch "$MD/user-data" > /run/user-data && [ -s /run/user-data ]; then
    say "userdata $(head -n 1 /run/user-data)"
    if head -c 2 /run/user-data | grep -q '#!'; then
      chmod +x /run/user-data; /run/user-data > /dev/console 2>&1; say "userdata exit $?"
    fi
  fi
  # CloudStack's password server: answers the new password once, then forgets it when told it was saved.
  PW=$(fetch --header "DomU_Request: send_my_password" "http://$SERVER:8080/" | tr -d '\r\n')
  case "$PW" in
    ""|saved_password|bad_request) say "password unchanged" ;;
    *)
      HASH=$(mkpasswd -m sha512 "$PW")
      sed -i "s|^root:[^:]*:|root:$HASH:|" /etc/shadow
      fetch --header "DomU_Request: saved_password" "http://$SERVER:8080/" >/dev/null
      say "password set" ;;
  esac
fi
say "ready hostname=$(hostname)"
S
chmod +x "$R/etc/init.d/rcS"

# --- disk image: MBR + one bootable ext3 partition (SYSLINUX 6.04 cannot read this kernel from ext4).
RAW=$WORK/disk.raw
truncate -s 128M "$RAW"
echo 'start=2048, type=83, bootable' | sfdisk -q "$RAW"
mkfs.ext3 -q -F -L nimboroot -E offset=1048576 -d "$R" "$RAW" 130048k
mkdir -p "$MNT"
mount -t ext3 -o loop,offset=1048576 "$RAW" "$MNT"
extlinux --install "$MNT/boot/extlinux" >/dev/null 2>&1 || die "extlinux --install failed"
umount "$MNT"
dd if="$MBR" of="$RAW" bs=440 count=1 conv=notrunc status=none
qemu-img convert -c -f raw -O qcow2 "$RAW" "$WORK/out.qcow2"
mv "$WORK/out.qcow2" "$OUT"
echo "$STAMP" > "$OUT.stamp"
echo "build-test-template: built $OUT ($KPKG, $(du -h "$OUT" | cut -f1))"
