#!/bin/bash
# Builds the LXC test template: a root file system tarball (format TAR) with Debian's static
# busybox as the whole userland and a small init that, like the KVM test template's, brings eth0
# up with udhcpc, reads CloudStack metadata, the SSH key, user data and the password from the
# DHCP server (the virtual router) and prints every step on the console as "NIMBO: ...".
# A build whose inputs (this script, the busybox package) did not change is reused.
#   scripts/build-lxc-template.sh OUTPUT.tar.gz
# Needs: busybox-static, tar, gzip (root, so that the files belong to root in the archive).
set -euo pipefail

die() { echo "build-lxc-template: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: $0 OUTPUT.tar.gz"
OUT=$(realpath -m "$1")
[ "$(id -u)" = 0 ] || die "must run as root (the root file system's files belong to root)"
BUSYBOX=$(command -v busybox) || die "busybox is missing; run npm run setup:host"
ldd "$BUSYBOX" >/dev/null 2>&1 && die "$BUSYBOX is not static; install busybox-static"
STAMP="$(sha256sum "$0" | cut -c1-16) $(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null)"
if [ -f "$OUT" ] && [ "$(cat "$OUT.stamp" 2>/dev/null)" = "$STAMP" ]; then
  echo "build-lxc-template: $OUT is up to date"
  exit 0
fi
mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
R=$WORK/root
mkdir -p "$R"/{bin,sbin,proc,sys,dev,run,tmp,root,var/log,etc/init.d,usr/share/udhcpc}
cp "$BUSYBOX" "$R/bin/busybox"
# busybox --list names busybox itself: linking it would replace the binary by a self-link.
for a in $("$BUSYBOX" --list); do [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"; done
ln -sf ../bin/busybox "$R/sbin/init"
chmod 1777 "$R/tmp"
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:*:0:0:99999:7:::' > "$R/etc/shadow" && chmod 600 "$R/etc/shadow"
echo 'root:x:0:' > "$R/etc/group"
echo nimbo-template > "$R/etc/hostname"
# LXC logs /dev/console on the host; the login prompt is on tty1 (lxc-console's default), not on
# the console: getty hangs its terminal up when it starts, which would discard console output the
# host has not read yet. The container halts on SIGUSR1 (lxc-stop) and reboots on SIGTERM
# (lxc-stop -r), and says so on the way down.
cat > "$R/etc/inittab" <<'S'
::sysinit:/etc/init.d/rcS
tty1::respawn:/bin/getty 38400 tty1
::ctrlaltdel:/bin/reboot
::shutdown:/bin/sh -c 'echo "NIMBO: shutdown" > /dev/console'
S
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
# Every step is printed as "NIMBO: ..." on the console; nothing waits forever, so a container
# without a network (or without a router) still reaches "NIMBO: ready". LXC has mounted /proc,
# /sys and /dev already.
say() { echo "NIMBO: $*"; }
mkdir -p /run /dev/pts; mount -t tmpfs tmpfs /run; grep -q " /dev/pts " /proc/mounts || mount -t devpts devpts /dev/pts
say "init uptime=$(cut -d' ' -f1 /proc/uptime)"
hostname -F /etc/hostname
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
tar -czf "$WORK/out.tar.gz" --numeric-owner -C "$R" .
mv "$WORK/out.tar.gz" "$OUT"
echo "$STAMP" > "$OUT.stamp"
echo "build-lxc-template: built $OUT ($(du -h "$OUT" | cut -f1))"
