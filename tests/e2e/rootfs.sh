#!/usr/bin/env bash
# Prints the path of a minimal Debian 12 root file system with systemd, for booting with
# systemd-nspawn in the package tests; creates it (about 70 s, 350 MB) when it is missing.
# The root is kept pristine: the tests boot it with --volatile=overlay.
set -euo pipefail

ROOT=${E2E_ROOTFS:-/var/cache/qftpd/e2e-rootfs}
# What the root holds; changing this list rebuilds it.
PACKAGES=systemd,systemd-sysv,dbus,python3,curl,procps,iproute2,libcap2-bin,ca-certificates
STAMP="$ROOT/.qftpd-rootfs-$(printf %s "$PACKAGES,rpm" | md5sum | cut -c1-12)"

if [ -f "$STAMP" ]; then
    echo "$ROOT"
    exit 0
fi
for tool in debootstrap systemd-nspawn; do
    command -v "$tool" >/dev/null || { echo "rootfs.sh: $tool is missing (apt-get install debootstrap systemd-container)" >&2; exit 1; }
done
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
started=$SECONDS
tmp="$ROOT.tmp.$$"
rm -rf "$tmp"
mkdir -p "$(dirname "$ROOT")"
echo "rootfs.sh: debootstrap bookworm from $mirror into $tmp" >&2
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$tmp" "$mirror" >&2
# rpm, to install the .rpm in the booted Debian (no RPM distribution is reachable here).
chroot "$tmp" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rpm >&2
chroot "$tmp" apt-get clean
# A booted container must not wait for a network that is not there.
chroot "$tmp" systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1 || true
touch "$tmp/$(basename "$STAMP")"
rm -rf "$ROOT"
mv "$tmp" "$ROOT"
echo "rootfs.sh: built $ROOT in $((SECONDS - started)) s" >&2
echo "$ROOT"
