/**
 * S3Store against a real Ceph RGW (test/services/rgw.sh). Each file run
 * creates its own buckets, so reruns on a live gateway do not collide.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';

import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { NotFoundError, RepositoryError } from '../../src/errors.js';
import { openStore } from '../../src/repository/open.js';
import { S3Store, type S3StoreOptions } from '../../src/repository/s3.js';
import { available } from '../support/components.js';
import { collect, runStoreContract } from './store-contract.js';

const rgw = available('rgw');

function settings() {
  return {
    endpoint: process.env.HVBACKUP_TEST_S3_ENDPOINT ?? '',
    accessKeyId: process.env.HVBACKUP_TEST_S3_ACCESS_KEY ?? '',
    secretAccessKey: process.env.HVBACKUP_TEST_S3_SECRET_KEY ?? '',
    region: process.env.HVBACKUP_TEST_S3_REGION ?? 'us-east-1',
  };
}

const runId = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const bucket = `hvb-store-${runId}`;
const lockBucket = `hvb-lock-${runId}`;
const stores: S3Store[] = [];

function makeStore(overrides: Partial<S3StoreOptions> = {}): S3Store {
  const { endpoint, accessKeyId, secretAccessKey, region } = settings();
  const store = new S3Store({
    bucket,
    prefix: `t/${stores.length}`,
    endpoint,
    region,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    // A small page size makes the contract's listing test cross page boundaries.
    listPageSize: 7,
    ...overrides,
  });
  stores.push(store);
  return store;
}

/** Returns a port on 127.0.0.1 that nothing listens on: bound once, then closed. */
async function closedPort(): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('listening socket has no TCP port');
  return address.port;
}

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe.skipIf(!rgw)('S3Store on RGW', () => {
  let admin: S3Client;

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
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    await admin.send(new CreateBucketCommand({ Bucket: lockBucket, ObjectLockEnabledForBucket: true }));
  });

  // NOTE: the buckets stay behind because objects under retention cannot be
  // removed; rgw.sh keeps everything in RAM, so stopping it discards them.
  afterAll(() => {
    for (const store of stores) store.destroy();
    admin?.destroy();
  });

  runStoreContract('s3', () => makeStore());

  it('list pages of 1000 keys', async () => {
    const store = makeStore({ listPageSize: undefined });
    const keys = Array.from({ length: 1003 }, (_, index) => `many/${String(index).padStart(4, '0')}`);
    const empty = Buffer.alloc(0);
    for (let start = 0; start < keys.length; start += 50) {
      await Promise.all(keys.slice(start, start + 50).map((key) => store.put(key, empty)));
    }

    const listed = (await collect(store.list('many/'))).map((info) => info.key);
    expect(listed.length).toBe(1003);
    expect(listed).toEqual(keys);
  });

  it('description hides credentials', () => {
    const store = makeStore();
    const { secretAccessKey, accessKeyId } = settings();

    expect(store.description).toContain(`s3://${bucket}/`);
    expect(store.description).toContain(settings().endpoint);
    expect(store.description).not.toContain(secretAccessKey);
    expect(store.description).not.toContain(accessKeyId);
  });

  it('unreachable endpoint fails fast', async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const store = makeStore({ endpoint, maxAttempts: 2 });

    const started = Date.now();
    const failure = await failureOf(store.get('any'));
    expect(failure).toBeInstanceOf(RepositoryError);
    expect((failure as Error).message).toContain(`S3 endpoint ${endpoint} unreachable`);
    expect((failure as Error).message).toContain('ECONNREFUSED');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('wrong secret key', async () => {
    const { accessKeyId } = settings();
    const store = makeStore({ credentials: { accessKeyId, secretAccessKey: 'not-the-secret' }, maxAttempts: 1 });

    const failure = await failureOf(store.get('any'));
    expect(failure).toBeInstanceOf(RepositoryError);
    expect(failure).not.toBeInstanceOf(NotFoundError);
    expect((failure as Error).message).toContain('access denied');
    expect((failure as Error).message).toContain('HTTP 403');
    expect((failure as Error).message).not.toContain('not-the-secret');
    expect((failure as RepositoryError).hint).toContain('secret key');
  });

  it('unknown access key', async () => {
    const store = makeStore({ credentials: { accessKeyId: 'nobody-here', secretAccessKey: 'whatever' }, maxAttempts: 1 });

    const failure = await failureOf(collect(store.list('')));
    expect(failure).toBeInstanceOf(RepositoryError);
    expect((failure as RepositoryError).hint).toContain('access key');
  });

  it('missing bucket on get', async () => {
    const store = makeStore({ bucket: `hvb-missing-${runId}` });

    const failure = await failureOf(store.get('any'));
    expect(failure).toBeInstanceOf(RepositoryError);
    expect(failure).not.toBeInstanceOf(NotFoundError);
    expect((failure as Error).message).toContain(`bucket hvb-missing-${runId} not found`);
  });

  it('missing bucket on head', async () => {
    const store = makeStore({ bucket: `hvb-missing-${runId}` });

    const failure = await failureOf(store.head('any'));
    expect(failure).toBeInstanceOf(RepositoryError);
    expect((failure as Error).message).toContain(`bucket hvb-missing-${runId} not found`);
  });

  it('missing bucket on list', async () => {
    const store = makeStore({ bucket: `hvb-missing-${runId}` });

    const failure = await failureOf(collect(store.list('')));
    expect(failure).toBeInstanceOf(RepositoryError);
    expect((failure as RepositoryError).hint).toContain('create the bucket');
  });

  it('locked object fails delete', async () => {
    const store = makeStore({ bucket: lockBucket });
    const until = new Date(Date.now() + 60 * 60 * 1000);
    await store.put('locked/segment', Buffer.from('keep me'), { retention: { mode: 'GOVERNANCE', until } });
    await store.put('unlocked/segment', Buffer.from('remove me'));

    const result = await store.delete(['locked/segment', 'unlocked/segment']);
    expect(result.deleted).toEqual(['unlocked/segment']);
    expect(result.failed.map((failure) => failure.key)).toEqual(['locked/segment']);
    expect(result.failed[0]?.reason).toContain('Object Lock GOVERNANCE retention');
    expect((await store.get('locked/segment')).toString()).toBe('keep me');
    expect(await store.head('unlocked/segment')).toBeUndefined();
  });

  it('default retention locks puts', async () => {
    const store = makeStore({ bucket: lockBucket, defaultRetention: { mode: 'GOVERNANCE', days: 1 } });
    await store.put('by-default', Buffer.from('x'));

    const result = await store.delete(['by-default']);
    expect(result.failed.map((failure) => failure.key)).toEqual(['by-default']);
  });

  it('retention on unlocked bucket', async () => {
    const store = makeStore();
    const until = new Date(Date.now() + 60_000);

    const failure = await failureOf(store.put('x', Buffer.from('x'), { retention: { mode: 'GOVERNANCE', until } }));
    expect(failure).toBeInstanceOf(RepositoryError);
    expect((failure as Error).message).toContain(`s3://${bucket}/`);
    expect((failure as RepositoryError).hint).toContain('Object Lock');
  });

  it('openStore builds an S3 store', async () => {
    const { endpoint, accessKeyId, secretAccessKey } = settings();
    process.env.AWS_ACCESS_KEY_ID = accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = secretAccessKey;
    try {
      const store = await openStore({ type: 's3', bucket, prefix: 'opened', endpoint });
      await store.put('object', Buffer.from('via config'));

      expect((await store.get('object')).toString()).toBe('via config');
      expect(store.description).toBe(`s3://${bucket}/opened/ at ${endpoint}`);
    } finally {
      delete process.env.AWS_ACCESS_KEY_ID;
      delete process.env.AWS_SECRET_ACCESS_KEY;
    }
  });
});

describe('S3Store start-up output', () => {
  it('opening store writes nothing to stderr', () => {
    // A JSON log on stderr must stay JSON: the SDK's Node.js version notice
    // is several lines of plain text. The child imports the built store.
    const code = `const { openStore } = await import(${JSON.stringify(new URL('../../dist/repository/open.js', import.meta.url).href)});
      await openStore({ type: 's3', bucket: 'hvb-quiet', prefix: '', region: 'us-east-1', forcePathStyle: true, endpoint: 'http://127.0.0.1:9' });`;
    const { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: _unset, ...environment } = process.env;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', env: environment });

    expect(child.status, child.stderr).toBe(0);
    expect(child.stderr).toBe('');
  });
});
