/**
 * Writes backups with the repository layout into any ObjectStore, without
 * encryption: random segment bytes, a placeholder signature and a manifest
 * that passes the schema. Enough for prune and usage, which read only the
 * manifest's type and parent and the objects' sizes.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';

import { backupIdTime, manifestKey, segmentKey, segmentName, signatureKey, type BackupRef } from '../../src/manifest/layout.js';
import { encodeManifest, type Manifest } from '../../src/manifest/schema.js';
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
  const manifest: Manifest = {
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
  };
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
