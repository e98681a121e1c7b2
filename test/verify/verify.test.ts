/**
 * verify against real signed and encrypted backups in a LocalStore, built
 * by test/verify/synthetic-backup.ts, then damaged on disk.
 */
import { mkdir, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { registerVerify } from '../../src/cli/commands/verify.js';
import { validateConfig } from '../../src/config/load.js';
import { manifestKey, segmentKey } from '../../src/manifest/layout.js';
import { LocalStore } from '../../src/repository/local.js';
import { openRepository } from '../../src/repository/repository.js';
import { loadTrustedSigners } from '../../src/restore/manifest-check.js';
import { verifyBackup, type VerifyOptions } from '../../src/verify/verify.js';
import { runSubcommand } from '../prune/run-command.js';
import { createSyntheticKeys, writeSyntheticBackup, type SyntheticBackup, type SyntheticKeys } from './synthetic-backup.js';

let keys: SyntheticKeys;
let dir: string;
let store: LocalStore;
let backup: SyntheticBackup;

const host = 'hv1';
const sizesOnly: VerifyOptions = { readData: false, concurrency: 2 };
const withData: VerifyOptions = { readData: true, concurrency: 2 };

beforeAll(async () => {
  keys = await createSyntheticKeys();
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hvbackup-verify-'));
  await mkdir(join(dir, 'repo'), { recursive: true });
  const config = validateConfig({ repository: { type: 'local', path: join(dir, 'repo') } }, join(dir, 'config.json'));
  store = (await openRepository(config, { create: true })).store as LocalStore;
  backup = await writeSyntheticBackup(store, { host, domain: 'web', backupId: '20251201T020000Z-aaaaaa', keys });
  return () => rm(dir, { recursive: true, force: true });
});

async function trusted() {
  return loadTrustedSigners(store, [keys.host.fingerprint]);
}

function pathOf(key: string): string {
  return join(store.root, key);
}

async function flipByte(key: string, offset: number): Promise<void> {
  const bytes = await readFile(pathOf(key));
  bytes[offset] ^= 0x01;
  await writeFile(pathOf(key), bytes);
}

describe('verifyBackup', () => {
  it('verifyBackup intact backup passes', async () => {
    const result = await verifyBackup(store, backup.ref, await trusted(), withData);

    expect(result.failures).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.segments).toBeGreaterThan(2);
    expect(result.signer).toBe(keys.host.fingerprint);
  });

  it('verifyBackup missing segment named', async () => {
    const key = segmentKey(backup.ref, '000001.pgp');
    await unlink(pathOf(key));

    const result = await verifyBackup(store, backup.ref, await trusted(), sizesOnly);

    expect(result.ok).toBe(false);
    expect(result.failures).toEqual([{ check: 'segment-present', object: key, message: 'the segment listed in the manifest is missing' }]);
  });

  it('verifyBackup flipped byte needs read-data', async () => {
    const key = segmentKey(backup.ref, '000000.pgp');
    await flipByte(key, 100);

    const sizes = await verifyBackup(store, backup.ref, await trusted(), sizesOnly);
    expect(sizes.ok).toBe(true);

    const data = await verifyBackup(store, backup.ref, await trusted(), withData);
    expect(data.ok).toBe(false);
    expect(data.failures.map((failure) => [failure.check, failure.object])).toEqual([['segment-hash', key]]);
  });

  it('verifyBackup truncated segment size', async () => {
    const key = segmentKey(backup.ref, '000002.pgp');
    const bytes = await readFile(pathOf(key));
    await writeFile(pathOf(key), bytes.subarray(0, bytes.length - 1));

    const result = await verifyBackup(store, backup.ref, await trusted(), sizesOnly);

    expect(result.failures.map((failure) => [failure.check, failure.object])).toEqual([['segment-size', key]]);
  });

  it('verifyBackup flipped manifest byte', async () => {
    const key = manifestKey(backup.ref);
    const text = (await readFile(pathOf(key), 'utf8')).replace('"full"', '"fulL"');
    await writeFile(pathOf(key), text);

    const result = await verifyBackup(store, backup.ref, await trusted(), sizesOnly);

    expect(result.ok).toBe(false);
    expect(result.failures.map((failure) => [failure.check, failure.object])).toEqual([['manifest-signature', key]]);
  });

  it('verifyBackup untrusted signer fails', async () => {
    const stranger = await createSyntheticKeys();
    const other = await writeSyntheticBackup(store, { host, domain: 'db', backupId: '20251201T030000Z-bbbbbb', keys: stranger });

    const result = await verifyBackup(store, other.ref, await trusted(), sizesOnly);

    expect(result.ok).toBe(false);
    expect(result.failures[0].check).toBe('manifest-signature');
  });

  it('verifyBackup missing parent fails', async () => {
    const child = await writeSyntheticBackup(store, {
      host, domain: 'web', backupId: '20251202T020000Z-cccccc', keys, type: 'incremental', parent: '20251130T020000Z-dddddd',
    });

    const result = await verifyBackup(store, child.ref, await trusted(), { ...sizesOnly, committedIds: new Set(['20251201T020000Z-aaaaaa', '20251202T020000Z-cccccc']) });

    expect(result.failures.map((failure) => failure.check)).toEqual(['parent-present']);
    expect(result.failures[0].object).toBe(manifestKey({ host, domain: 'web', backupId: '20251130T020000Z-dddddd' }));
  });
});

describe('verify command', () => {
  async function writeConfig(): Promise<string> {
    const path = join(dir, 'config.json');
    await writeFile(path, JSON.stringify({ repository: { type: 'local', path: join(dir, 'repo') }, trustedSigners: [keys.host.fingerprint] }));
    return path;
  }

  it('verify all passes exit 0', async () => {
    const run = await runSubcommand(registerVerify, ['--config', await writeConfig(), 'verify', '--all', '--read-data']);

    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain(`OK      ${host}/web/20251201T020000Z-aaaaaa`);
  });

  it('verify failure exits 4', async () => {
    const key = segmentKey(backup.ref, '000000.pgp');
    await flipByte(key, 50);

    const run = await runSubcommand(registerVerify, ['--config', await writeConfig(), 'verify', '20251201T020000Z-aaaaaa', '--read-data', '--json']);

    expect(run.exitCode).toBe(4);
    const printed = JSON.parse(run.stdout) as { backupId: string; failures: { check: string; object: string }[] }[];
    expect(printed[0].backupId).toBe('20251201T020000Z-aaaaaa');
    expect(printed[0].failures[0]).toMatchObject({ check: 'segment-hash', object: key });
  });

  it('verify without selection fails', async () => {
    const run = await runSubcommand(registerVerify, ['--config', await writeConfig(), 'verify']);
    expect(run.exitCode).toBe(2);
  });
});
