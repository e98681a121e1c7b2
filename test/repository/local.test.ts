import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { AlreadyExistsError, RepositoryError } from '../../src/errors.js';
import { LocalStore } from '../../src/repository/local.js';
import { collect, runStoreContract } from './store-contract.js';

const base = mkdtempSync(join(tmpdir(), 'hvb-local-store-'));
let counter = 0;

/** Creates an empty store root below the per-file temp directory. */
async function freshRoot(): Promise<string> {
  counter += 1;
  const root = join(base, `store-${counter}`);
  await mkdir(root);
  return root;
}

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

runStoreContract('local', async () => new LocalStore(await freshRoot()));

describe('LocalStore', () => {
  it('put sets file and directory modes', async () => {
    const root = await freshRoot();
    const store = new LocalStore(root);
    await store.put('dir/sub/file', Buffer.from('x'));

    const fileMode = (await stat(join(root, 'dir/sub/file'))).mode & 0o777;
    const directoryMode = (await stat(join(root, 'dir/sub'))).mode & 0o777;
    // The process umask can only remove permission bits, never add them.
    expect(fileMode & ~0o640).toBe(0);
    expect(directoryMode & ~0o750).toBe(0);
    expect(fileMode & 0o600).toBe(0o600);
  });

  it('failed put leaves no temp file', async () => {
    const root = await freshRoot();
    const store = new LocalStore(root);
    await store.put('one/object', Buffer.from('first'), { ifNoneMatch: true });

    const failure = await store.put('one/object', Buffer.from('second'), { ifNoneMatch: true }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(AlreadyExistsError);
    expect(await readdir(join(root, 'one'))).toEqual(['object']);
  });

  it('list skips temp files', async () => {
    const root = await freshRoot();
    const store = new LocalStore(root);
    await store.put('data/kept', Buffer.from('x'));
    await writeFile(join(root, 'data', '.hvbackup-tmp-kept-0123'), 'partial');

    const listed = (await collect(store.list(''))).map((info) => info.key);
    expect(listed).toEqual(['data/kept']);
  });

  it('put rejects reserved temp name', async () => {
    const store = new LocalStore(await freshRoot());

    const failure = await store.put('a/.hvbackup-tmp-x', Buffer.from('x')).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(RepositoryError);
    expect((failure as Error).message).toContain('.hvbackup-tmp-');
  });

  it('missing root directory', async () => {
    const root = join(base, 'does-not-exist');
    const store = new LocalStore(root);

    const failures = await Promise.all([
      store.put('a', Buffer.from('x')).catch((error: unknown) => error),
      store.get('a').catch((error: unknown) => error),
      collect(store.list('')).catch((error: unknown) => error),
    ]);
    for (const failure of failures) {
      expect(failure).toBeInstanceOf(RepositoryError);
      expect((failure as Error).message).toContain(root);
    }
  });

  it('put rejects retention', async () => {
    const store = new LocalStore(await freshRoot());

    const retention = { mode: 'GOVERNANCE' as const, until: new Date(Date.now() + 60_000) };
    const failure = await store.put('locked', Buffer.from('x'), { retention }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(RepositoryError);
    expect(await store.head('locked')).toBeUndefined();
  });

  it('key below a file', async () => {
    const store = new LocalStore(await freshRoot());
    await store.put('file', Buffer.from('x'));

    const failure = await store.put('file/child', Buffer.from('y')).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(RepositoryError);
    expect((failure as Error).message).toContain('file/child');
  });

  it('delete of read-only directory', async () => {
    const root = await freshRoot();
    const store = new LocalStore(root);
    await store.put('ro/file', Buffer.from('x'));
    await import('node:fs/promises').then((fs) => fs.chmod(join(root, 'ro'), 0o500));

    try {
      const result = await store.delete(['ro/file']);
      // root ignores directory permissions, so only an unprivileged run gets the failure.
      if (process.getuid?.() === 0) {
        expect(result.deleted).toEqual(['ro/file']);
      } else {
        expect(result.failed.map((failure) => failure.key)).toEqual(['ro/file']);
      }
    } finally {
      await import('node:fs/promises').then((fs) => fs.chmod(join(root, 'ro'), 0o750));
    }
  });
});
