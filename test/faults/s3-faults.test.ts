/**
 * S3 faults between the store and a real Ceph RGW, injected by the fault
 * proxy in test/support/fault-proxy.ts. Transient errors are retried and the
 * operation succeeds. A stalled server is cut by the request timeout. A
 * permanent failure ends after a bounded number of attempts, with an error
 * that names the key, the status and the fix.
 */
import { randomBytes } from 'node:crypto';

import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { RepositoryError } from '../../src/errors.js';
import { S3Store, type S3StoreOptions } from '../../src/repository/s3.js';
import { available } from '../support/components.js';
import { FaultProxy } from '../support/fault-proxy.js';

const rgw = available('rgw');

const runId = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const bucket = `hvb-faults-${runId}`;

function settings() {
  return {
    endpoint: process.env.HVBACKUP_TEST_S3_ENDPOINT ?? '',
    accessKeyId: process.env.HVBACKUP_TEST_S3_ACCESS_KEY ?? '',
    secretAccessKey: process.env.HVBACKUP_TEST_S3_SECRET_KEY ?? '',
    region: process.env.HVBACKUP_TEST_S3_REGION ?? 'us-east-1',
  };
}

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe.skipIf(!rgw)('S3Store through fault proxy', () => {
  let proxy: FaultProxy;
  let direct: S3Store;
  const stores: S3Store[] = [];
  let storeCount = 0;

  /** Creates a store that reaches RGW through the proxy, with its own key prefix. */
  function proxied(overrides: Partial<S3StoreOptions> = {}): { store: S3Store; prefix: string } {
    const { accessKeyId, secretAccessKey, region } = settings();
    storeCount += 1;
    const prefix = `t${storeCount}`;
    const store = new S3Store({
      bucket,
      prefix,
      endpoint: proxy.endpoint,
      region,
      forcePathStyle: true,
      credentials: { accessKeyId, secretAccessKey },
      ...overrides,
    });
    stores.push(store);
    return { store, prefix };
  }

  function keyPath(prefix: string, key: string): RegExp {
    return new RegExp(`^/${bucket}/${prefix}/${key}$`);
  }

  beforeAll(async () => {
    const { endpoint, accessKeyId, secretAccessKey, region } = settings();
    const admin = new S3Client({ endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    admin.destroy();

    proxy = await FaultProxy.start(endpoint, { seed: 20_240_601 });
    direct = new S3Store({ bucket, endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
  });

  afterEach(() => {
    proxy.clearRules();
    proxy.clearLog();
  });

  afterAll(async () => {
    for (const store of stores) store.destroy();
    direct?.destroy();
    await proxy?.close();
  });

  it.each([
    ['500', { kind: 'status', status: 500 }],
    ['503', { kind: 'status', status: 503 }],
    ['SlowDown', { kind: 'slow-down' }],
    ['reset during request', { kind: 'reset', during: 'request' }],
  ] as const)('put retries %s', async (_name, fault) => {
    const { store, prefix } = proxied();
    const body = randomBytes(64 * 1024);
    proxy.addRule({ method: 'PUT', path: keyPath(prefix, 'object'), fault, times: 2 });

    await store.put('object', body, { ifNoneMatch: true });

    expect(proxy.count('PUT', keyPath(prefix, 'object'))).toBe(3);
    expect(await direct.get(`${prefix}/object`)).toEqual(body);
  });

  it('put survives lost response', async () => {
    const { store, prefix } = proxied();
    const body = randomBytes(32 * 1024);
    // RGW stores the object but the client gets a reset, so the retry meets If-None-Match and gets 412.
    proxy.addRule({ method: 'PUT', path: keyPath(prefix, 'object'), fault: { kind: 'reset', during: 'response' }, times: 1 });

    await store.put('object', body, { ifNoneMatch: true });

    expect(proxy.count('PUT', keyPath(prefix, 'object'))).toBe(2);
    expect(proxy.log.find((record) => record.method === 'PUT' && record.status !== undefined)?.status).toBe(412);
    expect(await direct.get(`${prefix}/object`)).toEqual(body);
  });

  it.each([
    ['500', { kind: 'status', status: 500 }],
    ['SlowDown', { kind: 'slow-down' }],
    ['reset during request', { kind: 'reset', during: 'request' }],
  ] as const)('get retries %s', async (_name, fault) => {
    const { store, prefix } = proxied();
    const body = randomBytes(128 * 1024);
    await direct.put(`${prefix}/object`, body);
    proxy.addRule({ method: 'GET', path: keyPath(prefix, 'object'), fault, times: 2 });

    expect(await store.get('object')).toEqual(body);
    expect(proxy.count('GET', keyPath(prefix, 'object'))).toBe(3);
  });

  it('get retries reset mid-body', async () => {
    const { store, prefix } = proxied();
    const body = randomBytes(256 * 1024);
    await direct.put(`${prefix}/object`, body);
    proxy.addRule({ method: 'GET', path: keyPath(prefix, 'object'), fault: { kind: 'reset', during: 'response' }, times: 1 });

    expect(await store.get('object')).toEqual(body);
    expect(proxy.count('GET', keyPath(prefix, 'object'))).toBe(2);
  });

  it('get mid-body resets bounded', async () => {
    const { store, prefix } = proxied({ maxAttempts: 3 });
    await direct.put(`${prefix}/object`, randomBytes(256 * 1024));
    proxy.addRule({ method: 'GET', path: keyPath(prefix, 'object'), fault: { kind: 'reset', during: 'response' } });

    const failure = await failureOf(store.get('object'));

    expect(failure).toBeInstanceOf(RepositoryError);
    expect((failure as Error).message).toContain(`s3://${bucket}/${prefix}/object`);
    expect((failure as Error).message).toContain('ECONNRESET');
    expect(proxy.count('GET', keyPath(prefix, 'object'))).toBe(3);
  });

  it('list retries 503', async () => {
    const { store, prefix } = proxied();
    await direct.put(`${prefix}/a`, Buffer.from('a'));
    proxy.addRule({ method: 'GET', path: new RegExp(`^/${bucket}/?$`), fault: { kind: 'status', status: 503 }, times: 1 });

    const keys: string[] = [];
    for await (const info of store.list('')) keys.push(info.key);

    expect(keys).toEqual(['a']);
    expect(proxy.count('GET', new RegExp(`^/${bucket}/?$`))).toBe(2);
  });

  it('stalled get cut by timeout', async () => {
    const { store, prefix } = proxied({ requestTimeoutMs: 1000 });
    const body = randomBytes(1024);
    await direct.put(`${prefix}/object`, body);
    proxy.addRule({ method: 'GET', path: keyPath(prefix, 'object'), fault: { kind: 'stall' }, times: 1 });

    const started = Date.now();
    expect(await store.get('object')).toEqual(body);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(proxy.count('GET', keyPath(prefix, 'object'))).toBe(2);
  });

  it('stalled put cut by timeout', async () => {
    const { store, prefix } = proxied({ requestTimeoutMs: 1000 });
    const body = randomBytes(8 * 1024);
    proxy.addRule({ method: 'PUT', path: keyPath(prefix, 'object'), fault: { kind: 'stall' }, times: 1 });

    const started = Date.now();
    await store.put('object', body, { ifNoneMatch: true });

    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(proxy.count('PUT', keyPath(prefix, 'object'))).toBe(2);
    expect(await direct.get(`${prefix}/object`)).toEqual(body);
  });

  it('throttled get outlasts idle timeout', async () => {
    // 256 KiB at 128 KiB/s takes about 2 s, twice the idle timeout, but data keeps flowing.
    const { store, prefix } = proxied({ requestTimeoutMs: 1000 });
    const body = randomBytes(256 * 1024);
    await direct.put(`${prefix}/object`, body);
    proxy.addRule({ method: 'GET', path: keyPath(prefix, 'object'), fault: { kind: 'throttle', kibPerSecond: 128 } });

    const started = Date.now();
    expect(await store.get('object')).toEqual(body);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    expect(proxy.count('GET', keyPath(prefix, 'object'))).toBe(1);
  });

  it('random 503s all retried', async () => {
    const { store, prefix } = proxied();
    proxy.addRule({ method: 'PUT', fault: { kind: 'status', status: 503 }, probability: 0.3 });

    const bodies = Array.from({ length: 20 }, () => randomBytes(4096));
    for (const [index, body] of bodies.entries()) await store.put(`object-${index}`, body, { ifNoneMatch: true });

    const injected = proxy.log.filter((record) => record.fault === 'status').length;
    expect(injected).toBeGreaterThan(0);
    expect(proxy.count('PUT')).toBe(20 + injected);
    for (const [index, body] of bodies.entries()) expect(await direct.get(`${prefix}/object-${index}`)).toEqual(body);
  });

  it('permanent put failure bounded', async () => {
    const { store, prefix } = proxied();
    proxy.addRule({ method: 'PUT', path: keyPath(prefix, 'segments/000003.pgp'), fault: { kind: 'status', status: 500 } });

    const started = Date.now();
    const failure = await failureOf(store.put('segments/000003.pgp', randomBytes(1024), { ifNoneMatch: true }));
    const elapsed = Date.now() - started;

    expect(failure).toBeInstanceOf(RepositoryError);
    const error = failure as RepositoryError;
    expect(error.message).toContain(`s3://${bucket}/${prefix}/segments/000003.pgp`);
    expect(error.message).toContain('HTTP 500');
    expect(error.message).toContain('after 5 attempts');
    expect(error.hint).toContain('retry later');
    // The store's default is 5 attempts: one request and four retries.
    expect(proxy.count('PUT', keyPath(prefix, 'segments/000003.pgp'))).toBe(5);
    expect(elapsed).toBeLessThan(20_000);
    expect(await direct.head(`${prefix}/segments/000003.pgp`)).toBeUndefined();
  });

  it('permanent stall bounded', async () => {
    const { store, prefix } = proxied({ requestTimeoutMs: 500, maxAttempts: 3 });
    proxy.addRule({ method: 'PUT', path: keyPath(prefix, 'object'), fault: { kind: 'stall' } });

    const started = Date.now();
    const failure = await failureOf(store.put('object', randomBytes(1024)));
    const elapsed = Date.now() - started;

    expect(failure).toBeInstanceOf(RepositoryError);
    expect((failure as Error).message).toContain(`s3://${bucket}/${prefix}/object`);
    expect((failure as RepositoryError).hint).toBeDefined();
    expect(proxy.count('PUT', keyPath(prefix, 'object'))).toBe(3);
    expect(elapsed).toBeLessThan(15_000);
  });
});
