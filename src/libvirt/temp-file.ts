import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { isProcessRunning } from '../util/process.js';

/** Directory names are this prefix, the owner's PID, '-' and mkdtemp's random suffix. */
const DIRECTORY_PREFIX = 'hvbackup-virsh-';
const DIRECTORY_NAME = new RegExp(`^${DIRECTORY_PREFIX}(\\d+)-`);

/** The one scan for orphaned directories in this process; later calls wait for it. */
let orphansRemoved: Promise<void> | undefined;

/**
 * Writes `content` to a new file readable only by this user (0600) in a fresh
 * private directory, runs `use` with its path, and removes both afterwards,
 * also when `use` throws. virsh reads the file itself and sends the content to
 * libvirtd, so QEMU never needs access to it.
 *
 * A process killed meanwhile cannot remove its directory, so the first call
 * of each process removes the directories of owners that no longer run.
 */
export async function withTempFile<T>(fileName: string, content: string, use: (path: string) => Promise<T>): Promise<T> {
  orphansRemoved ??= removeOrphanedDirectories(tmpdir());
  await orphansRemoved;
  const dir = await mkdtemp(join(tmpdir(), `${DIRECTORY_PREFIX}${process.pid}-`));
  try {
    const path = join(dir, fileName);
    await writeFile(path, content, { mode: 0o600 });
    return await use(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Removes the temporary directories in `parent` whose owner PID no longer runs; failures leave them for a later call. */
export async function removeOrphanedDirectories(parent: string): Promise<void> {
  const names = await readdir(parent).catch(() => [] as string[]);
  for (const name of names) {
    const match = DIRECTORY_NAME.exec(name);
    if (match === null || isProcessRunning(Number(match[1]))) continue;
    await rm(join(parent, name), { recursive: true, force: true }).catch(() => undefined);
  }
}
