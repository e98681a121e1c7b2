/**
 * Faults of the host itself: a staging file system that fills up during a
 * restore, a read-only local repository, and a domain destroyed while its
 * backup runs. These tests mount file systems, so they need root and
 * `mount -o loop`; each mount lives in a temporary directory and is
 * unmounted afterwards.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { s3Environment, writeTestConfig } from '../support/config.js';
import { createTestDomain, removeTestDomain, virsh, type TestDomain } from '../support/domains.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';
import { checkpointNames, definedDomains, domainJobType, entries, imageBitmapNames, inspectLocalRepository, spawnCli, waitForLog } from './support.js';

const execFileAsync = promisify(execFile);
const enabled = available('libvirt', 'qemu-img') && process.getuid?.() === 0;
const HOST = 'fault-host';
const MiB = 1024 * 1024;

async function run(command: string, ...args: string[]): Promise<void> {
  await execFileAsync(command, args);
}

describe.skipIf(!enabled)('local faults', () => {
  let work: string;
  let keys: TestKeys;
  const mounts: string[] = [];
  const domains: TestDomain[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hvbf-'));
    keys = await createTestKeys(work);
  });

  afterAll(async () => {
    for (const domain of domains) await domain.cleanup().catch(() => undefined);
    await removeTestDomain('hvb-test-fault-local-clone').catch(() => undefined);
    for (const mount of mounts.reverse()) await run('umount', mount).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  it('full staging fails restore', async () => {
    const dir = await mkdtemp(join(work, 'd-'));
    const image = join(dir, 'staging.ext4');
    const mount = join(dir, 'small');
    await mkdir(mount);
    await run('truncate', '-s', '64M', image);
    // No blocks reserved for root: these tests run as root, which may write into them.
    await run('mkfs.ext4', '-q', '-m', '0', image);
    await run('mount', '-o', 'loop', image, mount);
    mounts.push(mount);
    // Leave about 512 KiB free, less than the 1.6 MiB of data the fixture disk restores.
    const { stdout } = await execFileAsync('df', ['--output=avail', '-B1', mount]);
    const available = Number(stdout.trim().split('\n').at(-1));
    await run('fallocate', '-l', String(available - 512 * 1024), join(mount, 'filler'));

    const stagingDir = join(mount, 'staging');
    const config = await writeTestConfig(dir, {
      keys,
      repository: { type: 'local', path: join(dir, 'repo') },
      extra: { host: HOST, segmentSize: '1MiB', stagingDir },
    });
    const domain = await createTestDomain({ name: 'hvb-test-fault-local-full', kind: 'single', start: false });
    domains.push(domain);
    const backup = await runCli(['--config', config, 'backup', domain.name]);
    expect(backup.code, backup.stderr).toBe(0);

    const clone = 'hvb-test-fault-local-clone';
    const storageDir = join(dir, 'clone');
    const restore = await runCli(['--config', config, 'restore', '--yes', '--as', clone, '--storage-dir', storageDir, domain.name]);

    expect(restore.code).not.toBe(0);
    expect(restore.stderr).toContain(stagingDir);
    expect(restore.stderr).toMatch(/No space left|ENOSPC/);
    expect(await definedDomains()).not.toContain(clone);
    expect(await entries(stagingDir)).toEqual([]);
    expect(await entries(storageDir)).toEqual([]);
  }, 120_000);

  it('read-only repository fails backup', async () => {
    const dir = await mkdtemp(join(work, 'd-'));
    const source = join(dir, 'repo-rw');
    const repository = join(dir, 'repo');
    const config = await writeTestConfig(dir, {
      keys,
      repository: { type: 'local', path: repository },
      extra: { host: HOST, segmentSize: '1MiB' },
    });
    const domain = await createTestDomain({ name: 'hvb-test-fault-local-ro', kind: 'single', start: true });
    domains.push(domain);

    // A first backup creates the repository; a read-only bind mount then covers it (root ignores file modes).
    await mkdir(source);
    // writeTestConfig made the repository directory already; the mount point must exist either way.
    await mkdir(repository, { recursive: true });
    await run('mount', '--bind', source, repository);
    mounts.push(repository);
    const first = await runCli(['--config', config, 'backup', domain.name]);
    expect(first.code, first.stderr).toBe(0);
    await run('mount', '-o', 'remount,bind,ro', repository);

    const backup = await runCli(['--config', config, 'backup', '--mode', 'full', domain.name]);

    expect(backup.code).toBe(5);
    expect(backup.stderr).toContain(repository);
    expect(backup.stderr).toMatch(/read-only file system|EROFS/i);
    const committed = (await inspectLocalRepository(repository, HOST, domain.name)).filter((entry) => entry.committed);
    expect(committed).toHaveLength(1);
    const known = new Set(committed.map((entry) => `hvbackup-${entry.backupId}`));
    expect((await checkpointNames(domain.name)).filter((name) => !known.has(name))).toEqual([]);
    expect((await imageBitmapNames(domain.disks[0]!.path)).filter((name) => name.startsWith('hvbackup-') && !known.has(name))).toEqual([]);
    expect(await domainJobType(domain.name)).toBe('None');
  }, 120_000);

  describe.skipIf(!available('rgw'))('domain destroyed mid-backup', () => {
    let proxy: FaultProxy;

    beforeAll(async () => {
      proxy = await FaultProxy.start(process.env.HVBACKUP_TEST_S3_ENDPOINT ?? '');
    });

    afterAll(async () => {
      await proxy?.close();
    });

    it('destroyed domain fails backup', async () => {
      const dir = await mkdtemp(join(work, 'd-'));
      const bucket = `hvb-fault-destroy-${Date.now().toString(36)}`;
      const admin = new S3Client({
        endpoint: process.env.HVBACKUP_TEST_S3_ENDPOINT,
        region: process.env.HVBACKUP_TEST_S3_REGION ?? 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: process.env.HVBACKUP_TEST_S3_ACCESS_KEY ?? '', secretAccessKey: process.env.HVBACKUP_TEST_S3_SECRET_KEY ?? '' },
      });
      await admin.send(new CreateBucketCommand({ Bucket: bucket }));
      admin.destroy();
      const config = await writeTestConfig(dir, {
        keys,
        repository: { type: 's3', bucket, endpoint: proxy.endpoint, region: 'us-east-1', forcePathStyle: true },
        // One worker, one upload and one NBD read keep under 10 MiB buffered, so the
        // stalled uploads stop the reads well before the disk's 25 MiB are all read.
        extra: { host: HOST, segmentSize: '1MiB', concurrency: { workers: 1, uploads: 1, reads: 1 } },
      });

      // 24 MiB of data, so reads are still going on when the first uploads stall.
      const domain = await createTestDomain({ name: 'hvb-test-fault-local-destroy', kind: 'single', start: false });
      domains.push(domain);
      await run('qemu-io', '-f', 'qcow2', '-c', `write -P 0x5a ${20 * MiB} ${24 * MiB}`, domain.disks[0]!.path);
      await virsh('start', domain.name);

      proxy.addRule({ method: 'PUT', path: /\/segments\//, fault: { kind: 'stall' } });
      const backup = spawnCli(['--config', config, 'backup', domain.name], s3Environment());
      await waitForLog(backup, 'disks exported, reading extents');
      const deadline = Date.now() + 30_000;
      while (proxy.stalledCount() === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));

      await virsh('destroy', domain.name);
      proxy.clearRules();
      proxy.resetStalled();
      const outcome = await backup.exited;

      expect(outcome.code).not.toBe(0);
      expect(outcome.code).not.toBe(70);
      expect(outcome.stderr).toContain(domain.name);
      expect(await domainJobType(domain.name)).toBe('None');
      const manifests = proxy.log.filter((record) => record.method === 'PUT' && record.path.endsWith('/manifest.json'));
      expect(manifests).toEqual([]);
    }, 120_000);
  });
});
