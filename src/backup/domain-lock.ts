/**
 * One backup or restore promotion per domain at a time, across processes: a
 * lock file per domain under stateDir/locks, created exclusively and holding
 * the owner's PID. A lock whose PID no longer runs is stale, because its
 * process was killed, and is taken over. A live one makes the second run
 * refuse with the owner's PID.
 */
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { RefusedError } from '../errors.js';
import { isProcessRunning } from '../util/process.js';
import { sharedStateDirectory } from '../util/state-dir.js';

export interface DomainLock {
  readonly path: string;
  /** True when a stale lock of a killed run was taken over. */
  readonly recoveredStale: boolean;
  release(): Promise<void>;
}

export async function lockDomain(stateDir: string, domain: string): Promise<DomainLock> {
  const dir = await sharedStateDirectory(stateDir, 'locks');
  const path = join(dir, `${domain}.lock`);

  let recoveredStale = false;
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const file = await open(path, 'wx', 0o640);
      await file.write(`${process.pid}\n`);
      await file.close();
      return {
        path,
        recoveredStale,
        release: async () => {
          // Remove only our own lock: a later run may have taken over a lock we lost.
          const owner = await readOwner(path);
          if (owner === process.pid) await rm(path, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }

    const owner = await readOwner(path);
    if (owner !== undefined && owner !== process.pid && isProcessRunning(owner)) {
      throw new RefusedError(`domain ${domain} is locked by process ${owner}, which is backing it up or restoring it (lock ${path})`, {
        hint: `wait for that run to finish; if process ${owner} is not hvbackup, remove ${path}`,
      });
    }
    await rm(path, { force: true });
    recoveredStale = true;
  }
  throw new RefusedError(`cannot take the lock ${path} for domain ${domain}: another run took it at the same moment`, {
    hint: 'run the command again',
  });
}

async function readOwner(path: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt(await readFile(path, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
