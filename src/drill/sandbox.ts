/**
 * The sandbox of one drill: a domain named drill-<domain>-<UTC time> and a
 * directory under drill.sandboxDir that holds its disks and NVRAM. Removal only ever touches a domain whose name starts with the
 * drill prefix and the directory the sandbox created, so a drill cannot
 * remove the domain it restored from.
 */
import { chmod, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { LibvirtError, UsageError } from '../errors.js';
import type { Domains } from '../libvirt/domain.js';

/** Prefix of every sandbox domain; the polkit rules of the drill user grant domain actions only under it. */
export const SANDBOX_PREFIX = 'drill-';

export interface Sandbox {
  /** Name of the sandbox domain. */
  name: string;
  /** Directory of this drill; removing it removes everything the drill wrote. */
  directory: string;
  /** Where restore puts the disks and NVRAM of the sandbox domain. */
  storageDir: string;
  /**
   * Parent of the restore's staging directory: drill.sandboxDir itself, on
   * the same file system as storageDir so promotion is a rename. restore
   * creates and removes its own subdirectory there.
   */
  stagingDir: string;
}

/** Returns drill-<domain>-<YYYYMMDDTHHMMSS> with the time in UTC. */
export function sandboxName(domain: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').slice(0, 15);
  return `${SANDBOX_PREFIX}${domain}-${stamp}`;
}

/**
 * Creates the directory of a new sandbox. It fails when the directory exists,
 * because that means another drill of the same domain started in the same
 * second or an earlier one was kept.
 */
export async function createSandbox(sandboxDir: string, domain: string, at: Date): Promise<Sandbox> {
  const name = sandboxName(domain, at);
  const directory = join(sandboxDir, name);
  // NOTE: restore puts the NBD socket of each disk inside its staging
  // directory, whose name repeats the sandbox name. A UNIX socket path must
  // stay below 108 bytes, so the staging parent is the short sandboxDir and
  // not a directory of this sandbox. Long domain names can still exceed it.
  const sandbox = { name, directory, storageDir: join(directory, 'disks'), stagingDir: sandboxDir };

  await mkdir(sandboxDir, { recursive: true });
  try {
    await mkdir(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UsageError(`sandbox directory ${directory} already exists`, {
        hint: `another drill of ${domain} is running, or an earlier one was kept; remove it with: ${removalCommands(sandbox).join(' && ')}`,
        cause: error,
      });
    }
    throw error;
  }

  // libvirt relabels the disk files for QEMU but not the directories above
  // them, so the QEMU user needs search permission on both levels.
  await mkdir(sandbox.storageDir);
  await chmod(directory, 0o711);
  await chmod(sandbox.storageDir, 0o711);
  return sandbox;
}

/**
 * Stops and undefines the sandbox domain (with its NVRAM) and deletes its
 * directory. Every step runs even when an earlier one fails; the errors are
 * raised together at the end.
 */
export async function removeSandbox(domains: Domains, sandbox: Sandbox): Promise<void> {
  if (!sandbox.name.startsWith(SANDBOX_PREFIX)) {
    throw new Error(`refusing to remove domain ${sandbox.name}: sandbox names start with ${SANDBOX_PREFIX}`);
  }
  const failures: string[] = [];

  try {
    if (await domains.exists(sandbox.name)) {
      if ((await domains.state(sandbox.name)) !== 'shut off') await domains.destroy(sandbox.name);
      await domains.undefine(sandbox.name, { nvram: true });
    }
  } catch (error) {
    failures.push(`removing domain ${sandbox.name} failed: ${(error as Error).message}`);
  }

  try {
    await rm(sandbox.directory, { recursive: true, force: true });
  } catch (error) {
    failures.push(`deleting ${sandbox.directory} failed: ${(error as Error).message}`);
  }

  if (failures.length > 0) {
    throw new LibvirtError(`sandbox ${sandbox.name} was not removed completely: ${failures.join('; ')}`, {
      hint: `remove it by hand: ${removalCommands(sandbox).join(' && ')}`,
    });
  }
}

/** Shell commands that remove a sandbox by hand, printed for --keep and for a failed removal. */
export function removalCommands(sandbox: Sandbox, uri?: string): string[] {
  const connect = uri ? ` -c ${uri}` : '';
  return [
    `virsh${connect} destroy ${sandbox.name}`,
    `virsh${connect} undefine --nvram ${sandbox.name}`,
    `rm -rf ${sandbox.directory}`,
  ];
}
