#!/usr/bin/env bash
# Installs everything hvbackup and its tests need on Debian 12, as root:
# libvirt and QEMU, qemu-utils (qemu-img, qemu-nbd), nbdkit, libnbd tools,
# OVMF for the UEFI fixture, Ceph (mon, osd, radosgw) for the S3 tests, gpg
# and sqop as OpenPGP peers, nix-bin and systemd for the packaging tests,
# then the npm packages from package-lock.json and the TypeScript build.
set -euo pipefail

cd "$(dirname "$0")/.."

packages=(
  libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu
  qemu-system-x86 qemu-utils libnbd-bin nbdkit ovmf
  ceph-mon ceph-osd radosgw
  gnupg sqop nix-bin systemd
  tar e2fsprogs procps ca-certificates
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# Debian's udev rule gives /dev/kvm to group kvm with mode 0660. Where no
# udev runs (containers), the node stays root-only. libvirt 9 then logs "KVM
# was enabled when probing ..., but it is not available now", drops its
# cached QEMU capabilities and probes QEMU again on nearly every call:
# `virsh define` took 5.4 s instead of 0.02 s on such a host.
if [ -c /dev/kvm ] && [ "$(id -u)" -eq 0 ] && [ "$(stat -c %G:%a /dev/kvm)" != kvm:660 ]; then
  echo "install-deps: giving /dev/kvm to group kvm, mode 0660, as Debian's udev rule does" >&2
  chgrp kvm /dev/kvm
  chmod 0660 /dev/kvm
fi

if ! command -v node >/dev/null || ! node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "install-deps: Node.js 20.19 or newer is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# npm ci deletes node_modules first, which breaks any hvbackup or test run
# that uses this checkout at the same moment. So it runs only when
# package-lock.json changed since the last install here.
lock_sha256=$(sha256sum package-lock.json | cut -d' ' -f1)
lock_stamp=node_modules/.hvbackup-lock-sha256
if [ "$(cat "$lock_stamp" 2>/dev/null)" != "$lock_sha256" ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$lock_sha256" > "$lock_stamp"
fi
npm run build --silent >&2
