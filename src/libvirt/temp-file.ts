import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Writes `content` to a new file readable only by this user (0600) in a fresh
 * private directory, runs `use` with its path, and removes both afterwards,
 * also when `use` throws. virsh reads the file itself and sends the content to
 * libvirtd, so QEMU never needs access to it.
 */
export async function withTempFile<T>(fileName: string, content: string, use: (path: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'hvbackup-virsh-'));
  try {
    const path = join(dir, fileName);
    await writeFile(path, content, { mode: 0o600 });
    return await use(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
