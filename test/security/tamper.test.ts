/**
 * Restore must reject every kind of tampering with a stored backup before
 * anything on the host changes. One running domain is backed up to RGW with
 * 1 MiB segments. Each case copies that backup to its own prefix, tampers
 * with the copy and runs `restore --as hvb-test-sec-clone --yes`. A wrongly
 * accepted backup would show up as that new domain.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { generateHostKey, signDetached } from '../../src/crypto/index.js';
import { manifestKey, publicKeyKey, segmentKey, signatureKey, type BackupRef } from '../../src/manifest/layout.js';
import type { Manifest } from '../../src/manifest/schema.js';
import { LocalStore } from '../../src/repository/local.js';
import type { ObjectStore } from '../../src/repository/store.js';
import { runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { s3Environment, writeTestConfig, type TestRepository } from '../support/config.js';
import { createTestDomain, removeTestDomain, type TestDomain } from '../support/domains.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';
import {
  copyObjects,
  createTestBucket,
  flipBit,
  openTestStore,
  readAudit,
  s3Repository,
  snapshotHost,
  stagingEntries,
  type HostSnapshot,
} from './support.js';

const enabled = available('libvirt', 'rgw', 'qemu-img');
const cloneName = 'hvb-test-sec-clone';

interface Expected {
  checks: string[];
  object: string;
}

describe.skipIf(!enabled)('restore tamper matrix', () => {
  let work: string;
  let keys: TestKeys;
  let bucket: string;
  let domain: TestDomain;
  let ref: BackupRef;
  let manifest: Manifest;
  let otherRef: BackupRef;
  let baseline: HostSnapshot;
  let caseNumber = 0;
  const env = s3Environment();

  async function backup(prefix: string, extra: Record<string, unknown> = {}, backupKeys = keys): Promise<BackupRef> {
    const dir = await mkdtemp(join(work, `backup-${prefix}-`));
    const config = await writeTestConfig(dir, { keys: backupKeys, repository: s3Repository(bucket, prefix), extra: { segmentSize: '1MiB', ...extra } });
    const result = await runCli(['--config', config, 'backup', '--mode', 'full', '--json', domain.name], { env });
    expect(result.code, result.stderr).toBe(0);
    const [summary] = JSON.parse(result.stdout) as { backupId: string; host: string }[];
    return { host: summary.host, domain: domain.name, backupId: summary.backupId };
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hvb-sec-tamper-'));
    keys = await createTestKeys(work);
    bucket = await createTestBucket('tamper');
    domain = await createTestDomain({ name: 'hvb-test-sec-tamper', kind: 'multi', start: true });
    await removeTestDomain(cloneName);

    ref = await backup('base');
    otherRef = await backup('other');
    const base = openTestStore(bucket, 'base');
    manifest = JSON.parse((await base.get(manifestKey(ref))).toString('utf8')) as Manifest;

    // A backup that only another administrator can read.
    const otherAdmin = await createTestKeys(await mkdtemp(join(work, 'other-admin-')), 'mallory');
    await backup('foreign', { recipients: [otherAdmin.adminPublic] });

    baseline = await snapshotHost(domain.disks.map((disk) => disk.path));
  }, 300_000);

  afterAll(async () => {
    await removeTestDomain(cloneName).catch(() => undefined);
    await domain?.cleanup().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  /** Copies the base backup to a fresh prefix and returns a store over the copy. */
  async function freshCopy(): Promise<{ store: ObjectStore; repository: TestRepository }> {
    caseNumber += 1;
    const prefix = `case-${caseNumber}`;
    const store = openTestStore(bucket, prefix);
    await copyObjects(openTestStore(bucket, 'base'), store);
    return { store, repository: s3Repository(bucket, prefix) };
  }

  /** Runs the clone restore against `repository` and checks that it was rejected as expected and changed nothing. */
  async function expectRejected(repository: TestRepository, expected: Expected): Promise<void> {
    const dir = await mkdtemp(join(work, 'restore-'));
    const storage = join(dir, 'clone-disks');
    await mkdir(storage, { recursive: true });
    const config = await writeTestConfig(dir, { keys, repository });

    const result = await runCli(['--config', config, 'restore', '--yes', domain.name, '--as', cloneName, '--storage-dir', storage], { env });

    expect([4, 7], result.stderr).toContain(result.code);
    const named = expected.checks.some((check) => result.stderr.includes(`${check} failed for ${expected.object}`));
    expect(named, `stderr names none of ${expected.checks.join(', ')} for ${expected.object}:\n${result.stderr}`).toBe(true);
    expect(await stagingEntries(join(dir, 'staging'))).toEqual([]);
    expect(await snapshotHost(domain.disks.map((disk) => disk.path))).toEqual(baseline);

    const refusals = (await readAudit(join(dir, 'audit.jsonl'))).filter((event) => event.action === 'restore-refused');
    expect(refusals).toHaveLength(1);
    expect(expected.checks).toContain(refusals[0].check);
    expect(refusals[0].object).toBe(expected.object);
  }

  function segmentObject(index: number): string {
    return segmentKey(ref, manifest.segments[index].name);
  }

  async function tamperObject(store: ObjectStore, key: string, change: (bytes: Buffer) => Buffer): Promise<void> {
    await store.put(key, change(await store.get(key)));
  }

  /** Signs `bytes` with a fresh host key that no configuration pins, and publishes that key under keys/. */
  async function signWithUnpinnedKey(store: ObjectStore, bytes: Buffer): Promise<string> {
    const rogue = await generateHostKey({ name: 'rogue host' });
    await store.put(publicKeyKey(rogue.fingerprint), Buffer.from(rogue.publicKey));
    const privateKey = await openpgp.readPrivateKey({ armoredKey: rogue.privateKey });
    return signDetached(bytes, privateKey);
  }

  function truncatedManifest(): Buffer {
    const shortened = { ...manifest, segments: manifest.segments.slice(0, -1) };
    return Buffer.from(JSON.stringify(shortened, null, 2));
  }

  it('fixture has at least three segments', () => {
    expect(manifest.segments.length).toBeGreaterThanOrEqual(3);
  });

  it('manifest bit flip rejected', async () => {
    const { store, repository } = await freshCopy();
    await tamperObject(store, manifestKey(ref), (bytes) => flipBit(bytes, Math.floor(bytes.length / 2), 1));
    await expectRejected(repository, { checks: ['manifest-signature'], object: manifestKey(ref) });
  });

  it('signature bit flip rejected', async () => {
    const { store, repository } = await freshCopy();
    await tamperObject(store, signatureKey(ref), (bytes) => {
      // Bit 5 swaps the case of a base64 letter, so the armor stays valid base64 and the signature bytes change.
      const text = bytes.toString('latin1');
      const bodyStart = text.indexOf('\n\n') + 2;
      let offset = bodyStart + 20;
      while (!/[A-Za-z]/.test(text[offset])) offset += 1;
      return flipBit(bytes, offset, 5);
    });
    await expectRejected(repository, { checks: ['manifest-signature'], object: manifestKey(ref) });
  });

  it('first segment bit flip rejected', async () => {
    const { store, repository } = await freshCopy();
    await tamperObject(store, segmentObject(0), (bytes) => flipBit(bytes, 100));
    await expectRejected(repository, { checks: ['segment-hash'], object: segmentObject(0) });
  });

  it('middle segment bit flip rejected', async () => {
    const { store, repository } = await freshCopy();
    const middle = Math.floor(manifest.segments.length / 2);
    await tamperObject(store, segmentObject(middle), (bytes) => flipBit(bytes, Math.floor(bytes.length / 2)));
    await expectRejected(repository, { checks: ['segment-hash'], object: segmentObject(middle) });
  });

  it('last segment bit flip rejected', async () => {
    const { store, repository } = await freshCopy();
    const last = manifest.segments.length - 1;
    await tamperObject(store, segmentObject(last), (bytes) => flipBit(bytes, bytes.length - 1, 7));
    await expectRejected(repository, { checks: ['segment-hash'], object: segmentObject(last) });
  });

  it('deleted segment rejected', async () => {
    const { store, repository } = await freshCopy();
    await store.delete([segmentObject(1)]);
    await expectRejected(repository, { checks: ['segment-present'], object: segmentObject(1) });
  });

  it('swapped segments rejected', async () => {
    const { store, repository } = await freshCopy();
    const first = await store.get(segmentObject(0));
    const second = await store.get(segmentObject(1));
    await store.put(segmentObject(0), second);
    await store.put(segmentObject(1), first);
    await expectRejected(repository, { checks: ['segment-size', 'segment-hash'], object: segmentObject(0) });
  });

  it('segment from other backup rejected', async () => {
    const { store, repository } = await freshCopy();
    const other = openTestStore(bucket, 'other');
    const otherManifest = JSON.parse((await other.get(manifestKey(otherRef))).toString('utf8')) as Manifest;
    const foreign = await other.get(segmentKey(otherRef, otherManifest.segments[0].name));
    await store.put(segmentObject(0), foreign);
    await expectRejected(repository, { checks: ['segment-size', 'segment-hash'], object: segmentObject(0) });
  });

  it('unpinned key signature rejected', async () => {
    const { store, repository } = await freshCopy();
    const bytes = await store.get(manifestKey(ref));
    await store.put(signatureKey(ref), Buffer.from(await signWithUnpinnedKey(store, bytes)));
    await expectRejected(repository, { checks: ['manifest-signature'], object: manifestKey(ref) });
  });

  it('truncated segment rejected', async () => {
    const { store, repository } = await freshCopy();
    await tamperObject(store, segmentObject(1), (bytes) => bytes.subarray(0, bytes.length - 1000));
    await expectRejected(repository, { checks: ['segment-size'], object: segmentObject(1) });
  });

  it('shortened list unpinned signature rejected', async () => {
    const { store, repository } = await freshCopy();
    const bytes = truncatedManifest();
    await store.put(manifestKey(ref), bytes);
    await store.put(signatureKey(ref), Buffer.from(await signWithUnpinnedKey(store, bytes)));
    await expectRejected(repository, { checks: ['manifest-signature'], object: manifestKey(ref) });
  });

  it('shortened list original signature rejected', async () => {
    const { store, repository } = await freshCopy();
    await store.put(manifestKey(ref), truncatedManifest());
    await expectRejected(repository, { checks: ['manifest-signature'], object: manifestKey(ref) });
  });

  it('missing signature rejected', async () => {
    const { store, repository } = await freshCopy();
    await store.delete([signatureKey(ref)]);
    await expectRejected(repository, { checks: ['manifest-signature'], object: signatureKey(ref) });
  });

  it('manifest without admin recipient rejected', async () => {
    const foreign = openTestStore(bucket, 'foreign');
    let foreignManifest = '';
    for await (const info of foreign.list('hosts/')) {
      if (info.key.endsWith('/manifest.json')) foreignManifest = info.key;
    }
    await expectRejected(s3Repository(bucket, 'foreign'), { checks: ['manifest-recipients'], object: foreignManifest });
  });

  it('local repository segment flip rejected', async () => {
    const path = await mkdtemp(join(work, 'local-repo-'));
    const store = new LocalStore(path);
    await copyObjects(openTestStore(bucket, 'base'), store);
    await tamperObject(store, segmentObject(2), (bytes) => flipBit(bytes, 4096, 3));
    await expectRejected({ type: 'local', path }, { checks: ['segment-hash'], object: segmentObject(2) });
  });
});
