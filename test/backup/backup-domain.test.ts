/**
 * Library-level checks of one domain's backup that the command line cannot
 * reach directly: a fixed backup id that already exists is rejected before
 * anything is written, and the per-domain lock stops a second run.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { backupDomain } from '../../src/backup/backup-domain.js';
import { createBackupContext, type BackupContext } from '../../src/backup/context.js';
import { loadConfig } from '../../src/config/load.js';
import { backupIdTime } from '../../src/manifest/layout.js';
import { RefusedError, RepositoryError } from '../../src/errors.js';
import { silentLogger } from '../../src/log/logger.js';
import { available } from '../support/components.js';
import { writeTestConfig } from '../support/config.js';
import { createTestDomain, type TestDomain } from '../support/domains.js';
import { createTestKeys } from '../support/setup-keys.js';

describe.skipIf(!available('libvirt'))('backupDomain', () => {
  let work: string;
  let domain: TestDomain;
  let context: BackupContext;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hvb-backup-domain-'));
    const keys = await createTestKeys(work);
    const configPath = await writeTestConfig(work, { keys, repository: { type: 'local', path: join(work, 'repo') } });
    domain = await createTestDomain({ name: 'hvb-test-backup-domain', kind: 'single', start: true });
    context = await createBackupContext(await loadConfig(configPath), { logger: silentLogger, signal: new AbortController().signal });
  });

  afterAll(async () => {
    await context?.close();
    await domain?.cleanup().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  async function objectKeys(): Promise<string[]> {
    const keys: string[] = [];
    for await (const object of context.store.list('')) keys.push(object.key);
    return keys;
  }

  it('existing backup id rejected untouched', async () => {
    const first = await backupDomain(context, domain.name, { mode: 'full' });
    const before = await objectKeys();

    const again = backupDomain(context, domain.name, { mode: 'full', backupId: first.ref.backupId });
    await expect(again).rejects.toBeInstanceOf(RepositoryError);
    await expect(again).rejects.toThrow(first.ref.backupId);
    expect(await objectKeys()).toEqual(before);
  });

  it('live lock refuses second run', async () => {
    const lockPath = join(context.config.stateDir, 'locks', `${domain.name}.lock`);
    // PID 1 always runs, so this lock looks held by a live process.
    await writeFile(lockPath, '1\n');
    try {
      const attempt = backupDomain(context, domain.name, { mode: 'full' });
      await expect(attempt).rejects.toBeInstanceOf(RefusedError);
      await expect(attempt).rejects.toThrow('process 1');
    } finally {
      await rm(lockPath, { force: true });
    }
  });

  it('consecutive backups get later ids', async () => {
    // Incrementals of this small disk take well under a second, so without care two ids would share a second.
    const ids: string[] = [];
    for (let run = 0; run < 3; run += 1) ids.push((await backupDomain(context, domain.name, { mode: 'auto' })).ref.backupId);

    for (let index = 1; index < ids.length; index += 1) {
      expect(backupIdTime(ids[index]).getTime(), ids.join(' ')).toBeGreaterThan(backupIdTime(ids[index - 1]).getTime());
    }
  });

  it('stale lock taken over', async () => {
    const lockPath = join(context.config.stateDir, 'locks', `${domain.name}.lock`);
    // A PID above the kernel's pid_max cannot be running.
    await writeFile(lockPath, '4194305\n');
    const result = await backupDomain(context, domain.name, { mode: 'auto' });
    expect(result.manifest.type).toBe('incremental');
  });
});
