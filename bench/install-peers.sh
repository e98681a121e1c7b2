#!/usr/bin/env bash
# Installs the tools that bench/run.mjs compares hvbackup with, on Debian 12,
# as root: restic, virtnbdbackup, the AWS CLI, nbdcopy (libnbd-bin), GNU time
# and qemu-io (qemu-utils). The benchmark is not part of CI, so these stay out
# of scripts/install-deps.sh.
set -euo pipefail

packages=(restic virtnbdbackup awscli libnbd-bin time qemu-utils gnupg)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-peers: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
  exit 1
fi

echo "install-peers: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
