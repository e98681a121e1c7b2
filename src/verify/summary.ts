/**
 * What `hvbackup show` prints about one backup: the manifest's summary and
 * its chain, found by following `parent` down to the full backup. With
 * trusted keys every manifest on the chain is signature-checked. Without
 * them the manifests are only schema-checked, and `signatureChecked` is false.
 */
import type { PublicKey } from 'openpgp';

import { NotFoundError } from '../errors.js';
import { backupIdTime, manifestKey, type BackupRef } from '../manifest/layout.js';
import { decodeManifest, type Manifest } from '../manifest/schema.js';
import type { ObjectStore } from '../repository/store.js';
import { loadTrustedManifest } from '../restore/manifest-check.js';

export interface ChainLink {
  backupId: string;
  type: Manifest['type'] | 'missing';
}

export interface BackupSummary extends BackupRef {
  type: Manifest['type'];
  /** This backup first, then each parent down to the full backup (or to the first missing one). */
  chain: ChainLink[];
  /** True when the chain reaches a full backup. */
  chainComplete: boolean;
  disks: { target: string; format: string; virtualSize: number; storedBytes: number }[];
  /** Disks the configuration left out of this backup, empty when none was. */
  excludedDisks: { target: string; format: string; sourcePath: string }[];
  archiveBytes: number;
  /** Ciphertext bytes of the segments. */
  storedBytes: number;
  segments: number;
  startedAt: string;
  /** When the disks were captured: the point in time a restore returns to. */
  snapshotAt: string;
  finishedAt: string;
  ageSeconds: number;
  signer: string;
  signatureChecked: boolean;
  toolVersion: string;
}

/** Reads one manifest, signature-checked when trusted keys are given. */
async function readManifest(store: ObjectStore, ref: BackupRef, trustedKeys: PublicKey[] | undefined): Promise<Manifest> {
  if (trustedKeys) return (await loadTrustedManifest(store, ref, trustedKeys)).manifest;
  const key = manifestKey(ref);
  return decodeManifest(await store.get(key), key);
}

export async function summarizeBackup(
  store: ObjectStore,
  ref: BackupRef,
  options: { trustedKeys?: PublicKey[]; now: Date },
): Promise<BackupSummary> {
  const manifest = await readManifest(store, ref, options.trustedKeys);
  const { chain, complete } = await resolveChain(store, ref, manifest, options.trustedKeys);

  return {
    host: ref.host,
    domain: ref.domain,
    backupId: ref.backupId,
    type: manifest.type,
    chain,
    chainComplete: complete,
    disks: manifest.disks.map((disk) => ({ target: disk.target, format: disk.format, virtualSize: disk.virtualSize, storedBytes: disk.storedBytes })),
    excludedDisks: manifest.excludedDisks ?? [],
    archiveBytes: manifest.archiveBytes,
    storedBytes: manifest.segments.reduce((sum, segment) => sum + segment.size, 0),
    segments: manifest.segments.length,
    startedAt: manifest.startedAt,
    snapshotAt: manifest.snapshotAt,
    finishedAt: manifest.finishedAt,
    ageSeconds: Math.round((options.now.getTime() - backupIdTime(ref.backupId).getTime()) / 1000),
    signer: manifest.signer,
    signatureChecked: options.trustedKeys !== undefined,
    toolVersion: manifest.tool.version,
  };
}

/** Follows `parent` from `manifest` until a full backup, a missing manifest or a loop. */
export async function resolveChain(
  store: ObjectStore,
  ref: BackupRef,
  manifest: Manifest,
  trustedKeys: PublicKey[] | undefined,
): Promise<{ chain: ChainLink[]; complete: boolean }> {
  const chain: ChainLink[] = [{ backupId: ref.backupId, type: manifest.type }];
  const seen = new Set([ref.backupId]);
  let current = manifest;

  while (current.type === 'incremental' && current.parent !== null) {
    const parentId = current.parent;
    if (seen.has(parentId)) return { chain, complete: false };
    seen.add(parentId);

    try {
      current = await readManifest(store, { ...ref, backupId: parentId }, trustedKeys);
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      chain.push({ backupId: parentId, type: 'missing' });
      return { chain, complete: false };
    }
    chain.push({ backupId: parentId, type: current.type });
  }
  return { chain, complete: current.type === 'full' };
}
