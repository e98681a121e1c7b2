/**
 * Object keys of a repository. Every backup lives under its own prefix, so
 * listing one domain or deleting one backup touches nothing else:
 *
 *   hvbackup-repository.json
 *   keys/<FINGERPRINT>.asc
 *   hosts/<host>/domains/<domain>/<backup-id>/manifest.json
 *   hosts/<host>/domains/<domain>/<backup-id>/manifest.json.sig
 *   hosts/<host>/domains/<domain>/<backup-id>/segments/<NNNNNN>.pgp
 */
import { randomBytes } from 'node:crypto';

import { UsageError } from '../errors.js';

export const REPOSITORY_FILE = 'hvbackup-repository.json';
export const MANIFEST_NAME = 'manifest.json';
export const SIGNATURE_NAME = 'manifest.json.sig';

/** Backup ids sort by time: UTC timestamp, then random hex so two runs in one second differ. */
const BACKUP_ID = /^(\d{8}T\d{6}Z)-([0-9a-f]{6})$/;
/** Host and domain names: each becomes one path segment of an object key. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

export function newBackupId(now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

export function isBackupId(text: string): boolean {
  return BACKUP_ID.test(text);
}

/** Returns the time encoded in a backup id. */
export function backupIdTime(id: string): Date {
  const match = BACKUP_ID.exec(id);
  if (!match) throw new UsageError(`invalid backup id "${id}": expected the form 20261204T020000Z-a1b2c3`);
  const s = match[1];
  return new Date(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}Z`);
}

/** Rejects names that cannot be a path segment of the layout (domain and host names). */
export function checkName(kind: string, value: string): string {
  if (!NAME_PATTERN.test(value)) {
    throw new UsageError(`invalid ${kind} name "${value}": use letters, digits, ".", "_", "+" and "-", starting with a letter or digit`);
  }
  return value;
}

export interface BackupRef {
  host: string;
  domain: string;
  backupId: string;
}

export function backupPrefix(ref: BackupRef): string {
  return `hosts/${checkName('host', ref.host)}/domains/${checkName('domain', ref.domain)}/${ref.backupId}/`;
}

export function manifestKey(ref: BackupRef): string {
  return backupPrefix(ref) + MANIFEST_NAME;
}

export function signatureKey(ref: BackupRef): string {
  return backupPrefix(ref) + SIGNATURE_NAME;
}

export function segmentName(index: number): string {
  return `${String(index).padStart(6, '0')}.pgp`;
}

export function segmentKey(ref: BackupRef, name: string): string {
  return `${backupPrefix(ref)}segments/${name}`;
}

export function publicKeyKey(fingerprint: string): string {
  return `keys/${fingerprint}.asc`;
}

/** Splits a repository key inside hosts/ back into its parts, or returns undefined. */
export function parseBackupKey(key: string): (BackupRef & { rest: string }) | undefined {
  const match = /^hosts\/([^/]+)\/domains\/([^/]+)\/([^/]+)\/(.+)$/.exec(key);
  if (!match || !isBackupId(match[3])) return undefined;
  return { host: match[1], domain: match[2], backupId: match[3], rest: match[4] };
}
