/**
 * Directories below the state directory that root and the backup user both
 * write in. Restores run as root and backups as the backup user, and either
 * may be the first run on a host.
 */
import { lchown, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Creates `stateDir/name` when it is missing and returns its path. A
 * directory that root creates goes to the state directory's owner, so that
 * the backup user can write in it later. lchown changes a symlink put there
 * meanwhile, never its target.
 */
export async function sharedStateDirectory(stateDir: string, name: string): Promise<string> {
  const dir = join(stateDir, name);
  const stateOwner = await stat(stateDir).catch(() => undefined);
  const created = await mkdir(dir, { recursive: true, mode: 0o750 });
  if (created === dir && stateOwner !== undefined && process.getuid?.() === 0 && stateOwner.uid !== 0) {
    await lchown(dir, stateOwner.uid, stateOwner.gid);
  }
  return dir;
}
