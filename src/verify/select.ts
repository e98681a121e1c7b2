/** Turning verify's arguments into the committed backups to check, and checking them in turn. */
import type { PublicKey } from 'openpgp';

import { UsageError } from '../errors.js';
import type { BackupRef } from '../manifest/layout.js';
import type { ObjectStore } from '../repository/store.js';
import { listBackups, resolveBackup } from '../restore/catalog.js';
import { verifyBackup, type BackupVerification, type VerifyOptions } from './verify.js';

/**
 * Returns every committed backup with `all`, otherwise the backup each
 * selector names: a backup id, or a domain name meaning its latest backup.
 */
export async function selectBackups(store: ObjectStore, selectors: string[], options: { all: boolean; host?: string }): Promise<BackupRef[]> {
  if (options.all && selectors.length > 0) {
    throw new UsageError('pass either backup ids or --all, not both');
  }
  if (options.all) {
    return (await listBackups(store, { host: options.host })).filter((entry) => entry.committed);
  }
  if (selectors.length === 0) {
    throw new UsageError('no backup given', { hint: 'pass one or more backup ids or domain names, or --all' });
  }

  const refs: BackupRef[] = [];
  for (const selector of selectors) refs.push(await resolveBackup(store, selector, { host: options.host }));
  return refs;
}

/** Verifies the backups one after another, each with the ids of its domain's committed backups for the parent check. */
export async function verifyBackups(
  store: ObjectStore,
  refs: BackupRef[],
  trustedKeys: PublicKey[],
  options: Omit<VerifyOptions, 'committedIds'> & {
    /** Further checks of a backup, run after the key-less ones (verify --decrypt). */
    afterChecks?: (ref: BackupRef, result: BackupVerification) => Promise<void>;
    onResult?: (result: BackupVerification) => void;
  },
): Promise<BackupVerification[]> {
  const committed = (await listBackups(store)).filter((entry) => entry.committed);
  const results: BackupVerification[] = [];

  for (const ref of refs) {
    options.signal?.throwIfAborted();
    const committedIds = new Set(
      committed.filter((entry) => entry.host === ref.host && entry.domain === ref.domain).map((entry) => entry.backupId),
    );
    const result = await verifyBackup(store, ref, trustedKeys, { ...options, committedIds });
    await options.afterChecks?.(ref, result);
    results.push(result);
    options.onResult?.(result);
  }
  return results;
}
