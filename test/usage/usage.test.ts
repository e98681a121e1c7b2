/** Usage and quota against a LocalStore repository in a temporary directory. */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { beforeEach, describe, expect, it } from 'vitest';

import { registerUsage } from '../../src/cli/commands/usage.js';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { LocalStore } from '../../src/repository/local.js';
import { openRepository } from '../../src/repository/repository.js';
import { checkQuota, quotaBytes, quotaLevel, quotaMessage } from '../../src/usage/quota.js';
import { summarizeUsage } from '../../src/usage/usage.js';
import { allKeys, writeFixtureBackup } from '../prune/fixture.js';
import { runSubcommand } from '../prune/run-command.js';

let dir: string;
let store: LocalStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hvbackup-usage-'));
  await mkdir(join(dir, 'repo'), { recursive: true });
  const config = validateConfig({ repository: { type: 'local', path: join(dir, 'repo') } }, join(dir, 'config.json'));
  store = (await openRepository(config, { create: true })).store as LocalStore;
  return () => rm(dir, { recursive: true, force: true });
});

async function bytesUnder(prefix: string): Promise<number> {
  let total = 0;
  for await (const object of store.list(prefix)) total += object.size;
  return total;
}

describe('summarizeUsage', () => {
  it('summarizeUsage per domain and total', async () => {
    await writeFixtureBackup(store, { host: 'hv1', domain: 'web', backupId: '20251201T020000Z-aaaaaa', segments: 3, segmentBytes: 1000 });
    await writeFixtureBackup(store, { host: 'hv1', domain: 'web', backupId: '20251202T020000Z-aaaaaa', segments: 1, segmentBytes: 500 });
    await writeFixtureBackup(store, { host: 'hv1', domain: 'web', backupId: '20251203T020000Z-aaaaaa', unfinished: true });
    await writeFixtureBackup(store, { host: 'hv2', domain: 'db', backupId: '20251201T020000Z-aaaaaa', segments: 2, segmentBytes: 2000 });

    const usage = await summarizeUsage(store);

    expect(usage.domains.map((domain) => [domain.host, domain.domain, domain.backups, domain.unfinished])).toEqual([
      ['hv1', 'web', 2, 1],
      ['hv2', 'db', 1, 0],
    ]);
    expect(usage.domains[0].bytes).toBe(await bytesUnder('hosts/hv1/domains/web/'));
    expect(usage.domains[1].bytes).toBe(await bytesUnder('hosts/hv2/domains/db/'));
    expect(usage.bytes).toBe(await bytesUnder('hosts/'));
    expect(usage.backups).toBe(3);
    expect(usage.unfinished).toBe(1);
  });

  it('summarizeUsage empty repository', async () => {
    const usage = await summarizeUsage(store);
    expect(usage).toEqual({ domains: [], backups: 0, unfinished: 0, bytes: 0 });
  });
});

describe('checkQuota', () => {
  it('quotaLevel thresholds', () => {
    expect(quotaLevel(0)).toBe('ok');
    expect(quotaLevel(0.7999)).toBe('ok');
    expect(quotaLevel(0.8)).toBe('warn');
    expect(quotaLevel(0.9499)).toBe('warn');
    expect(quotaLevel(0.95)).toBe('refuse');
    expect(quotaLevel(1.2)).toBe('refuse');
  });

  it('checkQuota measures whole store', async () => {
    await writeFixtureBackup(store, { host: 'hv1', domain: 'web', backupId: '20251201T020000Z-aaaaaa', segments: 4, segmentBytes: 1000 });
    const used = await bytesUnder('');

    const check = await checkQuota(store, used * 2);

    expect(check.usedBytes).toBe(used);
    expect(check.fraction).toBe(0.5);
    expect(check.level).toBe('ok');
  });

  it('checkQuota warn and refuse', async () => {
    await writeFixtureBackup(store, { host: 'hv1', domain: 'web', backupId: '20251201T020000Z-aaaaaa', segments: 4, segmentBytes: 1000 });
    const used = await bytesUnder('');

    expect((await checkQuota(store, Math.floor(used / 0.85))).level).toBe('warn');
    expect((await checkQuota(store, used)).level).toBe('refuse');
  });

  it('checkQuota invalid quota rejected', async () => {
    await expect(checkQuota(store, 0)).rejects.toThrow(ConfigError);
  });

  it('quotaBytes parses size strings', () => {
    const base = { repository: { type: 'local', path: dir } };
    expect(quotaBytes(validateConfig({ ...base, quota: '500GiB' }, join(dir, 'c.json')))).toBe(500 * 1024 ** 3);
    expect(quotaBytes(validateConfig({ ...base, quota: 4096 }, join(dir, 'c.json')))).toBe(4096);
    expect(quotaBytes(validateConfig(base, join(dir, 'c.json')))).toBeUndefined();
    expect(() => quotaBytes(validateConfig({ ...base, quota: 'lots' }, join(dir, 'c.json')))).toThrow(ConfigError);
  });

  it('quotaMessage names level and fix', () => {
    const refuse = quotaMessage({ usedBytes: 96 * 1024 ** 3, quotaBytes: 100 * 1024 ** 3, fraction: 0.96, level: 'refuse' }, 'local directory /r');
    expect(refuse).toContain('96.0 GiB of the 100.0 GiB quota (96.0%)');
    expect(refuse).toContain('95% limit');
    expect(refuse).toContain('hvbackup prune');

    const warn = quotaMessage({ usedBytes: 85, quotaBytes: 100, fraction: 0.85, level: 'warn' }, 'local directory /r');
    expect(warn).toContain('80% warning level');
  });
});

describe('usage command', () => {
  it('usage json with quota', async () => {
    await writeFixtureBackup(store, { host: 'hv1', domain: 'web', backupId: '20251201T020000Z-aaaaaa' });
    const config = join(dir, 'config.json');
    await writeFile(config, JSON.stringify({ repository: { type: 'local', path: join(dir, 'repo') }, quota: '1MiB' }));

    const run = await runSubcommand(registerUsage, ['--config', config, 'usage', '--json']);

    expect(run.exitCode).toBe(0);
    const printed = JSON.parse(run.stdout) as { backups: number; bytes: number; quota: { quotaBytes: number; level: string } };
    expect(printed.backups).toBe(1);
    expect(printed.bytes).toBe(await bytesUnder('hosts/'));
    expect(printed.quota.quotaBytes).toBe(1024 * 1024);
    expect(printed.quota.level).toBe('ok');
    expect((await allKeys(store)).length).toBe(4);
  });
});
