/**
 * Choosing between a full and an incremental backup. An incremental is only
 * safe when the parent's libvirt checkpoint still exists (its dirty bitmap
 * holds every write since the parent) and the disks are the same ones the
 * parent saw; anything else falls back to a full backup with the reason
 * logged, because a wrong chain silently loses writes at restore time.
 * A disk that the parent excluded has no copy in the chain to build on,
 * and restore requires every link of a chain to contain the same disks.
 */
import type { PublicKey } from 'openpgp';

import { UsageError } from '../errors.js';
import { loadTrustedManifest } from '../restore/manifest-check.js';
import { latestCommittedBackup } from '../restore/catalog.js';
import { backupIdTime } from '../manifest/layout.js';
import type { Manifest } from '../manifest/schema.js';
import type { ObjectStore } from '../repository/store.js';

export type BackupMode = 'full' | 'incremental' | 'auto';

export interface ChainLimits {
  /** Incrementals after a full backup before the next full one. */
  maxLength: number;
  /** Days after a full backup before the next full one. */
  maxAgeDays: number;
}

export interface ChainDecision {
  type: 'full' | 'incremental';
  parent?: Manifest;
  reason: string;
}

export interface ChainInput {
  store: ObjectStore;
  host: string;
  domain: string;
  mode: BackupMode;
  limits: ChainLimits;
  /** The host's own public key: only manifests it signed can be parents. */
  hostKey: PublicKey;
  /** Names of the domain's checkpoints in libvirt right now. */
  checkpoints: string[];
  /** Current disks: target and format. */
  disks: { target: string; format: string }[];
  /** Targets of the disks that this backup leaves out because the configuration excludes them. */
  excludedTargets?: string[];
  now?: Date;
}

export async function decideChain(input: ChainInput): Promise<ChainDecision> {
  if (input.mode === 'full') return { type: 'full', reason: 'full backup requested' };

  const fallback = (reason: string): ChainDecision => {
    if (input.mode === 'incremental') {
      throw new UsageError(`cannot take an incremental backup of ${input.domain}: ${reason}`, {
        hint: 'run with --mode full or --mode auto to start a new chain',
      });
    }
    return { type: 'full', reason };
  };

  const latest = await latestCommittedBackup(input.store, input.host, input.domain);
  if (!latest) return fallback('no earlier backup of this domain');

  let parent: Manifest;
  try {
    parent = (await loadTrustedManifest(input.store, latest, [input.hostKey])).manifest;
  } catch (error) {
    return fallback(`latest backup ${latest.backupId} cannot be verified with this host's key: ${(error as Error).message}`);
  }

  if (!parent.checkpoint) return fallback(`latest backup ${parent.backupId} created no checkpoint`);

  // The disks are compared before the checkpoint is looked up, because a
  // disk that the parent did not contain also lacks the parent's bitmap,
  // and "checkpoint missing" would hide the real reason.
  const before = parent.disks.map((disk) => `${disk.target}:${disk.format}`).join(',');
  const now = input.disks.map((disk) => `${disk.target}:${disk.format}`).join(',');
  if (before !== now) {
    const changes = describeDiskChanges(parent, input.disks, input.excludedTargets ?? []);
    return fallback(`disks changed since backup ${parent.backupId} (${before} -> ${now}): ${changes.join('; ')}`);
  }
  if (!input.checkpoints.includes(parent.checkpoint)) {
    return fallback(`checkpoint ${parent.checkpoint} of backup ${parent.backupId} is missing in libvirt (deleted, or the domain was restored)`);
  }

  if (parent.chain.length + 1 > input.limits.maxLength) {
    return fallback(`chain from ${parent.chain.full} reached ${parent.chain.length} incrementals (limit ${input.limits.maxLength})`);
  }
  const fullAgeDays = ((input.now ?? new Date()).getTime() - backupIdTime(parent.chain.full).getTime()) / 86_400_000;
  if (fullAgeDays > input.limits.maxAgeDays) {
    return fallback(`chain from ${parent.chain.full} is older than ${input.limits.maxAgeDays} days`);
  }

  return { type: 'incremental', parent, reason: `on top of ${parent.backupId} (checkpoint ${parent.checkpoint})` };
}

/**
 * Lists, per disk target, why the disks of a backup differ from its parent's,
 * naming the targets that excludeDisks added or removed.
 */
export function describeDiskChanges(
  parent: Pick<Manifest, 'backupId' | 'disks' | 'excludedDisks'>,
  disks: { target: string; format: string }[],
  excludedTargets: string[],
): string[] {
  const parentExcluded = (parent.excludedDisks ?? []).map((disk) => disk.target);
  const changes: string[] = [];

  for (const disk of disks) {
    const previous = parent.disks.find((candidate) => candidate.target === disk.target);
    if (previous === undefined) {
      changes.push(
        parentExcluded.includes(disk.target)
          ? `disk ${disk.target} was excluded from backup ${parent.backupId}, so no earlier copy of it exists to build on`
          : `disk ${disk.target} is new since backup ${parent.backupId}`,
      );
    } else if (previous.format !== disk.format) {
      changes.push(`disk ${disk.target} changed format from ${previous.format} to ${disk.format}`);
    }
  }

  for (const previous of parent.disks) {
    if (disks.some((disk) => disk.target === previous.target)) continue;
    changes.push(
      excludedTargets.includes(previous.target)
        ? `disk ${previous.target} is excluded now but was in backup ${parent.backupId}, and each backup of a chain must contain the same disks`
        : `disk ${previous.target} of backup ${parent.backupId} is no longer backed up`,
    );
  }

  if (changes.length === 0) changes.push('the disks are listed in another order');
  return changes;
}
