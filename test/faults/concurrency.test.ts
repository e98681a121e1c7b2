/**
 * Runs that overlap: a second backup of a domain whose backup is still
 * running, and a prune while a backup is writing its segments. The first
 * backup is held in the middle of its upload by the fault proxy, which
 * stalls segment PUTs until the test resets those connections; the SDK then
 * retries them and the backup finishes.
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
import { createTestDomain, type TestDomain } from '../support/domains.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { createTestKeys } from '../support/setup-keys.js';
import { sleep, spawnCli, type CliProcess } from './support.js';

const enabled = available('libvirt', 'rgw', 'qemu-img');
const HOST = 'fault-host';

describe.skipIf(!enabled)('overlapping runs', () => {
  let work: string;
  let proxy: FaultProxy;
  let store: S3Store;
  let domain: TestDomain;
  let config: string;
  const bucket = `hvb-fault-overlap-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

  async function objectKeys(): Promise<string[]> {
    const keys: string[] = [];
    for await (const object of store.list(`hosts/${HOST}/`)) keys.push(object.key);
    return keys;
  }

  /** Starts a backup and returns once one of its segment PUTs is stalled. */
  async function startHeldBackup(stalledSegments: RegExp): Promise<CliProcess> {
    proxy.clearRules();
    proxy.addRule({ method: 'PUT', path: stalledSegments, fault: { kind: 'stall' } });
    const backup = spawnCli(['--config', config, 'backup', '--mode', 'full', domain.name], s3Environment());
    const deadline = Date.now() + 60_000;
    while (proxy.stalledCount() === 0 && backup.child.exitCode === null && Date.now() < deadline) await sleep(50);
    return backup;
  }

  beforeAll(async () => {
    const endpoint = process.env.HVBACKUP_TEST_S3_ENDPOINT ?? '';
    const region = process.env.HVBACKUP_TEST_S3_REGION ?? 'us-east-1';
    const credentials = { accessKeyId: process.env.HVBACKUP_TEST_S3_ACCESS_KEY ?? '', secretAccessKey: process.env.HVBACKUP_TEST_S3_SECRET_KEY ?? '' };
    const admin = new S3Client({ endpoint, region, forcePathStyle: true, credentials });
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    admin.destroy();
    store = new S3Store({ bucket, endpoint, region, forcePathStyle: true, credentials });
    proxy = await FaultProxy.start(endpoint);

    work = await mkdtemp(join(tmpdir(), 'hvbf-'));
    config = await writeTestConfig(work, {
      keys: await createTestKeys(work),
      repository: { type: 's3', bucket, endpoint: proxy.endpoint, region, forcePathStyle: true },
      extra: { host: HOST, segmentSize: '1MiB', retention: { keepLast: 1 } },
    });
    domain = await createTestDomain({ name: 'hvb-test-fault-overlap', kind: 'single', start: true });
  });

  afterAll(async () => {
    await domain?.cleanup().catch(() => undefined);
    store?.destroy();
    await proxy?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('second backup refused with owner', async () => {
    const first = await startHeldBackup(/\/segments\//);
    expect(proxy.stalledCount()).toBeGreaterThan(0);

    const second = await runCli(['--config', config, 'backup', domain.name], { env: s3Environment() });

    expect(second.code).toBe(7);
    expect(second.stderr).toContain(join(work, 'state', 'locks', `${domain.name}.lock`));
    expect(second.stderr).toContain(`process ${first.child.pid}`);

    proxy.clearRules();
    proxy.resetStalled();
    const outcome = await first.exited;
    expect(outcome.code, outcome.stderr).toBe(0);
    expect((await objectKeys()).filter((key) => key.endsWith('/manifest.json'))).toHaveLength(1);
  }, 120_000);

  it('prune spares unfinished backup', async () => {
    // Segment 000000 is stored, the later ones stall: the backup is unfinished, with objects in the repository.
    const backup = await startHeldBackup(/\/segments\/0*[1-9][0-9]*\.pgp$/);
    const deadline = Date.now() + 30_000;
    let unfinished: string[] = [];
    while (Date.now() < deadline) {
      const manifests = new Set((await objectKeys()).filter((key) => key.endsWith('/manifest.json')).map((key) => key.split('/').slice(0, -1).join('/')));
      unfinished = (await objectKeys()).filter((key) => key.endsWith('/segments/000000.pgp') && !manifests.has(key.split('/').slice(0, -2).join('/')));
      if (unfinished.length > 0) break;
      await sleep(100);
    }
    expect(unfinished).toHaveLength(1);

    const prune = await runCli(['--config', config, 'prune'], { env: s3Environment() });
    expect(prune.code, prune.stderr).toBe(0);
    expect(await objectKeys()).toContain(unfinished[0]);

    proxy.clearRules();
    proxy.resetStalled();
    const outcome = await backup.exited;
    expect(outcome.code, outcome.stderr).toBe(0);
    const committed = unfinished[0]!.replace(/segments\/000000\.pgp$/, 'manifest.json');
    expect(await objectKeys()).toContain(committed);
  }, 120_000);
});
