/**
 * The guards a restore passes before it changes the host: the rollback guard
 * (an older backup or one older than restore.maxAgeDays needs
 * --allow-rollback), the confirmation on a terminal (or --yes), the reason in
 * the audit trail, and --replace, which only works on a shut-off domain.
 * Everything runs through the built command line against a local repository.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { writeTestConfig } from '../support/config.js';
import { createTestDomain, removeTestDomain, type TestDomain } from '../support/domains.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';
import { compareImages, referenceCopies, virsh } from '../e2e/helpers.js';
import { readAudit, runOnTerminal, snapshotHost, stagingEntries } from './support.js';

const execFileAsync = promisify(execFile);
const enabled = available('libvirt', 'qemu-img');

const rollbackClone = 'hvb-test-sec-rollback';
const confirmClone = 'hvb-test-sec-confirm';

describe.skipIf(!enabled)('restore guards', () => {
  let work: string;
  let keys: TestKeys;
  let config: string;
  let configDir: string;
  let domain: TestDomain;
  let olderId: string;
  let storage: string;

  async function backup(): Promise<string> {
    const result = await runCli(['--config', config, 'backup', '--mode', 'full', '--json', domain.name]);
    expect(result.code, result.stderr).toBe(0);
    return (JSON.parse(result.stdout) as { backupId: string }[])[0].backupId;
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hvb-sec-guards-'));
    keys = await createTestKeys(work);
    configDir = await mkdtemp(join(work, 'config-'));
    config = await writeTestConfig(configDir, { keys, repository: { type: 'local', path: join(work, 'repo') } });
    storage = join(work, 'clones');
    await mkdir(storage, { recursive: true, mode: 0o755 });
    domain = await createTestDomain({ name: 'hvb-test-sec-guard', kind: 'single', start: true });
    await removeTestDomain(rollbackClone);
    await removeTestDomain(confirmClone);

    olderId = await backup();
    await backup();
  }, 300_000);

  afterAll(async () => {
    await removeTestDomain(rollbackClone).catch(() => undefined);
    await removeTestDomain(confirmClone).catch(() => undefined);
    await domain?.cleanup().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  it('older backup rejected without flag', async () => {
    const result = await runCli(['--config', config, 'restore', '--yes', olderId, '--as', rollbackClone, '--storage-dir', storage]);

    expect(result.code, result.stderr).toBe(7);
    expect(result.stderr).toContain('newer backup');
    expect(result.stderr).toContain('--allow-rollback');
    expect((await snapshotHost([])).domains).not.toContain(rollbackClone);
  });

  it('older backup accepted with flag', async () => {
    const result = await runCli(['--config', config, 'restore', '--yes', '--allow-rollback', olderId, '--as', rollbackClone, '--storage-dir', storage]);

    expect(result.code, result.stderr).toBe(0);
    expect((await snapshotHost([])).domains).toContain(rollbackClone);
    await removeTestDomain(rollbackClone);
    await rm(join(storage, `${rollbackClone}-vda.qcow2`), { force: true });
  });

  it('tiny maxAgeDays rejects latest backup', async () => {
    const dir = await mkdtemp(join(work, 'max-age-'));
    const strict = await writeTestConfig(dir, { keys, repository: { type: 'local', path: join(work, 'repo') }, extra: { restore: { maxAgeDays: 0.00001 } } });
    // 0.00001 days is 0.864 s, so every backup of this suite is older by now.
    await new Promise((resolve) => setTimeout(resolve, 1000));

    const result = await runCli(['--config', strict, 'restore', '--yes', domain.name, '--as', rollbackClone, '--storage-dir', storage]);

    expect(result.code, result.stderr).toBe(7);
    expect(result.stderr).toContain('restore.maxAgeDays');
    expect(result.stderr).toContain('--allow-rollback');
  });

  it('no terminal without --yes rejected', async () => {
    const result = await runCli(['--config', config, 'restore', domain.name, '--as', confirmClone, '--storage-dir', storage]);

    expect(result.code, result.stderr).toBe(7);
    expect(result.stderr).toContain('no terminal');
    expect(result.stderr).toContain('--yes');
  });

  it('terminal answer no cancels', async () => {
    const result = await runOnTerminal(['--config', config, 'restore', domain.name, '--as', confirmClone, '--storage-dir', storage], 'no');

    expect(result.code, result.output).toBe(7);
    expect(result.output).toContain(`as domain ${confirmClone}`);
    expect(result.output).toContain('not confirmed');
    expect((await snapshotHost([])).domains).not.toContain(confirmClone);
    expect(await stagingEntries(join(configDir, 'staging'))).toEqual([]);
  });

  it('terminal answer yes restores with reason', async () => {
    const reason = 'disk of guard domain lost in test';
    const args = ['--config', config, 'restore', '--reason', reason, domain.name, '--as', confirmClone, '--storage-dir', storage];
    const result = await runOnTerminal(args, 'yes');

    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain(`reason: ${reason}`);
    expect((await snapshotHost([])).domains).toContain(confirmClone);
    const events = await readAudit(join(configDir, 'audit.jsonl'));
    const finished = events.filter((event) => event.action === 'restore' && event.result === 'ok');
    expect(finished.at(-1)?.reason).toBe(reason);
    expect(events.filter((event) => event.action === 'restore-request').at(-1)?.reason).toBe(reason);
  });

  it('replace of running domain rejected', async () => {
    const before = await snapshotHost(domain.disks.map((disk) => disk.path));
    const result = await runCli(['--config', config, 'restore', '--yes', '--replace', domain.name]);

    expect(result.code, result.stderr).toBe(7);
    expect(result.stderr).toContain('--replace needs it shut off');
    expect(await snapshotHost(domain.disks.map((disk) => disk.path))).toEqual(before);
  });

  it('replace of shut-off domain replaces disks', async () => {
    await virsh('destroy', domain.name);
    const references = await referenceCopies(domain.disks);
    const disk = domain.disks[0];
    await execFileAsync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x99 0 1M', disk.path]);
    expect(await compareImages(references[0], disk.path)).not.toBeNull();

    const result = await runCli(['--config', config, 'restore', '--yes', '--replace', domain.name]);

    expect(result.code, result.stderr).toBe(0);
    expect(await compareImages(references[0], disk.path)).toBeNull();
  });
});
