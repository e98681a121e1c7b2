/**
 * End to end through the command line, against real libvirtd/QEMU domains and
 * both repository kinds: back up a running domain, destroy and undefine it,
 * delete its disks, restore, and compare every disk and the definition.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { s3Environment, writeTestConfig, type TestRepository } from '../support/config.js';
import { createTestDomain, type TestDomain } from '../support/domains.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';
import { compareImages, domainInfo, essentialXml, referenceCopies, removeFiles, virsh } from './helpers.js';

const enabled = available('libvirt', 'rgw', 'qemu-img');

async function createBucket(name: string): Promise<void> {
  const client = new S3Client({
    endpoint: process.env.HVBACKUP_TEST_S3_ENDPOINT,
    region: process.env.HVBACKUP_TEST_S3_REGION ?? 'us-east-1',
    forcePathStyle: true,
    credentials: {
      accessKeyId: process.env.HVBACKUP_TEST_S3_ACCESS_KEY ?? '',
      secretAccessKey: process.env.HVBACKUP_TEST_S3_SECRET_KEY ?? '',
    },
  });
  await client.send(new CreateBucketCommand({ Bucket: name }));
  client.destroy();
}

describe.skipIf(!enabled)('backup and restore end to end', () => {
  let work: string;
  let keys: TestKeys;
  const domains: TestDomain[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hvb-e2e-'));
    keys = await createTestKeys(work);
  });

  afterAll(async () => {
    for (const domain of domains) await domain.cleanup().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  async function roundTrip(kind: 'single' | 'multi' | 'uefi', repository: TestRepository, env: NodeJS.ProcessEnv = {}) {
    const dir = await mkdtemp(join(work, `${kind}-`));
    const config = await writeTestConfig(dir, { keys, repository });
    const domain = await createTestDomain({ name: `hvb-test-e2e-${kind}-${repository.type}`, kind, start: true });
    domains.push(domain);

    const backup = await runCli(['--config', config, 'backup', '--json', domain.name], { env });
    expect(backup.stderr).not.toContain('"level":50');
    expect(backup.code).toBe(0);
    const [summary] = JSON.parse(backup.stdout) as { backupId: string; bytesRead: number }[];

    await virsh('destroy', domain.name);
    const before = await domainInfo(domain.name);
    const references = await referenceCopies(domain.disks);
    const nvramBefore = before.nvramPath ? await readFile(before.nvramPath) : undefined;
    await virsh('undefine', domain.name, '--nvram', '--checkpoints-metadata');
    await removeFiles(domain.disks.map((disk) => disk.path));

    const restore = await runCli(['--config', config, 'restore', '--yes', domain.name], { env });
    expect(restore.stderr).not.toContain('"level":50');
    expect(restore.code).toBe(0);

    for (const [index, disk] of domain.disks.entries()) {
      expect(await compareImages(references[index], disk.path)).toBeNull();
    }
    const after = await domainInfo(domain.name);
    expect(essentialXml(after)).toEqual(essentialXml(before));
    if (nvramBefore) expect(await readFile(after.nvramPath!)).toEqual(nvramBefore);

    await virsh('start', domain.name);
    expect((await virsh('domstate', domain.name)).trim()).toBe('running');
    await virsh('destroy', domain.name);
    return { summary, references, domain, config };
  }

  it('local repository single disk identical', async () => {
    const { summary } = await roundTrip('single', { type: 'local', path: join(work, 'repo-single') });
    expect(summary.bytesRead).toBeGreaterThan(0);
  });

  it('RGW repository multi-disk identical', async () => {
    await createBucket('hvb-e2e-multi');
    const repository: TestRepository = {
      type: 's3',
      bucket: 'hvb-e2e-multi',
      endpoint: process.env.HVBACKUP_TEST_S3_ENDPOINT!,
      region: process.env.HVBACKUP_TEST_S3_REGION ?? 'us-east-1',
      forcePathStyle: true,
    };
    await roundTrip('multi', repository, s3Environment());
  });

  it('UEFI domain NVRAM restored', async () => {
    const { domain } = await roundTrip('uefi', { type: 'local', path: join(work, 'repo-uefi') });
    const info = await domainInfo(domain.name);
    expect(info.nvramPath).toBeDefined();
    expect((await stat(info.nvramPath!)).size).toBeGreaterThan(0);
  });
});
