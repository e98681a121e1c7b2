/**
 * Deciding what prune removes, without deleting anything: the retention
 * policy applied per host and domain to the committed backups, plus the
 * unfinished backups (no manifest) that stopped changing longer ago than the
 * grace period.
 *
 * The type and parent of each backup come from its manifest. With trusted
 * keys the manifest's signature is verified first. Without them the JSON is
 * only checked against the schema, so the decisions trust unsigned content:
 * a manifest altered to claim "full" could let prune remove the parent a
 * kept incremental needs. Anyone able to alter a manifest can also delete
 * objects directly, so this adds little risk, but configuring
 * `trustedSigners` closes it. A manifest that cannot be read or verified
 * keeps its backup, and the plan lists it under `unreadable`.
 */
import type { PublicKey } from 'openpgp';

import { HvError } from '../errors.js';
import { backupIdTime, manifestKey, type BackupRef } from '../manifest/layout.js';
import { decodeManifest } from '../manifest/schema.js';
import type { ObjectStore } from '../repository/store.js';
import { listBackups, type CatalogEntry } from '../restore/catalog.js';
import { loadTrustedManifest } from '../restore/manifest-check.js';
import { selectKept, type PolicyBackup, type RetentionPolicy } from './policy.js';

export interface PruneSelection {
  /** Only backups taken by this host. */
  host?: string;
  /** Only these domains; empty or missing means every domain. */
  domains?: string[];
}

export interface PlanOptions extends PruneSelection {
  policy: RetentionPolicy;
  /** Milliseconds after its newest object before an unfinished backup is removed. */
  unfinishedGraceMs: number;
  now: Date;
  /** Pinned host keys. When given, every manifest's signature is verified before it counts. */
  trustedKeys?: PublicKey[];
}

export interface PlannedRemoval extends BackupRef {
  reason: 'policy' | 'unfinished';
  /** Bytes and objects under the backup's prefix when the plan was made. */
  bytes: number;
  objects: number;
}

export interface KeptBackup extends BackupRef {
  reasons: string[];
}

export interface DomainPlan {
  host: string;
  domain: string;
  keep: KeptBackup[];
  remove: PlannedRemoval[];
  /** Kept incrementals whose parent is no longer in the repository. */
  missingParents: { backupId: string; parent: string }[];
  /** Committed backups kept because their manifest could not be read or verified. */
  unreadable: { backupId: string; error: string }[];
  /** Unfinished backups still inside the grace period. */
  unfinishedKept: string[];
}

/** Plans a prune of every selected host and domain, in host then domain order. */
export async function planPrune(store: ObjectStore, options: PlanOptions): Promise<DomainPlan[]> {
  const entries = (await listBackups(store, { host: options.host })).filter(
    (entry) => !options.domains || options.domains.length === 0 || options.domains.includes(entry.domain),
  );

  const groups = new Map<string, CatalogEntry[]>();
  for (const entry of entries) {
    const key = `${entry.host}/${entry.domain}`;
    const group = groups.get(key) ?? [];
    group.push(entry);
    groups.set(key, group);
  }

  const plans: DomainPlan[] = [];
  for (const key of [...groups.keys()].sort()) {
    plans.push(await planDomain(store, groups.get(key)!, options));
  }
  return plans;
}

async function planDomain(store: ObjectStore, entries: CatalogEntry[], options: PlanOptions): Promise<DomainPlan> {
  const { host, domain } = entries[0];
  const plan: DomainPlan = { host, domain, keep: [], remove: [], missingParents: [], unreadable: [], unfinishedKept: [] };

  const committed = entries.filter((entry) => entry.committed);
  const backups: PolicyBackup[] = [];
  for (const entry of committed) {
    try {
      const { type, parent } = await readTypeAndParent(store, entry, options.trustedKeys);
      backups.push({ id: entry.backupId, time: backupIdTime(entry.backupId), type, parent });
    } catch (error) {
      if (!(error instanceof HvError)) throw error;
      plan.unreadable.push({ backupId: entry.backupId, error: error.message });
      plan.keep.push({ host, domain, backupId: entry.backupId, reasons: ['manifest unreadable'] });
    }
  }

  if (backups.length > 0) {
    const decision = selectKept(backups, options.policy, options.now);
    for (const [backupId, reasons] of decision.keep) plan.keep.push({ host, domain, backupId, reasons });
    for (const backupId of decision.remove) {
      const entry = committed.find((candidate) => candidate.backupId === backupId)!;
      plan.remove.push({ host, domain, backupId, reason: 'policy', bytes: entry.bytes, objects: entry.objects });
    }
    plan.missingParents = decision.missingParents.map(({ id, parent }) => ({ backupId: id, parent }));
  }

  // A backup still being written has no manifest either, so only prefixes
  // that stopped changing longer ago than the grace period count as abandoned.
  const cutoff = options.now.getTime() - options.unfinishedGraceMs;
  for (const entry of entries.filter((candidate) => !candidate.committed)) {
    if (entry.lastModified.getTime() <= cutoff) {
      plan.remove.push({ host, domain, backupId: entry.backupId, reason: 'unfinished', bytes: entry.bytes, objects: entry.objects });
    } else {
      plan.unfinishedKept.push(entry.backupId);
    }
  }

  plan.keep.sort((a, b) => b.backupId.localeCompare(a.backupId));
  plan.remove.sort((a, b) => b.backupId.localeCompare(a.backupId));
  return plan;
}

async function readTypeAndParent(
  store: ObjectStore,
  ref: BackupRef,
  trustedKeys: PublicKey[] | undefined,
): Promise<{ type: 'full' | 'incremental'; parent: string | null }> {
  if (trustedKeys) {
    const { manifest } = await loadTrustedManifest(store, ref, trustedKeys);
    return { type: manifest.type, parent: manifest.parent };
  }
  const key = manifestKey(ref);
  const manifest = decodeManifest(await store.get(key), key);
  return { type: manifest.type, parent: manifest.parent };
}
