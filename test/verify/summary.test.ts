/** show's summary and chain resolution, on real signed backups in a LocalStore. */
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { registerShow } from '../../src/cli/commands/show.js';
import { validateConfig } from '../../src/config/load.js';
import { VerificationError } from '../../src/errors.js';
import { manifestKey } from '../../src/manifest/layout.js';
import { LocalStore } from '../../src/repository/local.js';
import { openRepository } from '../../src/repository/repository.js';
import { loadTrustedSigners } from '../../src/restore/manifest-check.js';
import { summarizeBackup, type BackupSummary } from '../../src/verify/summary.js';
import { runSubcommand } from '../prune/run-command.js';
import { createSyntheticKeys, writeSyntheticBackup, type SyntheticBackup, type SyntheticKeys } from './synthetic-backup.js';

let keys: SyntheticKeys;
let dir: string;
let store: LocalStore;
let full: SyntheticBackup;
let last: SyntheticBackup;

const host = 'hv1';
const ids = { full: '20251201T020000Z-aaaaaa', first: '20251202T020000Z-bbbbbb', second: '20251203T020000Z-cccccc' };

beforeAll(async () => {
  keys = await createSyntheticKeys();
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hvbackup-show-'));
  await mkdir(join(dir, 'repo'), { recursive: true });
  const config = validateConfig({ repository: { type: 'local', path: join(dir, 'repo') } }, join(dir, 'config.json'));
  store = (await openRepository(config, { create: true })).store as LocalStore;
  full = await writeSyntheticBackup(store, { host, domain: 'web', backupId: ids.full, keys });
  await writeSyntheticBackup(store, { host, domain: 'web', backupId: ids.first, keys, type: 'incremental', parent: ids.full });
  last = await writeSyntheticBackup(store, { host, domain: 'web', backupId: ids.second, keys, type: 'incremental', parent: ids.first });
  return () => rm(dir, { recursive: true, force: true });
});

describe('summarizeBackup', () => {
  it('summarizeBackup resolves chain', async () => {
    const trustedKeys = await loadTrustedSigners(store, [keys.host.fingerprint]);
    const summary = await summarizeBackup(store, last.ref, { trustedKeys, now: new Date('2025-12-04T02:00:00Z') });

    expect(summary.chain).toEqual([
      { backupId: ids.second, type: 'incremental' },
      { backupId: ids.first, type: 'incremental' },
      { backupId: ids.full, type: 'full' },
    ]);
    expect(summary.chainComplete).toBe(true);
    expect(summary.ageSeconds).toBe(86_400);
    expect(summary.segments).toBe(last.manifest.segments.length);
    expect(summary.storedBytes).toBe(last.manifest.segments.reduce((sum, segment) => sum + segment.size, 0));
    expect(summary.signer).toBe(keys.host.fingerprint);
    expect(summary.signatureChecked).toBe(true);
    expect(summary.excludedDisks).toEqual([]);
    expect(summary.snapshotAt).toBe(last.manifest.snapshotAt);
  });

  it('summarizeBackup missing parent', async () => {
    await unlink(join(store.root, manifestKey(full.ref)));

    const summary = await summarizeBackup(store, last.ref, { now: new Date() });

    expect(summary.chain.map((link) => link.type)).toEqual(['incremental', 'incremental', 'missing']);
    expect(summary.chainComplete).toBe(false);
    expect(summary.signatureChecked).toBe(false);
  });

  it('summarizeBackup tampered parent fails', async () => {
    const trustedKeys = await loadTrustedSigners(store, [keys.host.fingerprint]);
    const path = join(store.root, manifestKey(full.ref));
    await writeFile(path, `${JSON.stringify({ ...full.manifest, archiveBytes: full.manifest.archiveBytes }, null, 1)}\n`);

    await expect(summarizeBackup(store, last.ref, { trustedKeys, now: new Date() })).rejects.toBeInstanceOf(VerificationError);
  });
});

describe('show command', () => {
  it('show json by domain name', async () => {
    const config = join(dir, 'config.json');
    await writeFile(config, JSON.stringify({ repository: { type: 'local', path: join(dir, 'repo') }, trustedSigners: [keys.host.fingerprint] }));

    const run = await runSubcommand(registerShow, ['--config', config, 'show', 'web', '--json']);

    expect(run.exitCode).toBe(0);
    const printed = JSON.parse(run.stdout) as BackupSummary;
    expect(printed.backupId).toBe(ids.second);
    expect(printed.chain.length).toBe(3);
  });

  it('show text names chain', async () => {
    const config = join(dir, 'config.json');
    await writeFile(config, JSON.stringify({ repository: { type: 'local', path: join(dir, 'repo') }, trustedSigners: [keys.host.fingerprint] }));

    const run = await runSubcommand(registerShow, ['--config', config, 'show', ids.first]);

    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain(`chain       ${ids.first} (incremental) <- ${ids.full} (full)`);
    expect(run.stdout).toContain('(signature verified)');
    expect(run.stdout).toMatch(/^snapshot {4}\d{4}-\d{2}-\d{2}T.+ \(the state a restore returns to\)$/m);
  });
});
