/**
 * Prepares the directories for a pull backup's NBD socket and scratch files.
 * QEMU creates both, and it runs as its own user (libvirt-qemu on Debian), so
 * the directories must let that user in. We give the directory to our user
 * and QEMU's group with mode 0770: QEMU can create files there, and other
 * users cannot read the exported disks through the socket. Every parent
 * directory must still be searchable by QEMU's user or group.
 */
import { chmod, chown, mkdir } from 'node:fs/promises';

import type { Element } from '@xmldom/xmldom';

import { LibvirtError } from '../errors.js';
import { attributeOf, childElements, firstChild, parseXml, textOf } from './xml.js';

/**
 * Returns the group id QEMU runs with, read from the DAC label of a running
 * domain's live XML (`<seclabel model='dac'><label>+UID:+GID</label>`).
 * Undefined when the domain has no DAC label or the label uses names.
 */
export function qemuGroupId(liveXml: string): number | undefined {
  const root = parseXml(liveXml, 'domain XML').documentElement!;
  const dac = childElements(root, 'seclabel').find((element: Element) => attributeOf(element, 'model') === 'dac');
  if (dac === undefined) return undefined;

  const label = textOf(firstChild(dac, 'label'));
  if (label === undefined) return undefined;

  const match = /^\+?(\d+):\+?(\d+)$/.exec(label);
  return match ? Number(match[2]) : undefined;
}

/** Creates the directory if needed and sets owner group and mode so QEMU can create the socket and scratch files in it. */
export async function prepareJobDirectory(path: string, groupId: number | undefined): Promise<void> {
  try {
    await mkdir(path, { recursive: true, mode: 0o770 });

    if (groupId !== undefined && typeof process.getuid === 'function') {
      await chown(path, process.getuid(), groupId);
      await chmod(path, 0o770);
    } else {
      // Without a DAC label QEMU runs as our user or as root, so owner access suffices.
      await chmod(path, 0o700);
    }
  } catch (error) {
    throw new LibvirtError(`preparing backup job directory ${path} failed: ${(error as Error).message}`, {
      hint: 'the directory must be creatable by hvbackup and, for qemu:///system, hvbackup must run as root to hand it to QEMU\'s group',
      cause: error,
    });
  }
}
