/** Prune against a LocalStore repository in a temporary directory. */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { registerPrune } from '../../src/cli/commands/prune.js';
import { validateConfig } from '../../src/config/load.js';
import { manifestKey, signatureKey } from '../../src/manifest/layout.js';
import { planPrune, type PlanOptions } from '../../src/prune/plan.js';
import { executePrune } from '../../src/prune/prune.js';
import { LocalStore } from '../../src/repository/local.js';
import { openRepository } from '../../src/repository/repository.js';
import type { ObjectStore } from '../../src/repository/store.js';
import { allKeys, writeFixtureBackup } from './fixture.js';
import { runSubcommand } from './run-command.js';

const HOUR_MS = 60 * 60 * 1000;
const host = 'hv1';
const web = (backupId: string) => ({ host, domain: 'web', backupId });

let dir: string;
let store: LocalStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hvbackup-prune-'));
  await mkdir(join(dir, 'repo'));
  const config = validateConfig({ repository: { type: 'local', path: join(dir, 'repo') } }, join(dir, 'config.json'));
  store = (await openRepository(config, { create: true })).store as LocalStore;
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function options(overrides: Partial<PlanOptions> = {}): PlanOptions {
  return { policy: { keepLast: 2 }, unfinishedGraceMs: 24 * HOUR_MS, now: new Date(), ...overrides };
}

async function sizeOf(keys: string[]): Promise<number> {
  let total = 0;
  for (const key of keys) total += (await store.head(key))?.size ?? 0;
  return total;
}

describe('prune on a local repository', () => {
  it('planPrune removes beyond keepLast', async () => {
    for (const day of ['01', '02', '03', '04']) await writeFixtureBackup(store, web(`202512${day}T020000Z-aaaaaa`));

    const [plan] = await planPrune(store, options());
    expect(plan.keep.map((kept) => kept.backupId)).toEqual(['20251204T020000Z-aaaaaa', '20251203T020000Z-aaaaaa']);
    expect(plan.remove.map((removal) => removal.backupId)).toEqual(['20251202T020000Z-aaaaaa', '20251201T020000Z-aaaaaa']);
    expect(plan.remove.every((removal) => removal.reason === 'policy')).toBe(true);
  });

  it('executePrune deletes removed backups', async () => {
    const old = await writeFixtureBackup(store, web('20251201T020000Z-aaaaaa'));
    const kept = await writeFixtureBackup(store, web('20251202T020000Z-aaaaaa'));
    await writeFixtureBackup(store, web('20251203T020000Z-aaaaaa'));
    const oldBytes = await sizeOf(old);

    const outcome = await executePrune(store, await planPrune(store, options()));

    expect(outcome.freedBytes).toBe(oldBytes);
    expect(outcome.backups.map((result) => result.status)).toEqual(['removed']);
    expect(outcome.backups[0].deletedObjects).toBe(old.length);
    expect(outcome.retained).toEqual([]);
    for (const key of old) expect(await store.head(key)).toBeUndefined();
    for (const key of kept) expect(await store.head(key)).toBeDefined();
  });

  it('executePrune deletes manifest first', async () => {
    await writeFixtureBackup(store, web('20251201T020000Z-aaaaaa'));
    await writeFixtureBackup(store, web('20251202T020000Z-aaaaaa'));
    const deletions: string[][] = [];
    const recording: ObjectStore = {
      description: store.description,
      put: (key, body, putOptions) => store.put(key, body, putOptions),
      get: (key, getOptions) => store.get(key, getOptions),
      head: (key) => store.head(key),
      list: (prefix) => store.list(prefix),
      listDirectories: (prefix) => store.listDirectories(prefix),
      delete: (keys) => {
        deletions.push(keys);
        return store.delete(keys);
      },
    };

    await executePrune(recording, await planPrune(store, options({ policy: { keepLast: 1 } })));

    expect(deletions[0]).toEqual([manifestKey(web('20251201T020000Z-aaaaaa'))]);
    expect(deletions[1]).toContain(signatureKey(web('20251201T020000Z-aaaaaa')));
    expect(deletions.length).toBe(2);
  });

  it('planPrune keeps incremental chain', async () => {
    await writeFixtureBackup(store, web('20251201T020000Z-aaaaaa'));
    await writeFixtureBackup(store, { ...web('20251202T020000Z-aaaaaa'), type: 'incremental', parent: '20251201T020000Z-aaaaaa' });
    await writeFixtureBackup(store, { ...web('20251203T020000Z-aaaaaa'), type: 'incremental', parent: '20251202T020000Z-aaaaaa' });

    const [plan] = await planPrune(store, options({ policy: { keepLast: 1 } }));

    expect(plan.remove).toEqual([]);
    expect(plan.keep.find((kept) => kept.backupId === '20251201T020000Z-aaaaaa')?.reasons).toEqual(['parent of 20251202T020000Z-aaaaaa']);
  });

  it('planPrune unfinished after grace', async () => {
    await writeFixtureBackup(store, web('20251201T020000Z-aaaaaa'));
    await writeFixtureBackup(store, { ...web('20251202T020000Z-bbbbbb'), unfinished: true });

    const [fresh] = await planPrune(store, options());
    expect(fresh.remove).toEqual([]);
    expect(fresh.unfinishedKept).toEqual(['20251202T020000Z-bbbbbb']);

    const [later] = await planPrune(store, options({ now: new Date(Date.now() + 25 * HOUR_MS) }));
    expect(later.remove.map((removal) => [removal.backupId, removal.reason])).toEqual([['20251202T020000Z-bbbbbb', 'unfinished']]);
  });

  it('executePrune removes unfinished backup', async () => {
    const unfinished = await writeFixtureBackup(store, { ...web('20251202T020000Z-bbbbbb'), unfinished: true });

    const outcome = await executePrune(store, await planPrune(store, options({ now: new Date(Date.now() + 25 * HOUR_MS) })));

    expect(outcome.backups.map((result) => result.status)).toEqual(['removed']);
    expect(outcome.backups[0].deletedObjects).toBe(unfinished.length);
    expect(await allKeys(store)).toEqual([]);
  });

  it('planPrune keeps unreadable manifest', async () => {
    await writeFixtureBackup(store, web('20251201T020000Z-aaaaaa'));
    await writeFixtureBackup(store, web('20251202T020000Z-aaaaaa'));
    await writeFile(join(store.root, manifestKey(web('20251201T020000Z-aaaaaa'))), '{"format": "something else"}');

    const [plan] = await planPrune(store, options({ policy: { keepLast: 1 } }));

    expect(plan.remove).toEqual([]);
    expect(plan.unreadable.map((entry) => entry.backupId)).toEqual(['20251201T020000Z-aaaaaa']);
    expect(plan.unreadable[0].error).toContain('manifest-schema');
  });

  it('planPrune host and domain filter', async () => {
    await writeFixtureBackup(store, web('20251201T020000Z-aaaaaa'));
    await writeFixtureBackup(store, { host, domain: 'db', backupId: '20251201T020000Z-aaaaaa' });
    await writeFixtureBackup(store, { host: 'hv2', domain: 'web', backupId: '20251201T020000Z-aaaaaa' });

    const plans = await planPrune(store, options({ host, domains: ['web'] }));
    expect(plans.map((plan) => `${plan.host}/${plan.domain}`)).toEqual(['hv1/web']);

    const all = await planPrune(store, options());
    expect(all.map((plan) => `${plan.host}/${plan.domain}`)).toEqual(['hv1/db', 'hv1/web', 'hv2/web']);
  });
});

describe('prune command', () => {
  async function writeConfig(retention: object | undefined): Promise<string> {
    const path = join(dir, 'config.json');
    await writeFile(path, JSON.stringify({ repository: { type: 'local', path: join(dir, 'repo') }, ...(retention ? { retention } : {}) }));
    return path;
  }

  it('prune dry run deletes nothing', async () => {
    for (const day of ['01', '02', '03']) await writeFixtureBackup(store, web(`202512${day}T020000Z-aaaaaa`));
    const before = await allKeys(store);

    const run = await runSubcommand(registerPrune, ['--config', await writeConfig({ keepLast: 1 }), 'prune', '--dry-run', '--json']);

    expect(run.exitCode).toBe(0);
    const printed = JSON.parse(run.stdout) as { dryRun: boolean; domains: { remove: { backupId: string }[] }[] };
    expect(printed.dryRun).toBe(true);
    expect(printed.domains[0].remove.map((removal) => removal.backupId)).toEqual(['20251202T020000Z-aaaaaa', '20251201T020000Z-aaaaaa']);
    expect(await allKeys(store)).toEqual(before);
  });

  it('prune removes and reports', async () => {
    for (const day of ['01', '02', '03']) await writeFixtureBackup(store, web(`202512${day}T020000Z-aaaaaa`));

    const run = await runSubcommand(registerPrune, ['--config', await writeConfig({ keepLast: 1 }), 'prune', 'web']);

    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain('removed 2 backups');
    expect((await allKeys(store)).every((key) => key.includes('20251203T020000Z-aaaaaa'))).toBe(true);
  });

  it('prune without retention fails', async () => {
    const run = await runSubcommand(registerPrune, ['--config', await writeConfig(undefined), 'prune']);
    expect(run.exitCode).toBe(3);
  });
});
