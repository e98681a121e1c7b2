/**
 * Removing the backups a prune plan selected.
 *
 * Order within one backup: manifest.json first, then everything else
 * (manifest.json.sig and the segments). The manifest is the commit point, so
 * once it is gone the backup is "unfinished": readers ignore it and the next
 * prune removes what is left. Deleting segments first would instead leave,
 * after an interruption or a failed delete, a committed backup whose restore
 * fails on a missing segment.
 *
 * Objects the store does not delete (S3 Object Lock retention or legal hold,
 * missing permission) come back in DeleteResult.failed. They are reported,
 * and a prune with such objects still succeeds. When the manifest itself is
 * retained the rest of that backup is left alone, so it stays whole and
 * restorable until its retention ends.
 *
 * Backups are removed newest first, so an interrupted prune never leaves a
 * committed incremental whose parent is already gone.
 */
import { backupPrefix, manifestKey, type BackupRef } from '../manifest/layout.js';
import type { ObjectInfo, ObjectStore } from '../repository/store.js';
import type { DomainPlan, PlannedRemoval } from './plan.js';

export interface RetainedObject {
  key: string;
  reason: string;
}

export interface RemovalOutcome extends BackupRef {
  reason: PlannedRemoval['reason'];
  /** removed: every object deleted; partial: some retained; retained: manifest retained, nothing deleted. */
  status: 'removed' | 'partial' | 'retained';
  deletedObjects: number;
  freedBytes: number;
  retained: RetainedObject[];
}

export interface PruneOutcome {
  backups: RemovalOutcome[];
  freedBytes: number;
  retained: RetainedObject[];
}

export interface ExecuteOptions {
  signal?: AbortSignal;
  /** Called after each backup, for progress logging. */
  onBackup?: (outcome: RemovalOutcome) => void;
}

/** Deletes every backup the plans remove. Throws only when the store fails as a whole (RepositoryError) or on abort. */
export async function executePrune(store: ObjectStore, plans: DomainPlan[], options: ExecuteOptions = {}): Promise<PruneOutcome> {
  const outcome: PruneOutcome = { backups: [], freedBytes: 0, retained: [] };

  for (const plan of plans) {
    for (const removal of plan.remove) {
      options.signal?.throwIfAborted();

      const result = await removeBackup(store, removal);
      outcome.backups.push(result);
      outcome.freedBytes += result.freedBytes;
      outcome.retained.push(...result.retained);
      options.onBackup?.(result);
    }
  }
  return outcome;
}

async function removeBackup(store: ObjectStore, removal: PlannedRemoval): Promise<RemovalOutcome> {
  const objects: ObjectInfo[] = [];
  for await (const object of store.list(backupPrefix(removal))) objects.push(object);
  const sizes = new Map(objects.map((object) => [object.key, object.size]));

  const outcome: RemovalOutcome = {
    host: removal.host,
    domain: removal.domain,
    backupId: removal.backupId,
    reason: removal.reason,
    status: 'removed',
    deletedObjects: 0,
    freedBytes: 0,
    retained: [],
  };
  const account = (result: { deleted: string[]; failed: RetainedObject[] }) => {
    outcome.deletedObjects += result.deleted.length;
    for (const key of result.deleted) outcome.freedBytes += sizes.get(key) ?? 0;
    outcome.retained.push(...result.failed);
  };

  const manifest = manifestKey(removal);
  if (sizes.has(manifest)) {
    const result = await store.delete([manifest]);
    account(result);
    if (result.failed.length > 0) {
      outcome.status = 'retained';
      return outcome;
    }
  }

  const rest = objects.map((object) => object.key).filter((key) => key !== manifest);
  if (rest.length > 0) account(await store.delete(rest));

  if (outcome.retained.length > 0) outcome.status = 'partial';
  return outcome;
}
