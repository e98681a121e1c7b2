/**
 * Whether QEMU's user may open /dev/kvm. Where udev does not run (many
 * containers), the device can stay root:root 0600. libvirt 9 then logs "KVM
 * was enabled when probing '/usr/bin/qemu-system-x86_64', but it is not
 * available now" and probes QEMU again on nearly every call, because it
 * treats its cached capabilities as outdated. `virsh define` took 5.4 s
 * instead of 0.02 s on such a host, and a restore defines a domain each time.
 */
import { stat } from 'node:fs/promises';

import { info, ok, warn, type CheckResult } from './check.js';
import { formatMode, readWritableBy, type FileOwnership } from './modes.js';
import { QEMU_CONF, qemuAccount, resolveAccount } from './qemu-user.js';

export const KVM_DEVICE = '/dev/kvm';

export interface KvmDeviceOptions {
  device?: string;
  qemuConf?: string;
  passwdFile?: string;
  groupFile?: string;
}

export async function checkKvmDevice(name: string, options: KvmDeviceOptions = {}): Promise<CheckResult> {
  const device = options.device ?? KVM_DEVICE;

  let ownership: FileOwnership;
  try {
    ownership = await stat(device);
  } catch {
    return info(name, `${device} is not present, so QEMU runs without KVM (TCG)`);
  }

  const account = await qemuAccount(options.qemuConf ?? QEMU_CONF, options.passwdFile);
  const identity = await resolveAccount(account, options.passwdFile, options.groupFile);
  if (identity === undefined) {
    return info(name, `QEMU user ${account.user} (${account.source}) not found, so access to ${device} cannot be judged`);
  }

  const found = `${device} is uid ${ownership.uid}, gid ${ownership.gid}, mode ${formatMode(ownership.mode)}`;
  if (readWritableBy(ownership, identity)) return ok(name, `QEMU user ${account.user} may open ${device} (${found})`);

  return warn(
    name,
    `QEMU user ${account.user} cannot open ${device} (${found}); libvirt then probes QEMU again on nearly every call, and virsh define takes seconds instead of milliseconds`,
    `apply what Debian's udev rule does: chgrp kvm ${device} && chmod 0660 ${device}, and make sure ${account.user} is in group kvm`,
  );
}
