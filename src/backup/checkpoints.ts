/**
 * Checkpoint bookkeeping for incremental chains. A running domain gets a
 * libvirt checkpoint created atomically with its backup job. A shut-off
 * domain gets a persistent dirty bitmap of the same name added to each qcow2
 * image with qemu-img, because libvirt 9 cannot create checkpoints for
 * inactive domains. Either way the name is `hvbackup-<backup id>`, and only a
 * checkpoint named in a committed manifest is ever chained from.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

import { LibvirtError } from '../errors.js';
import { deleteCheckpoint, listCheckpoints } from '../libvirt/checkpoints.js';
import type { Virsh } from '../libvirt/virsh.js';
import type { Logger } from '../log/logger.js';

const execFileAsync = promisify(execFile);

export const CHECKPOINT_PREFIX = 'hvbackup-';

export function checkpointName(backupId: string): string {
  return `${CHECKPOINT_PREFIX}${backupId}`;
}

/** Names of the persistent bitmaps in a qcow2 image. */
export async function imageBitmaps(path: string): Promise<string[]> {
  try {
    const { stdout } = await execFileAsync('qemu-img', ['info', '--force-share', '--output=json', path]);
    const info = JSON.parse(stdout) as { 'format-specific'?: { data?: { bitmaps?: { name: string }[] } } };
    return (info['format-specific']?.data?.bitmaps ?? []).map((bitmap) => bitmap.name);
  } catch (error) {
    throw new LibvirtError(`qemu-img info of ${path} failed: ${(error as { stderr?: string }).stderr ?? (error as Error).message}`, { cause: error });
  }
}

/** Adds an enabled persistent bitmap to a qcow2 image of a shut-off domain. */
export async function addImageBitmap(path: string, name: string): Promise<void> {
  try {
    await execFileAsync('qemu-img', ['bitmap', '--add', '--enable', path, name]);
  } catch (error) {
    throw new LibvirtError(`cannot add dirty bitmap ${name} to ${path}: ${(error as { stderr?: string }).stderr ?? (error as Error).message}`, {
      hint: 'the image must be a qcow2 v3 file that no running QEMU holds open',
      cause: error,
    });
  }
}

export async function removeImageBitmap(path: string, name: string): Promise<void> {
  await execFileAsync('qemu-img', ['bitmap', '--remove', path, name]);
}

/**
 * Removes hvbackup checkpoints other than `keep`: the one the next
 * incremental chains from. Failures are logged, not raised: a leftover
 * checkpoint wastes bitmap space but cannot corrupt a chain, because chains
 * start only from checkpoints named in committed manifests.
 */
export async function pruneCheckpoints(
  virsh: Virsh,
  domain: string,
  options: { keep: string | undefined; running: boolean; qcow2Paths: string[]; logger: Logger },
): Promise<void> {
  const libvirtNames = (await listCheckpoints(virsh, domain)).map((checkpoint) => checkpoint.name);
  const stillInLibvirt: string[] = [];
  for (const name of libvirtNames) {
    if (!name.startsWith(CHECKPOINT_PREFIX) || name === options.keep) {
      stillInLibvirt.push(name);
      continue;
    }
    try {
      // libvirt 9 deletes checkpoints of an inactive domain only as metadata;
      // the bitmaps then go with the offline ones below.
      await deleteCheckpoint(virsh, domain, name, { metadataOnly: !options.running });
      options.logger.debug({ checkpoint: name }, 'old checkpoint deleted');
    } catch (error) {
      stillInLibvirt.push(name);
      options.logger.warn({ checkpoint: name, err: error }, `cannot delete old checkpoint ${name}`);
    }
  }

  // Bitmaps added offline are unknown to libvirt, and they can be removed only while no QEMU has the image open.
  if (options.running) return;
  for (const path of options.qcow2Paths) {
    let names: string[];
    try {
      names = await imageBitmaps(path);
    } catch (error) {
      options.logger.warn({ image: path, err: error }, `listing the dirty bitmaps of ${path} failed, so its old hvbackup bitmaps stay until a later backup removes them`);
      continue;
    }
    for (const name of names) {
      if (!name.startsWith(CHECKPOINT_PREFIX) || name === options.keep || stillInLibvirt.includes(name)) continue;
      try {
        await removeImageBitmap(path, name);
        options.logger.debug({ bitmap: name, image: path }, 'old dirty bitmap removed');
      } catch (error) {
        options.logger.warn({ bitmap: name, image: path, err: error }, `cannot remove old dirty bitmap ${name}`);
      }
    }
  }
}
