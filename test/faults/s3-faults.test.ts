/**
 * S3 faults between the store and a real Ceph RGW, injected by the fault
 * proxy in test/support/fault-proxy.ts. Transient errors are retried and the
 * operation succeeds. A stalled server is cut by the request timeout. A
 * permanent failure ends after a bounded number of attempts, with an error
 * that names the key, the status and the fix.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { RepositoryError } from '../../src/errors.js';
import { S3Store, type S3StoreOptions } from '../../src/repository/s3.js';
import { runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { s3Environment, writeTestConfig } from '../support/config.js';
import { createTestDomain, removeTestDomain, type TestDomain } from '../support/domains.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { createTestKeys } from '../support/setup-keys.js';
import { compareDisks, imageBitmapNames } from './support.js';

const rgw = available('rgw');
const backups = available('libvirt', 'rgw', 'qemu-img');

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

  // Without the caller's SHA-256 the SDK hashes the body itself, so RGW
  // checks that hash before Content-MD5 in both cases.
  it.each([
    ['caller SHA-256', true],
    ['SDK SHA-256 and Content-MD5', false],
  ] as const)('put with changed bytes rejected, %s', async (_name, withSha256) => {
    const { store, prefix } = proxied();
    const body = randomBytes(256 * 1024);
    const sha256 = withSha256 ? createHash('sha256').update(body).digest('hex') : undefined;
    proxy.addRule({ method: 'PUT', path: keyPath(prefix, 'object'), fault: { kind: 'corrupt-body' } });

    const failure = await failureOf(store.put('object', body, { ifNoneMatch: true, sha256 }));

    expect(failure).toBeInstanceOf(RepositoryError);
    expect((failure as Error).message).toContain('SHA-256 did not match the received bytes');
    expect((failure as Error).message).toContain(`s3://${bucket}/${prefix}/object`);
    expect((failure as RepositoryError).hint).toContain('changed in transit');
    expect(await direct.head(`${prefix}/object`)).toBeUndefined();
  });

  it('put with a wrong SHA-256 rejected', async () => {
    const { store, prefix } = proxied();
    const body = randomBytes(4096);
    const other = createHash('sha256').update('other bytes').digest('hex');

    const failure = await failureOf(store.put('object', body, { sha256: other }));

    expect((failure as Error).message).toContain('SHA-256 did not match');
    expect(proxy.count('PUT', keyPath(prefix, 'object'))).toBe(1);
    expect(await direct.head(`${prefix}/object`)).toBeUndefined();
  });

  it('put with a malformed SHA-256 sends nothing', async () => {
    const { store, prefix } = proxied();

    const failure = await failureOf(store.put('object', randomBytes(16), { sha256: 'ABC' }));

    expect(failure).toBeInstanceOf(RepositoryError);
    expect((failure as Error).message).toContain('invalid SHA-256 "ABC"');
    expect(proxy.count('PUT', keyPath(prefix, 'object'))).toBe(0);
  });
});

describe.skipIf(!backups)('backup through fault proxy', () => {
  const host = 'fault-host';
  const clone = 'hvb-test-fault-s3-clone';
  let work: string;
  let proxy: FaultProxy;
  let direct: S3Store;
  let domain: TestDomain;
  let config: string;

  async function manifestKeys(): Promise<string[]> {
    const keys: string[] = [];
    for await (const object of direct.list(`backup/hosts/${host}/`)) {
      if (object.key.endsWith('/manifest.json')) keys.push(object.key);
    }
    return keys;
  }

  beforeAll(async () => {
    const { endpoint, accessKeyId, secretAccessKey, region } = settings();
    work = await mkdtemp(join(tmpdir(), 'hvbf-'));
    const backupBucket = `hvb-faults-backup-${runId}`;
    const admin = new S3Client({ endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
    await admin.send(new CreateBucketCommand({ Bucket: backupBucket }));
    admin.destroy();

    proxy = await FaultProxy.start(endpoint, { seed: 7 });
    direct = new S3Store({ bucket: backupBucket, endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
    config = await writeTestConfig(work, {
      keys: await createTestKeys(work),
      repository: { type: 's3', bucket: backupBucket, prefix: 'backup', endpoint: proxy.endpoint, region, forcePathStyle: true },
      extra: { host, segmentSize: '1MiB' },
    });
    domain = await createTestDomain({ name: 'hvb-test-fault-s3', kind: 'single', start: false });
  });

  afterEach(() => {
    proxy.clearRules();
    proxy.clearLog();
  });

  afterAll(async () => {
    await domain?.cleanup().catch(() => undefined);
    await removeTestDomain(clone).catch(() => undefined);
    direct?.destroy();
    await proxy?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('transient segment failures commit', async () => {
    proxy.addRule({ method: 'PUT', path: /\/segments\//, fault: { kind: 'status', status: 503 }, probability: 0.5 });
    proxy.addRule({ method: 'GET', path: /\/segments\//, fault: { kind: 'reset', during: 'response' }, probability: 0.3 });

    const backup = await runCli(['--config', config, 'backup', '--mode', 'full', domain.name], { env: s3Environment() });
    expect(backup.code, backup.stderr).toBe(0);
    expect(proxy.log.filter((record) => record.method === 'PUT' && record.fault === 'status').length).toBeGreaterThan(0);
    expect(await manifestKeys()).toHaveLength(1);

    const storageDir = join(work, 'clone');
    const restore = await runCli(['--config', config, 'restore', '--yes', '--as', clone, '--storage-dir', storageDir, domain.name], { env: s3Environment() });
    expect(restore.code, restore.stderr).toBe(0);
    expect(await compareDisks(domain.disks[0]!.path, join(storageDir, `${clone}-vda.qcow2`))).toBeNull();
    await removeTestDomain(clone);
  }, 120_000);

  it('permanent segment failure commits nothing', async () => {
    const manifestsBefore = await manifestKeys();
    proxy.addRule({ method: 'PUT', path: /\/segments\/000001\.pgp$/, fault: { kind: 'status', status: 500 } });

    const started = Date.now();
    const backup = await runCli(['--config', config, 'backup', '--mode', 'full', domain.name], { env: s3Environment() });
    const elapsed = Date.now() - started;

    expect(backup.code).toBe(5);
    expect(backup.stderr).toContain('segments/000001.pgp');
    expect(backup.stderr).toContain('HTTP 500');
    expect(backup.stderr).toContain('retry later');
    expect(elapsed).toBeLessThan(60_000);
    expect(await manifestKeys()).toEqual(manifestsBefore);
    const committedIds = new Set(manifestsBefore.map((key) => `hvbackup-${key.split('/').at(-2)}`));
    const bitmaps = (await imageBitmapNames(domain.disks[0]!.path)).filter((name) => name.startsWith('hvbackup-'));
    expect(bitmaps.filter((name) => !committedIds.has(name))).toEqual([]);

    // Only the failing segment was sent again; the SDK made 5 attempts at it.
    const puts = proxy.countByPath('PUT');
    const failing = [...puts].filter(([path]) => path.endsWith('/segments/000001.pgp'));
    const others = [...puts].filter(([path]) => path.includes('/segments/') && !path.endsWith('/segments/000001.pgp'));
    expect(failing.map(([, count]) => count)).toEqual([5]);
    expect(others.filter(([, count]) => count > 1)).toEqual([]);
    expect([...puts.keys()].filter((path) => path.endsWith('manifest.json') || path.endsWith('manifest.json.sig'))).toEqual([]);
  }, 120_000);
});
