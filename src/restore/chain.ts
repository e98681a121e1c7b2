/**
 * The chain of a backup: the backup itself, its parent, and so on back to
 * the full backup it starts from. Every manifest is verified against the
 * pinned host keys and every link is checked (same domain, consecutive
 * chain positions, same full backup) before any segment is downloaded.
 */
import type { PublicKey } from 'openpgp';

import { VerificationError } from '../errors.js';
import { manifestKey, type BackupRef } from '../manifest/layout.js';
import type { Manifest } from '../manifest/schema.js';
import type { ObjectStore } from '../repository/store.js';
import { loadTrustedManifest } from './manifest-check.js';

export interface ChainLink {
  ref: BackupRef;
  manifest: Manifest;
}

/** Chains longer than this are refused: a loop or a forged chain must not run forever. */
const MAX_CHAIN_LENGTH = 10_000;

/** Returns the chain oldest first: the full backup, then each incremental up to `ref`. */
export async function loadChain(store: ObjectStore, ref: BackupRef, trustedKeys: PublicKey[]): Promise<ChainLink[]> {
  const links: ChainLink[] = [];
  let current: BackupRef | undefined = ref;

  while (current) {
    const { manifest } = await loadTrustedManifest(store, current, trustedKeys);
    const child = links.at(-1);
    if (child) checkLink(child, { ref: current, manifest });
    links.push({ ref: current, manifest });

    if (manifest.type === 'full') break;
    if (!manifest.parent) {
      throw new VerificationError('chain', manifestKey(current), 'an incremental backup names no parent');
    }
    if (links.length > MAX_CHAIN_LENGTH) {
      throw new VerificationError('chain', manifestKey(ref), `chain longer than ${MAX_CHAIN_LENGTH} backups`);
    }
    current = { host: current.host, domain: current.domain, backupId: manifest.parent };
  }
  return links.reverse();
}

function checkLink(child: ChainLink, parent: ChainLink): void {
  const object = manifestKey(child.ref);
  const problems: string[] = [];
  if (parent.manifest.domain.uuid !== child.manifest.domain.uuid) problems.push('parent belongs to another domain uuid');
  if (parent.manifest.chain.full !== child.manifest.chain.full) problems.push(`parent starts chain ${parent.manifest.chain.full}, child names ${child.manifest.chain.full}`);
  if (parent.manifest.chain.length + 1 !== child.manifest.chain.length) problems.push('chain positions are not consecutive');
  if (parent.manifest.snapshotAt >= child.manifest.snapshotAt) problems.push('parent is not older than its child');
  // Sizes may differ: a disk resized between two backups is resized in staging too (StagingDisks.open).
  const parentDisks = parent.manifest.disks.map((disk) => `${disk.target}:${disk.format}`).join(',');
  const childDisks = child.manifest.disks.map((disk) => `${disk.target}:${disk.format}`).join(',');
  if (parentDisks !== childDisks) problems.push(`disks differ (${parentDisks} vs ${childDisks})`);

  if (problems.length > 0) {
    throw new VerificationError('chain', object, `link to parent ${parent.ref.backupId} is invalid: ${problems.join('; ')}`);
  }
}
