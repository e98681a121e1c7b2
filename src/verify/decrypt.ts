/**
 * `verify --decrypt`: everything a restore checks, without writing a disk.
 * Each segment is hash-checked, decrypted and its inner signature verified,
 * the tar stream is parsed strictly against the manifest, and each disk's
 * SHA-256 over its stored bytes is compared with the checksums entry. Disk
 * data is hashed and dropped, so this needs no staging space.
 */
import type { PublicKey } from 'openpgp';

import { readArchive } from '../archive/reader.js';
import { keyInfo, SegmentDecryptor } from '../crypto/index.js';
import { ArchiveError, VerificationError } from '../errors.js';
import { manifestKey, type BackupRef } from '../manifest/layout.js';
import type { ObjectStore } from '../repository/store.js';
import type { Decryption } from '../restore/decryption.js';
import { extractBackup, type DiskWriter } from '../restore/extract.js';
import { loadTrustedManifest } from '../restore/manifest-check.js';
import { createSegmentBuffers, readSegments } from '../restore/segment-source.js';
import { failureOf, type CheckFailure } from './verify.js';

const discard: DiskWriter = {
  write: async () => undefined,
  writeZeroes: async () => undefined,
};

export interface DecryptCheckOptions {
  decryption: Decryption;
  workers?: number;
  readAhead: number;
  signal: AbortSignal;
}

/** Returns the failures found by decrypting one backup completely; an empty list means it restores. */
export async function checkDecrypted(
  store: ObjectStore,
  ref: BackupRef,
  trustedKeys: PublicKey[],
  options: DecryptCheckOptions,
): Promise<CheckFailure[]> {
  const object = manifestKey(ref);
  let decryptor: SegmentDecryptor | undefined;
  try {
    const { manifest } = await loadTrustedManifest(store, ref, trustedKeys);
    if (!manifest.encryption.recipients.some((fingerprint) => options.decryption.adminFingerprints.includes(fingerprint))) {
      return [{ check: 'manifest-recipients', object, message: `not encrypted to ${options.decryption.adminFingerprints.join(', ')}` }];
    }

    decryptor = await SegmentDecryptor.create({
      decryptionKeys: options.decryption.decryptionKeys,
      sessionKeys: options.decryption.sessionKeyFor !== undefined,
      verificationKeys: trustedKeys,
      workers: options.workers,
    });
    const buffers = createSegmentBuffers(manifest.segments, options.readAhead);
    const plaintext = readSegments({
      store,
      decryptor,
      ref,
      segments: manifest.segments,
      trustedSigners: trustedKeys.map((key) => keyInfo(key).fingerprint),
      readAhead: options.readAhead,
      buffers,
      signal: options.signal,
      sessionKeyFor: options.decryption.sessionKeyFor,
    });
    await extractBackup(readArchive(plaintext), { manifest, openDisk: async () => discard, memory: buffers });
    return [];
  } catch (error) {
    if (error instanceof VerificationError) return [failureOf(error, object)];
    if (error instanceof ArchiveError) return [{ check: 'archive-syntax', object, message: error.message }];
    throw error;
  } finally {
    await decryptor?.close();
  }
}
