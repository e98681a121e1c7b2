/**
 * Incremental chains against real libvirt checkpoints and qcow2 bitmaps.
 * Every point of a chain restores to exactly the disk it was taken from. An
 * incremental with nothing dirty stores no disk data. A killed backup's
 * checkpoint is never chained from, and shut-off domains chain too.
 */
import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { cliPath, runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { writeTestConfig } from '../support/config.js';
import { createTestDomain, writePattern, type TestDomain } from '../support/domains.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';
import { compareImages, virsh } from './helpers.js';

const enabled = available('libvirt', 'qemu-img');
const MIB = 1024 * 1024;

async function qemuImgInfo(path: string): Promise<string> {
  const { stdout } = await promisify(execFile)('qemu-img', ['info', '--force-share', '--output=json', path]);
  return stdout;
}

interface BackupSummary {
  backupId: string;
  type: 'full' | 'incremental';
  parent: string | null;
  bytesRead: number;
  bytesStored: number;
}

describe.skipIf(!enabled)('incremental chains', () => {
  let work: string;
  let keys: TestKeys;
  const domains: TestDomain[] = [];
  const clones: string[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hvb-incr-'));
    keys = await createTestKeys(work);
  });

  afterAll(async () => {
    for (const name of clones) {
      await virsh('destroy', name).catch(() => undefined);
      await virsh('undefine', name, '--nvram', '--checkpoints-metadata').catch(() => undefined);
    }
    for (const domain of domains) await domain.cleanup().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  async function setup(kind: 'single' | 'multi', name: string, start: boolean) {
    const dir = await mkdtemp(join(work, `${name}-`));
    const config = await writeTestConfig(dir, { keys, repository: { type: 'local', path: join(dir, 'repo') }, extra: { segmentSize: '1MiB' } });
    const domain = await createTestDomain({ name, kind, start });
    domains.push(domain);
    return { dir, config, domain };
  }

  async function backupWithLog(config: string, domain: string, mode = 'auto'): Promise<{ summary: BackupSummary; log: string }> {
    const result = await runCli(['--config', config, 'backup', '--json', '--mode', mode, domain]);
    expect(result.code, result.stderr).toBe(0);
    return { summary: (JSON.parse(result.stdout) as BackupSummary[])[0], log: result.stderr };
  }

  async function backup(config: string, domain: string, mode = 'auto'): Promise<BackupSummary> {
    return (await backupWithLog(config, domain, mode)).summary;
  }

  /** Copies every disk (domain shut off) so the state can be compared after restore. */
  async function snapshot(domain: TestDomain, label: string): Promise<string[]> {
    const copies: string[] = [];
    for (const disk of domain.disks) {
      const copy = `${disk.path}.${label}`;
      await copyFile(disk.path, copy);
      copies.push(copy);
    }
    return copies;
  }

  async function storedBytesPerDisk(repo: string, domain: string, backupId: string): Promise<Record<string, number>> {
    const [host] = await readdir(join(repo, 'hosts'));
    const manifest = JSON.parse(await readFile(join(repo, 'hosts', host, 'domains', domain, backupId, 'manifest.json'), 'utf8')) as {
      disks: { target: string; storedBytes: number }[];
    };
    return Object.fromEntries(manifest.disks.map((disk) => [disk.target, disk.storedBytes]));
  }

  async function restoreAndCompare(config: string, dir: string, backupId: string, references: string[], domain: TestDomain) {
    const clone = `${domain.name}-r${clones.length}`;
    clones.push(clone);
    const storage = join(dir, `restore-${clones.length}`);
    await mkdir(storage, { mode: 0o755 });
    const result = await runCli(['--config', config, 'restore', '--yes', '--allow-rollback', backupId, '--as', clone, '--storage-dir', storage]);
    expect(result.code, result.stderr).toBe(0);

    for (const [index, disk] of domain.disks.entries()) {
      const extension = disk.format === 'qcow2' ? 'qcow2' : 'img';
      const restored = join(storage, `${clone}-${disk.target}.${extension}`);
      expect(await compareImages(references[index], restored), `${backupId} disk ${disk.target}`).toBeNull();
    }
  }

  it('every point of a chain restores exactly', async () => {
    const { dir, config, domain } = await setup('multi', 'hvb-test-incr-chain', true);
    const points: { backupId: string; references: string[] }[] = [];

    await virsh('destroy', domain.name);
    let references = await snapshot(domain, 'p0');
    await virsh('start', domain.name);
    const full = await backup(config, domain.name);
    expect(full.type).toBe('full');
    points.push({ backupId: full.backupId, references });

    for (let step = 1; step <= 3; step += 1) {
      await virsh('destroy', domain.name);
      for (const disk of domain.disks) {
        await writePattern(disk.path, disk.format, step * 3 * MIB, MIB, 0x40 + step);
        await writePattern(disk.path, disk.format, step * 64 * 1024, 4096, 0x70 + step);
      }
      references = await snapshot(domain, `p${step}`);
      await virsh('start', domain.name);

      const { summary: incremental, log } = await backupWithLog(config, domain.name);
      expect(incremental.type).toBe('incremental');
      expect(incremental.parent).toBe(points[points.length - 1].backupId);
      expect(log).toContain('raw disks have no dirty bitmaps and are copied in full in every incremental backup');
      // The qcow2 disk contributes only its dirty extents (64 KiB bitmap granularity); the raw disk is copied whole.
      const stored = await storedBytesPerDisk(join(dir, 'repo'), domain.name, incremental.backupId);
      expect(stored.vda).toBe(MIB + 64 * 1024);
      expect(stored.vdb).toBeGreaterThanOrEqual(step * MIB);
      points.push({ backupId: incremental.backupId, references });
    }

    for (const point of points) await restoreAndCompare(config, dir, point.backupId, point.references, domain);

    const checkpoints = (await virsh('checkpoint-list', domain.name, '--name')).split('\n').filter(Boolean);
    expect(checkpoints).toEqual([`hvbackup-${points[points.length - 1].backupId}`]);
  }, 600_000);

  it('nothing dirty stores no disk data', async () => {
    const { config, domain } = await setup('single', 'hvb-test-incr-clean', true);
    const full = await backup(config, domain.name);
    const second = await backup(config, domain.name);

    expect(full.bytesRead).toBeGreaterThan(0);
    expect(second.type).toBe('incremental');
    expect(second.bytesRead).toBe(0);
  });

  it('killed backup checkpoint is never chained from', async () => {
    const { dir, config, domain } = await setup('single', 'hvb-test-incr-kill', true);
    const full = await backup(config, domain.name);

    // Start an incremental and kill it once libvirt has created its checkpoint.
    const child = spawn(process.execPath, [cliPath, '--config', config, '--log-format', 'json', 'backup', domain.name], { stdio: 'ignore' });
    let orphan: string | undefined;
    for (let attempt = 0; attempt < 400 && !orphan; attempt += 1) {
      const names = (await virsh('checkpoint-list', domain.name, '--name')).split('\n').filter(Boolean);
      orphan = names.find((name) => name !== `hvbackup-${full.backupId}`);
      if (!orphan) await sleep(25);
    }
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(orphan).toBeDefined();

    // Writes after the killed run must reach the next backup.
    await virsh('destroy', domain.name).catch(() => undefined);
    await writePattern(domain.disks[0].path, 'qcow2', 20 * MIB, 2 * MIB, 0x5a);
    const references = await snapshot(domain, 'after-kill');
    await virsh('start', domain.name);

    const next = await backup(config, domain.name);
    expect(next.parent).toBe(full.backupId);
    const jobInfo = await virsh('domjobinfo', domain.name);
    expect(jobInfo).toMatch(/Job type:\s+None/);
    const checkpoints = (await virsh('checkpoint-list', domain.name, '--name')).split('\n').filter(Boolean);
    expect(checkpoints).not.toContain(orphan);

    await restoreAndCompare(config, dir, next.backupId, references, domain);
  });

  it('missing checkpoint falls back to full', async () => {
    const { config, domain } = await setup('single', 'hvb-test-incr-lost', true);
    const full = await backup(config, domain.name);
    await virsh('checkpoint-delete', domain.name, `hvbackup-${full.backupId}`);

    const result = await runCli(['--config', config, 'backup', '--json', '--mode', 'auto', domain.name]);
    expect(result.code, result.stderr).toBe(0);
    const next = (JSON.parse(result.stdout) as BackupSummary[])[0];
    expect(next.type).toBe('full');
    expect(next.parent).toBeNull();
    expect(result.stderr).toContain(`checkpoint hvbackup-${full.backupId} of backup ${full.backupId} is missing in libvirt`);

    // An explicit incremental has no full backup to fall back to, so it fails and names the reason.
    await virsh('checkpoint-delete', domain.name, `hvbackup-${next.backupId}`);
    const forced = await runCli(['--config', config, 'backup', '--mode', 'incremental', domain.name]);
    expect(forced.code).not.toBe(0);
    expect(forced.stderr).toContain('is missing in libvirt');
  });

  it('shut-off domain chains and restores', async () => {
    const { dir, config, domain } = await setup('single', 'hvb-test-incr-off', false);
    const fullReferences = await snapshot(domain, 'off0');
    const full = await backup(config, domain.name);
    expect(full.type).toBe('full');

    await writePattern(domain.disks[0].path, 'qcow2', 30 * MIB, MIB, 0x66);
    const references = await snapshot(domain, 'off1');
    const incremental = await backup(config, domain.name);
    expect(incremental.type).toBe('incremental');
    expect(incremental.bytesRead).toBe(MIB);

    await restoreAndCompare(config, dir, full.backupId, fullReferences, domain);
    await restoreAndCompare(config, dir, incremental.backupId, references, domain);
  });

  it('grown disk chains and restores', async () => {
    const { dir, config, domain } = await setup('single', 'hvb-test-incr-grow', false);
    const disk = domain.disks[0];
    const originalSize = (JSON.parse(await qemuImgInfo(disk.path)) as { 'virtual-size': number })['virtual-size'];
    const fullReferences = await snapshot(domain, 'grow0');
    const full = await backup(config, domain.name);

    // Grow the disk by 16 MiB and write into the new space: only the incremental's bitmap records that write.
    await promisify(execFile)('qemu-img', ['resize', '-q', '-f', 'qcow2', disk.path, `+${16 * MIB}`]);
    await writePattern(disk.path, 'qcow2', originalSize + 4 * MIB, MIB, 0x3c);
    const references = await snapshot(domain, 'grow1');
    const incremental = await backup(config, domain.name);
    expect(incremental.type).toBe('incremental');
    expect(incremental.bytesRead).toBe(MIB);

    await restoreAndCompare(config, dir, full.backupId, fullReferences, domain);
    await restoreAndCompare(config, dir, incremental.backupId, references, domain);
    const restored = join(dir, `restore-${clones.length}`, `${clones.at(-1)}-${disk.target}.qcow2`);
    const info = JSON.parse(await qemuImgInfo(restored)) as { 'virtual-size': number };
    expect(info['virtual-size']).toBe(originalSize + 16 * MIB);
  });

  it('checkpoint of running domain pruned offline', async () => {
    const { dir, config, domain } = await setup('single', 'hvb-test-incr-stop', true);
    const full = await backup(config, domain.name);
    expect(full.type).toBe('full');
    await virsh('destroy', domain.name);

    await writePattern(domain.disks[0].path, 'qcow2', 20 * MIB, MIB, 0x5a);
    const references = await snapshot(domain, 'stop1');
    const incremental = await backup(config, domain.name);
    expect(incremental.type).toBe('incremental');
    expect(incremental.parent).toBe(full.backupId);

    // libvirt 9 keeps checkpoints of an inactive domain unless deleted as metadata; neither they nor their bitmaps may pile up.
    const checkpoints = (await virsh('checkpoint-list', domain.name, '--name')).split('\n').filter(Boolean);
    expect(checkpoints).toEqual([]);
    const info = JSON.parse(await qemuImgInfo(domain.disks[0].path)) as { 'format-specific': { data: { bitmaps?: { name: string }[] } } };
    const bitmaps = (info['format-specific'].data.bitmaps ?? []).map((bitmap) => bitmap.name);
    expect(bitmaps).toEqual([`hvbackup-${incremental.backupId}`]);

    await restoreAndCompare(config, dir, incremental.backupId, references, domain);
  });
});
