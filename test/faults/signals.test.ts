/**
 * SIGINT and SIGTERM during a backup and during a restore. The repository is
 * RGW behind the fault proxy, which stalls every segment request, so the
 * signal always arrives while segments are in transfer. At that moment the
 * backup has a libvirt job open and the restore a staging directory. Each run must exit
 * with 130 and leave no manifest, no job, no checkpoint, no staging files
 * and no new domain.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { S3Store } from '../../src/repository/s3.js';
import { runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { s3Environment, writeTestConfig } from '../support/config.js';
import { createTestDomain, removeTestDomain, type TestDomain } from '../support/domains.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';
import { checkpointNames, definedDomains, domainJobType, entries, imageBitmapNames, spawnCli, waitForLog } from './support.js';

const enabled = available('libvirt', 'rgw', 'qemu-img');
const HOST = 'fault-host';
const runId = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

function rgwSettings() {
  return {
    endpoint: process.env.HVBACKUP_TEST_S3_ENDPOINT ?? '',
    region: process.env.HVBACKUP_TEST_S3_REGION ?? 'us-east-1',
    credentials: {
      accessKeyId: process.env.HVBACKUP_TEST_S3_ACCESS_KEY ?? '',
      secretAccessKey: process.env.HVBACKUP_TEST_S3_SECRET_KEY ?? '',
    },
  };
}

describe.skipIf(!enabled)('SIGINT and SIGTERM', () => {
  let work: string;
  let keys: TestKeys;
  let proxy: FaultProxy;
  let domain: TestDomain;
  let store: S3Store;
  const bucket = `hvb-fault-signals-${runId}`;
  const clone = 'hvb-test-fault-signal-clone';

  async function writeConfig(name: string): Promise<{ config: string; dir: string }> {
    const dir = await mkdtemp(join(work, `${name}-`));
    const config = await writeTestConfig(dir, {
      keys,
      repository: { type: 's3', bucket, endpoint: proxy.endpoint, region: rgwSettings().region, forcePathStyle: true },
      extra: { host: HOST, segmentSize: '1MiB' },
    });
    return { config, dir };
  }

  async function committedManifests(): Promise<string[]> {
    const keys: string[] = [];
    for await (const object of store.list(`hosts/${HOST}/`)) {
      if (object.key.endsWith('/manifest.json')) keys.push(object.key);
    }
    return keys;
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hvbf-'));
    keys = await createTestKeys(work);

    const settings = rgwSettings();
    const admin = new S3Client({ ...settings, forcePathStyle: true });
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    admin.destroy();
    store = new S3Store({ bucket, ...settings, forcePathStyle: true });
    proxy = await FaultProxy.start(settings.endpoint);

    domain = await createTestDomain({ name: 'hvb-test-fault-signals', kind: 'single', start: true });
  });

  afterAll(async () => {
    await domain?.cleanup().catch(() => undefined);
    await removeTestDomain(clone).catch(() => undefined);
    store?.destroy();
    await proxy?.close();
    await rm(work, { recursive: true, force: true });
  });

  it.each(['SIGINT', 'SIGTERM'] as const)('backup interrupted by %s', async (signal) => {
    const { config } = await writeConfig(`backup-${signal}`);
    const manifestsBefore = await committedManifests();
    proxy.clearRules();
    proxy.addRule({ method: 'PUT', path: /\/segments\//, fault: { kind: 'stall' } });

    const backup = spawnCli(['--config', config, 'backup', domain.name], s3Environment());
    await waitForLog(backup, 'disks exported, reading extents');
    // Let the first segment reach the stalled PUT.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    backup.child.kill(signal);
    const outcome = await backup.exited;
    proxy.clearRules();

    expect(outcome.code, outcome.stderr).toBe(130);
    expect(outcome.stderr).toContain(`interrupted by ${signal}`);
    expect(await committedManifests()).toEqual(manifestsBefore);
    expect(await domainJobType(domain.name)).toBe('None');
    expect((await checkpointNames(domain.name)).filter((name) => name.startsWith('hvbackup-'))).toEqual([]);
    expect((await imageBitmapNames(domain.disks[0]!.path)).filter((name) => name.startsWith('hvbackup-'))).toEqual([]);
  }, 120_000);

  it.each(['SIGINT', 'SIGTERM'] as const)('restore interrupted by %s', async (signal) => {
    const { config, dir } = await writeConfig(`restore-${signal}`);
    proxy.clearRules();
    const backup = await runCli(['--config', config, 'backup', '--mode', 'full', domain.name], { env: s3Environment() });
    expect(backup.code, backup.stderr).toBe(0);
    expect(await definedDomains()).not.toContain(clone);

    proxy.clearLog();
    proxy.addRule({ method: 'GET', path: /\/segments\//, fault: { kind: 'stall' } });
    const storageDir = join(dir, 'clone');
    const restore = spawnCli(['--config', config, 'restore', '--yes', '--as', clone, '--storage-dir', storageDir, domain.name], s3Environment());
    await waitForLog(restore, 'restore requested');
    // Wait until the stalled segment download has started, so the staging directory exists.
    const deadline = Date.now() + 30_000;
    while (proxy.count('GET', /\/segments\//) === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await entries(join(dir, 'staging'))).not.toEqual([]);

    restore.child.kill(signal);
    const outcome = await restore.exited;
    proxy.clearRules();

    expect(outcome.code, outcome.stderr).toBe(130);
    // Only the clone's name is checked: other test runs may define their own domains on this libvirtd meanwhile.
    expect(await definedDomains()).not.toContain(clone);
    expect(await entries(join(dir, 'staging'))).toEqual([]);
    expect(await entries(storageDir)).toEqual([]);
  }, 120_000);
});
