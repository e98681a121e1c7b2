#!/usr/bin/env bash
# The main job, end to end, on a fresh Debian 12 machine as root:
#   1. install dependencies and build,
#   2. start libvirtd if it is not running,
#   3. create a small running VM (TCG, 64 MiB RAM, a 256 MiB qcow2 disk with
#      known data at known offsets),
#   4. create a host key and an admin key, and a configuration that uses a
#      local directory repository (the embedded default),
#   5. back the running VM up, then destroy and undefine it and delete its disk,
#   6. restore it, and prove with `qemu-img compare` that the disk is identical,
#   7. restore a clone under a new name, and clean everything up, stopping
#      libvirtd again if the demo started it.
# Set HVBACKUP_DEMO_DIR to choose the work directory (default /var/tmp/hvbackup-demo).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
work=${HVBACKUP_DEMO_DIR:-/var/tmp/hvbackup-demo}
domain=hvbackup-demo
hv() { node "$repo/bin/hvbackup.js" --config "$work/config.json" --log-format human "$@"; }
step() { printf '\n== %s\n' "$*" >&2; }

step "installing dependencies and building"
bash scripts/install-deps.sh

step "starting libvirtd (if needed)"
bash test/services/libvirtd.sh start >/dev/null
export LIBVIRT_DEFAULT_URI=qemu:///system

cleanup() {
  for name in "$domain" "$domain-clone"; do
    virsh destroy "$name" >/dev/null 2>&1 || true
    virsh undefine "$name" --nvram --checkpoints-metadata >/dev/null 2>&1 || true
  done
}
# libvirtd.sh stops the daemons only if it started them and no test run
# still uses them, so a libvirtd that ran before the demo keeps running.
trap 'cleanup; bash test/services/libvirtd.sh stop >/dev/null' EXIT
cleanup
rm -rf "$work"
mkdir -p "$work/images" "$work/keys" "$work/repository"
chmod 755 "$work" "$work/images"

step "creating domain $domain with a 256 MiB qcow2 disk"
disk="$work/images/$domain.qcow2"
qemu-img create -q -f qcow2 "$disk" 256M
qemu-io -f qcow2 -c 'write -P 0x11 0 1M' -c 'write -P 0x22 64M 3M' -c 'write -P 0x33 255M 1M' "$disk" >/dev/null
cat >"$work/$domain.xml" <<XML
<domain type='qemu'>
  <name>$domain</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='user'><mac address='52:54:00:12:34:56'/><model type='virtio'/></interface>
    <serial type='pty'/>
  </devices>
</domain>
XML
virsh define "$work/$domain.xml" >/dev/null
virsh start "$domain" >/dev/null

step "creating keys and the configuration"
hv keys create-host -o "$work/keys" --name "demo host" >&2
hv keys create-admin -o "$work/keys" --name demo >&2
host_fpr=$(hv keys show "$work/keys/host-key.pub.asc" | cut -d' ' -f1)
cat >"$work/config.json" <<JSON
{
  "repository": { "type": "local", "path": "$work/repository" },
  "scratchDir": "$work/scratch",
  "stagingDir": "$work/staging",
  "stateDir": "$work/state",
  "signingKey": "$work/keys/host-key.asc",
  "recipients": ["$work/keys/admin-demo.pub.asc"],
  "trustedSigners": ["$host_fpr"],
  "adminKey": "$work/keys/admin-demo.asc",
  "auditFile": "$work/audit.jsonl"
}
JSON

step "backing up the running domain"
hv backup "$domain"
hv list

step "destroying the domain and deleting its disk"
virsh destroy "$domain" >/dev/null
cp --sparse=always "$disk" "$work/reference.qcow2"
virsh dumpxml --inactive "$domain" >"$work/original.xml"
virsh undefine "$domain" --checkpoints-metadata >/dev/null
rm -f "$disk"

step "restoring $domain"
hv restore --yes "$domain"
qemu-img compare -q "$work/reference.qcow2" "$disk"
echo "disk identical: qemu-img compare found no difference" >&2
virsh start "$domain" >/dev/null
echo "restored domain starts: $(virsh domstate "$domain")" >&2

step "restoring a clone as $domain-clone"
hv restore --yes "$domain" --as "$domain-clone"
qemu-img compare -q "$work/reference.qcow2" "$work/images/$domain-clone-vda.qcow2"
echo "clone disk identical; clone UUID $(virsh domuuid "$domain-clone"), original $(virsh domuuid "$domain")" >&2

step "done: backup, restore and clone verified"
echo "the demo domains were removed; $work is kept for inspection and contains unencrypted demo keys: rm -rf $work" >&2
