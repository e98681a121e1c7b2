/**
 * Writes backups with the repository layout into any ObjectStore, without
 * encryption: random segment bytes, a placeholder signature and a manifest
 * that passes the schema. Enough for prune and usage, which read only the
 * manifest's type and parent and the objects' sizes.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';

import { backupIdTime, manifestKey, segmentKey, segmentName, signatureKey, type BackupRef } from '../../src/manifest/layout.js';
import { encodeManifest, manifestSchema, type Manifest } from '../../src/manifest/schema.js';
import type { ObjectStore, PutOptions } from '../../src/repository/store.js';

export const FINGERPRINT = 'A'.repeat(40);

export interface FixtureBackup extends BackupRef {
  type?: 'full' | 'incremental';
  parent?: string | null;
  segments?: number;
  segmentBytes?: number;
  /** Leave out manifest.json, as an interrupted backup does. */
  unfinished?: boolean;
  putOptions?: PutOptions;
}

/** Stores one synthetic backup and returns the keys it wrote, manifest last. */
export async function writeFixtureBackup(store: ObjectStore, backup: FixtureBackup): Promise<string[]> {
  const count = backup.segments ?? 2;
  const size = backup.segmentBytes ?? 100;
  const keys: string[] = [];
  const segments: Manifest['segments'] = [];

  for (let index = 0; index < count; index += 1) {
    const bytes = randomBytes(size);
    const name = segmentName(index);
    await store.put(segmentKey(backup, name), bytes, backup.putOptions);
    keys.push(segmentKey(backup, name));
    segments.push({ name, size, sha256: createHash('sha256').update(bytes).digest('hex'), plainSize: size });
  }

  await store.put(signatureKey(backup), Buffer.from('placeholder signature\n'), backup.putOptions);
  keys.push(signatureKey(backup));
  if (backup.unfinished) return keys;

  const time = backupIdTime(backup.backupId).toISOString();
  const chain = await chainField(store, backup, backup.parent ?? null);
  const manifest = {
    ...chain,
    format: 'hvbackup-manifest',
    version: 1,
    repositoryId: randomUUID(),
    backupId: backup.backupId,
    host: backup.host,
    domain: { name: backup.domain, uuid: randomUUID() },
    type: backup.type ?? 'full',
    parent: backup.parent ?? null,
    checkpoint: null,
    startedAt: time,
    snapshotAt: time,
    finishedAt: time,
    tool: { name: 'hvbackup', version: '0.0.0-test' },
    disks: [],
    nvram: null,
    archiveBytes: count * size,
    segmentSize: size,
    segments,
    encryption: { recipients: [FINGERPRINT], seipdVersion: 1 },
    signer: FINGERPRINT,
  } as Manifest;
  await store.put(manifestKey(backup), encodeManifest(manifest), backup.putOptions);
  keys.push(manifestKey(backup));
  return keys;
}

/** Returns every key in the store, sorted. */
export async function allKeys(store: ObjectStore, prefix = 'hosts/'): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of store.list(prefix)) keys.push(object.key);
  return keys.sort();
}

/**
 * Returns the manifest's `chain` field ({ full, length }) for a new backup,
 * taken from the parent's stored manifest, when the manifest schema has that
 * field, and an empty object otherwise.
 */
export async function chainField(store: ObjectStore, ref: BackupRef, parent: string | null): Promise<Record<string, unknown>> {
  if (!('chain' in manifestSchema.shape)) return {};
  if (parent === null) return { chain: { full: ref.backupId, length: 0 } };

  // A parent that is not stored (a test of a broken chain) counts as the full backup.
  const parentKey = manifestKey({ ...ref, backupId: parent });
  const stored = (await store.head(parentKey))
    ? (JSON.parse((await store.get(parentKey)).toString('utf8')) as { chain?: { full: string; length: number } })
    : {};
  return { chain: { full: stored.chain?.full ?? parent, length: (stored.chain?.length ?? 0) + 1 } };
}
