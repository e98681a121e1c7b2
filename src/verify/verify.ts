/**
 * Checking committed backups without any decryption key: the manifest's
 * signature against the pinned host keys, then every segment the manifest
 * lists. By default a segment counts as present when an object of the
 * recorded size exists (one HEAD request each). With `readData` every
 * segment is downloaded and its SHA-256 compared with the manifest, which
 * also catches a changed byte that leaves the size alone.
 *
 * An incremental is also checked for its parent: a committed backup with
 * that id must exist for the same host and domain, or the chain cannot be
 * restored.
 *
 * With an admin key, src/verify/decrypt.ts goes on to decrypt every segment
 * and check what restore checks, without writing a disk.
 */
import type { PublicKey } from 'openpgp';
import PQueue from 'p-queue';

import { NotFoundError, VerificationError } from '../errors.js';
import { manifestKey, segmentKey, type BackupRef } from '../manifest/layout.js';
import type { Manifest, ManifestSegment } from '../manifest/schema.js';
import type { ObjectStore } from '../repository/store.js';
import { loadTrustedManifest } from '../restore/manifest-check.js';
import type { Progress } from '../log/progress.js';
import { fetchVerifiedSegment } from '../restore/segment-source.js';

export interface VerifyOptions {
  /** Download every segment and check its SHA-256, not only its size. */
  readData: boolean;
  /** Segment requests in flight. */
  concurrency: number;
  /** Ids of the committed backups of the same host and domain, for the parent check. */
  committedIds?: Set<string>;
  signal?: AbortSignal;
  /** Progress bar of the segment bytes checked, on a terminal. */
  progress?: Progress;
}

export interface CheckFailure {
  /** Name of the failed check, as in VerificationError: manifest-signature, segment-present, segment-size, segment-hash, parent-present. */
  check: string;
  /** Repository key of the object that failed. */
  object: string;
  message: string;
}

export interface BackupVerification extends BackupRef {
  ok: boolean;
  /** Segments the manifest lists (0 when the manifest failed). */
  segments: number;
  /** Ciphertext bytes the manifest lists. */
  bytes: number;
  readData: boolean;
  /** True when every segment was also decrypted and checked as restore would (verify --decrypt). */
  decrypted?: boolean;
  signer?: string;
  failures: CheckFailure[];
}

/** Verifies one committed backup and returns every failed check; throws only when the store itself fails. */
export async function verifyBackup(
  store: ObjectStore,
  ref: BackupRef,
  trustedKeys: PublicKey[],
  options: VerifyOptions,
): Promise<BackupVerification> {
  const result: BackupVerification = { ...pick(ref), ok: false, segments: 0, bytes: 0, readData: options.readData, failures: [] };

  let manifest: Manifest;
  try {
    const trusted = await loadTrustedManifest(store, ref, trustedKeys);
    manifest = trusted.manifest;
    result.signer = trusted.signerFingerprint;
  } catch (error) {
    result.failures.push(failureOf(error, manifestKey(ref)));
    return result;
  }

  result.segments = manifest.segments.length;
  result.bytes = manifest.segments.reduce((sum, segment) => sum + segment.size, 0);

  if (manifest.type === 'incremental' && options.committedIds && (manifest.parent === null || !options.committedIds.has(manifest.parent))) {
    result.failures.push({
      check: 'parent-present',
      object: manifest.parent === null ? manifestKey(ref) : manifestKey({ ...ref, backupId: manifest.parent }),
      message: manifest.parent === null ? 'incremental backup names no parent' : `parent backup ${manifest.parent} is not a committed backup in the repository`,
    });
  }

  const queue = new PQueue({ concurrency: options.concurrency });
  const task = options.progress?.start(`verify ${ref.domain} ${ref.backupId}`, result.bytes);
  const segmentFailures: (CheckFailure | undefined)[] = await Promise.all(
    manifest.segments.map((segment) =>
      queue.add(async () => {
        const failure = await checkSegment(store, ref, segment, options);
        task?.advance(segment.size);
        return failure;
      }),
    ),
  );
  task?.finish();
  for (const failure of segmentFailures) if (failure) result.failures.push(failure);

  result.ok = result.failures.length === 0;
  return result;
}

async function checkSegment(store: ObjectStore, ref: BackupRef, segment: ManifestSegment, options: VerifyOptions): Promise<CheckFailure | undefined> {
  options.signal?.throwIfAborted();
  const key = segmentKey(ref, segment.name);

  if (options.readData) {
    try {
      await fetchVerifiedSegment(store, ref, segment, options.signal);
      return undefined;
    } catch (error) {
      if (error instanceof VerificationError) return failureOf(error, key);
      throw error;
    }
  }

  const info = await store.head(key);
  if (info === undefined) return { check: 'segment-present', object: key, message: 'the segment listed in the manifest is missing' };
  if (info.size !== segment.size) return { check: 'segment-size', object: key, message: `${info.size} bytes, the manifest says ${segment.size}` };
  return undefined;
}

/** Turns the errors a manifest check raises into a failure entry; anything else is a store fault and is raised again. */
/** Converts a check's error into a failure entry; errors that are not check results are rethrown. */
export function failureOf(error: unknown, key: string): CheckFailure {
  if (error instanceof VerificationError) {
    // The error's message starts with "<check> failed for <object>: ", which the entry already carries.
    const prefix = `${error.check} failed for ${error.object}: `;
    const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
    return { check: error.check, object: error.object, message };
  }
  if (error instanceof NotFoundError) {
    return { check: 'manifest-present', object: key, message: 'the manifest disappeared while verify ran' };
  }
  throw error;
}

function pick(ref: BackupRef): BackupRef {
  return { host: ref.host, domain: ref.domain, backupId: ref.backupId };
}
