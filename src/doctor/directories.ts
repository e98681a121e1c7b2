/**
 * Directory checks. Scratch, staging and state must be writable by this user
 * or creatable. QEMU must be able to enter the scratch directory, because it
 * creates the NBD socket there, and the socket paths must fit the unix socket
 * limit. Staging needs free space.
 */
import { constants } from 'node:fs';
import { access, stat, statfs } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';

import type { Config } from '../config/load.js';
import { newBackupId } from '../manifest/layout.js';
import { formatByteSize } from '../segment/size.js';
import { fail, ok, runCheck, warn, type CheckResult } from './check.js';
import { execProgram } from './exec.js';
import { pathAncestors, searchableBy } from './modes.js';
import { qemuAccount, resolveAccount, type QemuAccount } from './qemu-user.js';

/** Maximum unix socket path length on Linux in bytes, because sun_path is 108 bytes including the final NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;
/** Maximum disk target length assumed for the socket path check (`<target>.sock`). Real targets such as vda or sdaa are far shorter. */
const ASSUMED_MAX_TARGET_LENGTH = 16;
/** Free space in staging, in bytes, below which doctor warns. */
export const MIN_STAGING_FREE_BYTES = 1024 ** 3;

export async function checkDirectories(config: Config): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  results.push(...(await runCheck('dirs.scratch', () => checkWritableDirectory('dirs.scratch', config.scratchDir, 'scratchDir'))));
  results.push(...(await runCheck('dirs.scratch-qemu', () => checkQemuCanEnter('dirs.scratch-qemu', config.scratchDir))));
  results.push(checkSocketPathLength(config.scratchDir));
  results.push(...(await runCheck('dirs.staging', () => checkWritableDirectory('dirs.staging', config.stagingDir, 'stagingDir'))));
  results.push(...(await runCheck('dirs.staging-space', () => checkFreeSpace('dirs.staging-space', config.stagingDir))));
  results.push(...(await runCheck('dirs.state', () => checkWritableDirectory('dirs.state', config.stateDir, 'stateDir'))));
  return results;
}

/** Returns the path itself when it exists, else its nearest existing ancestor. */
export async function nearestExisting(path: string): Promise<string> {
  let current = path;
  for (;;) {
    try {
      await stat(current);
      return current;
    } catch {
      const parent = dirname(current);
      if (parent === current) return current;
      current = parent;
    }
  }
}

/** Checks that the directory is writable by this user, or that this user can create it. */
export async function checkWritableDirectory(name: string, path: string, key: string): Promise<CheckResult> {
  const user = userInfo().username;
  const existing = await nearestExisting(path);
  const info = await stat(existing);

  if (existing === path && !info.isDirectory()) {
    return fail(name, `${key} ${path} exists but is not a directory`, `remove it or set "${key}" to a directory`);
  }
  try {
    await access(existing, constants.W_OK | constants.X_OK);
  } catch {
    if (existing === path) {
      return fail(name, `${key} ${path} is not writable by user ${user}`, `chown ${user} ${path} && chmod u+rwx ${path}`);
    }
    return fail(name, `${key} ${path} does not exist and user ${user} cannot create it in ${existing}`, `mkdir -p ${path} && chown ${user} ${path}`);
  }
  if (existing !== path) return ok(name, `${key} ${path} does not exist yet; user ${user} can create it in ${existing}`);
  return ok(name, `${key} ${path} is writable by user ${user}`);
}

/**
 * Checks that QEMU's user can enter the scratch directory and every parent,
 * because QEMU creates the NBD socket and scratch files below it. As root the
 * check runs `test -x` as that user, which honours ACLs. Otherwise it reads
 * the modes and ignores ACLs.
 */
export async function checkQemuCanEnter(name: string, scratchDir: string): Promise<CheckResult> {
  const account = await qemuAccount();
  if (account.user === 'root' || account.user === '+0') return ok(name, `QEMU runs as root (${account.source})`);

  const existing = await nearestExisting(scratchDir);
  const ancestors = pathAncestors(existing);
  const isRoot = (process.getuid?.() ?? userInfo().uid) === 0;

  const resolved = await resolveAccount(account);
  if (resolved === undefined) {
    return warn(name, `QEMU user ${account.user} (${account.source}) not found in /etc/passwd`, `set "user" in /etc/libvirt/qemu.conf to the account libvirt runs QEMU as`);
  }

  let blocked: string | undefined;
  let method: string;
  if (isRoot && !account.user.startsWith('+')) {
    method = `tested with runuser -u ${account.user}`;
    blocked = await firstBlockedByTest(account.user, ancestors);
    if (blocked === 'runuser-missing') return warn(name, 'runuser not found, cannot test access as the QEMU user', 'install util-linux');
  } else {
    method = 'judged from the modes, ACLs not read';
    blocked = await firstBlockedByMode(ancestors, resolved);
  }

  const qemuLabel = `QEMU user ${account.user} (group ${account.group}, ${account.source})`;
  if (blocked !== undefined) {
    return fail(
      name,
      `${qemuLabel} cannot enter ${blocked}, so it cannot create the NBD socket under ${scratchDir} (${method})`,
      fixForBlocked(blocked, account),
    );
  }
  return ok(name, `${qemuLabel} can enter ${existing} and every parent (${method})`);
}

function fixForBlocked(directory: string, account: QemuAccount): string {
  return `chmod o+x ${directory}, or setfacl -m u:${account.user}:x ${directory}, or move "scratchDir" to a directory QEMU can reach such as /var/lib/hvbackup/scratch`;
}

async function firstBlockedByTest(user: string, ancestors: string[]): Promise<string | undefined> {
  for (const directory of ancestors) {
    const result = await execProgram('runuser', ['-u', user, '--', 'test', '-x', directory]);
    if (result.missing) return 'runuser-missing';
    if (result.code !== 0) return directory;
  }
  return undefined;
}

async function firstBlockedByMode(ancestors: string[], account: { uid: number; groups: number[] }): Promise<string | undefined> {
  for (const directory of ancestors) {
    const info = await stat(directory);
    if (!searchableBy({ mode: info.mode, uid: info.uid, gid: info.gid }, account)) return directory;
  }
  return undefined;
}

/** Checks that the longest NBD socket path a backup creates under scratchDir fits in a unix socket address. */
export function checkSocketPathLength(scratchDir: string): CheckResult {
  const name = 'dirs.socket-path';
  const longest = join(scratchDir, newBackupId(), `${'x'.repeat(ASSUMED_MAX_TARGET_LENGTH)}.sock`);
  const bytes = Buffer.byteLength(longest);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    return fail(name, `socket paths under scratchDir ${scratchDir} reach ${bytes} bytes, more than the ${MAX_SOCKET_PATH_BYTES} a unix socket path may have`, 'set "scratchDir" to a shorter path such as /var/lib/hvbackup/scratch');
  }
  return ok(name, `longest socket path ${bytes} of ${MAX_SOCKET_PATH_BYTES} bytes`);
}

async function checkFreeSpace(name: string, stagingDir: string): Promise<CheckResult> {
  const existing = await nearestExisting(stagingDir);
  const info = await statfs(existing);
  const free = info.bavail * info.bsize;
  if (free < MIN_STAGING_FREE_BYTES) {
    return warn(name, `${formatByteSize(free)} free at ${existing}; restores stage whole disks there`, `free space or set "stagingDir" to a file system with room for the largest disk`);
  }
  return ok(name, `${formatByteSize(free)} free at ${existing}`);
}
