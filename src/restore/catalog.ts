/**
 * Finding backups in a repository: every committed backup has a manifest, so
 * the catalog is the list of manifest keys. Prefixes without a manifest are
 * unfinished backups and are listed separately, for prune and verify.
 */
import { backupIdTime, isBackupId, MANIFEST_NAME, manifestKey, parseBackupKey, type BackupRef } from '../manifest/layout.js';
import type { ObjectStore } from '../repository/store.js';
import { UsageError } from '../errors.js';

export interface CatalogEntry extends BackupRef {
  /** Bytes of every object under the backup's prefix. */
  bytes: number;
  objects: number;
  committed: boolean;
  lastModified: Date;
}

/** Lists the backups under hosts/ (optionally one host or domain), oldest first. */
export async function listBackups(
  store: ObjectStore,
  filter: { host?: string; domain?: string } = {},
): Promise<CatalogEntry[]> {
  const prefix = filter.host ? `hosts/${filter.host}/domains/${filter.domain ? `${filter.domain}/` : ''}` : 'hosts/';
  const entries = new Map<string, CatalogEntry>();

  for await (const object of store.list(prefix)) {
    const parsed = parseBackupKey(object.key);
    if (!parsed) continue;
    if (filter.domain && parsed.domain !== filter.domain) continue;

    const id = `${parsed.host}/${parsed.domain}/${parsed.backupId}`;
    let entry = entries.get(id);
    if (!entry) {
      entry = { host: parsed.host, domain: parsed.domain, backupId: parsed.backupId, bytes: 0, objects: 0, committed: false, lastModified: object.lastModified };
      entries.set(id, entry);
    }
    entry.bytes += object.size;
    entry.objects += 1;
    if (object.lastModified > entry.lastModified) entry.lastModified = object.lastModified;
    if (parsed.rest === MANIFEST_NAME) entry.committed = true;
  }

  return [...entries.values()].sort((a, b) => a.backupId.localeCompare(b.backupId));
}

/**
 * Returns the newest committed backup of one domain, or undefined when it
 * has none. It lists only the backup directories (one delimiter listing on
 * S3) and looks for manifests newest first, instead of listing every segment
 * of every backup as listBackups does.
 */
export async function latestCommittedBackup(store: ObjectStore, host: string, domain: string): Promise<BackupRef | undefined> {
  const backupIds: string[] = [];
  for await (const name of store.listDirectories(`hosts/${host}/domains/${domain}/`)) {
    if (isBackupId(name)) backupIds.push(name);
  }
  backupIds.sort((a, b) => b.localeCompare(a));

  for (const backupId of backupIds) {
    const ref = { host, domain, backupId };
    if (await store.head(manifestKey(ref))) return ref;
  }
  return undefined;
}

/**
 * Resolves what the user typed: a backup id, or a domain name meaning its
 * latest committed backup. Ambiguity (the same domain name on two hosts) is
 * an error that lists the candidates.
 */
export async function resolveBackup(store: ObjectStore, selector: string, options: { host?: string; at?: Date } = {}): Promise<BackupRef> {
  const committed = (await listBackups(store, { host: options.host })).filter((entry) => entry.committed);

  if (isBackupId(selector)) {
    const matches = committed.filter((entry) => entry.backupId === selector);
    if (matches.length === 1) return matches[0];
    if (matches.length === 0) {
      throw new UsageError(`backup ${selector} not found in ${store.description}`, {
        hint: 'run `hvbackup list` to see the backups; an unfinished backup (no manifest) cannot be restored',
      });
    }
    throw new UsageError(`backup id ${selector} exists on several hosts: ${matches.map((m) => m.host).join(', ')}`, {
      hint: 'pass --host NAME to choose one',
    });
  }

  const all = committed.filter((entry) => entry.domain === selector);
  const at = options.at;
  const ofDomain = at ? all.filter((entry) => backupIdTime(entry.backupId) <= at) : all;
  if (at && all.length > 0 && ofDomain.length === 0) {
    throw new UsageError(`no backup of domain ${selector} was started at or before ${at.toISOString()}`, {
      hint: `the oldest is ${all[0].backupId}; run \`hvbackup list ${selector}\``,
    });
  }
  if (ofDomain.length === 0) {
    throw new UsageError(`no committed backup of domain ${selector} in ${store.description}`, {
      hint: 'run `hvbackup list` to see the backups, or pass a backup id',
    });
  }
  const hosts = new Set(ofDomain.map((entry) => entry.host));
  if (hosts.size > 1) {
    throw new UsageError(`domain ${selector} has backups from several hosts: ${[...hosts].join(', ')}`, {
      hint: 'pass --host NAME to choose one',
    });
  }
  return ofDomain[ofDomain.length - 1];
}
