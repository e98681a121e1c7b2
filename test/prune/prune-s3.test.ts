/**
 * Prune on a Ceph RGW bucket with Object Lock (test/services/rgw.sh): objects
 * under retention are reported and left in place, and prune still succeeds.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { registerPrune } from '../../src/cli/commands/prune.js';
import { manifestKey, REPOSITORY_FILE } from '../../src/manifest/layout.js';
import { planPrune } from '../../src/prune/plan.js';
import { executePrune } from '../../src/prune/prune.js';
import { S3Store } from '../../src/repository/s3.js';
import { available } from '../support/components.js';
import { allKeys, writeFixtureBackup } from './fixture.js';
import { runSubcommand } from './run-command.js';

const rgw = available('rgw');
const runId = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const bucket = `hvb-prune-lock-${runId}`;

function settings() {
  return {
    endpoint: process.env.HVBACKUP_TEST_S3_ENDPOINT ?? '',
    accessKeyId: process.env.HVBACKUP_TEST_S3_ACCESS_KEY ?? '',
    secretAccessKey: process.env.HVBACKUP_TEST_S3_SECRET_KEY ?? '',
    region: process.env.HVBACKUP_TEST_S3_REGION ?? 'us-east-1',
  };
}

describe.skipIf(!rgw)('prune on an Object Lock bucket', () => {
  let admin: S3Client;
  let store: S3Store;
  let dir: string;
  const prefix = 'repo';
  const until = () => new Date(Date.now() + 60 * 60 * 1000);
  const ref = (backupId: string) => ({ host: 'hv1', domain: 'web', backupId });

  beforeAll(async () => {
    const { endpoint, accessKeyId, secretAccessKey, region } = settings();
    admin = new S3Client({
      endpoint,
      region,
      forcePathStyle: true,
      credentials: { accessKeyId, secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    await admin.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
    store = new S3Store({ bucket, prefix, endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
    await store.put(REPOSITORY_FILE, Buffer.from(JSON.stringify({ format: 'hvbackup-repository', version: 1, id: '6f1c1c59-7b7e-4c52-9a57-3b9a1a1c2d3e', createdAt: new Date().toISOString() })));
    dir = await mkdtemp(join(tmpdir(), 'hvbackup-prune-s3-'));
  });

  // NOTE: the bucket stays behind because locked objects cannot be removed;
  // rgw.sh keeps everything in RAM, so stopping it discards them.
  afterAll(async () => {
    store?.destroy();
    admin?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('executePrune reports locked backup', async () => {
    const locked = await writeFixtureBackup(store, { ...ref('20251201T020000Z-aaaaaa'), putOptions: { retention: { mode: 'GOVERNANCE', until: until() } } });
    const unlocked = await writeFixtureBackup(store, ref('20251202T020000Z-aaaaaa'));
    await writeFixtureBackup(store, ref('20251203T020000Z-aaaaaa'));

    const outcome = await executePrune(store, await planPrune(store, { policy: { keepLast: 1 }, unfinishedGraceMs: 0, now: new Date() }));

    expect(outcome.backups.map((result) => [result.backupId, result.status])).toEqual([
      ['20251202T020000Z-aaaaaa', 'removed'],
      ['20251201T020000Z-aaaaaa', 'retained'],
    ]);
    expect(outcome.retained.map((object) => object.key)).toEqual([manifestKey(ref('20251201T020000Z-aaaaaa'))]);
    expect(outcome.retained[0].reason).toContain('GOVERNANCE');
    for (const key of locked) expect(await store.head(key)).toBeDefined();
    for (const key of unlocked) expect(await store.head(key)).toBeUndefined();
  });

  it('prune command exits 0 when locked', async () => {
    const { endpoint, accessKeyId, secretAccessKey } = settings();
    const config = join(dir, 'config.json');
    await writeFile(config, JSON.stringify({ repository: { type: 's3', bucket, prefix, endpoint, forcePathStyle: true }, retention: { keepLast: 1 } }));
    const before = await allKeys(store);

    process.env.AWS_ACCESS_KEY_ID = accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = secretAccessKey;
    try {
      const run = await runSubcommand(registerPrune, ['--config', config, 'prune']);

      expect(run.exitCode).toBe(0);
      expect(run.stdout).toContain('kept by Object Lock retention or permissions');
      expect(run.stdout).toContain(manifestKey(ref('20251201T020000Z-aaaaaa')));
      expect(await allKeys(store)).toEqual(before);
    } finally {
      delete process.env.AWS_ACCESS_KEY_ID;
      delete process.env.AWS_SECRET_ACCESS_KEY;
    }
  });
});
