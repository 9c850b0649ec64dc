#!/bin/bash
# npm run setup:host — prepares this machine as a KVM and LXC host and for their tests: installs
# the Debian packages the kvm and lxc drivers and host networking use, then builds the test
# templates (a qcow2 image for KVM, a root file system tarball for LXC).
set -uo pipefail
die() { echo "setup:host: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (it installs packages; the template build loop-mounts an image)"
command -v apt-get >/dev/null || die "needs Debian (or a derivative) with apt-get"

# dnsmasq-base, nftables, iproute2: guest networking (routers' DHCP and DNS, security groups,
# bridges, VXLAN and namespaces); haproxy: isolated networks' load balancers on the routers;
# curl: the host networking tests talk to routers with it; iputils-arping: routers announce
# addresses that moved to them (a rebuilt router has new MACs for the same addresses).
# strongswan-charon, strongswan-swanctl, libcharon-extra-plugins (kernel-libipsec), libcharon-extauth-plugins
# (EAP-MSCHAPv2), libstrongswan-standard-plugins (openssl): routers' VPNs (IKE, and ESP in user
# space through kernel-libipsec where the kernel has no ESP); iputils-ping: the VPN tests ping through tunnels;
# lxc: the LXC driver's system containers.
PKGS="qemu-system-x86 qemu-utils dnsmasq-base nftables haproxy iproute2 curl iputils-arping iputils-ping strongswan-charon strongswan-swanctl libcharon-extra-plugins libcharon-extauth-plugins libstrongswan-standard-plugins busybox-static cpio fdisk extlinux syslinux-common e2fsprogs lxc"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  log=$(mktemp /tmp/nimbostack-setup-host.XXXXXX)
  export DEBIAN_FRONTEND=noninteractive
  echo "setup:host: installing$missing"
  apt-get update -qq >"$log" 2>&1 || die "apt-get update failed: $(tail -n 1 "$log") (full log: $log)"
  # Another apt-get may hold the dpkg lock (CI images, other users): wait for it instead of failing.
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $missing >>"$log" 2>&1 ||
    die "apt-get install failed: $(tail -n 1 "$log") (full log: $log)"
  rm -f "$log"
fi

template=${NIMBOSTACK_TEST_TEMPLATE:-/var/lib/nimbostack/test-template.qcow2}
"$(dirname "$0")/build-test-template.sh" "$template" || die "building the test template failed"
lxc_template=${NIMBOSTACK_TEST_LXC_TEMPLATE:-/var/lib/nimbostack/lxc-template.tar.gz}
"$(dirname "$0")/build-lxc-template.sh" "$lxc_template" || die "building the LXC test template failed"
echo "setup:host: ready (QEMU $(qemu-system-x86_64 --version | head -n 1 | awk '{print $4}'), template $template; LXC $(lxc-start --version), template $lxc_template)"
