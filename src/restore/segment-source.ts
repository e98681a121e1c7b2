/**
 * The front half of a restore: download segments in order with read-ahead,
 * check each ciphertext's size and SHA-256 against the signed manifest, and
 * only then decrypt it (in a worker) and check its inner signature. The
 * plaintext comes out in order, so the concatenation is the tar stream.
 *
 * Hashing before decrypting is what makes SEIPD v1 safe here: openpgp.js
 * may release unauthenticated plaintext or hang on a tampered message, and
 * a segment that matches the signed hash cannot be tampered.
 */
import { createHash } from 'node:crypto';

import type { SegmentDecryptor, SessionKey } from '../crypto/index.js';
import { NotFoundError, VerificationError } from '../errors.js';
import { segmentKey, type BackupRef } from '../manifest/layout.js';
import type { ManifestSegment } from '../manifest/schema.js';
import type { ObjectStore } from '../repository/store.js';
import type { RateLimiter } from '../util/rate-limiter.js';

export interface SegmentSourceOptions {
  store: ObjectStore;
  decryptor: SegmentDecryptor;
  ref: BackupRef;
  segments: ManifestSegment[];
  /** Fingerprints that may sign segment contents. */
  trustedSigners: string[];
  /** Segments downloaded ahead of the consumer. */
  readAhead: number;
  /** Paces downloads to the configured bandwidth limit. */
  limiter?: RateLimiter;
  signal: AbortSignal;
  /**
   * Returns the session key of a segment whose hash already matched (from
   * gpg-agent); without it the decryptor's own secret keys are used.
   */
  sessionKeyFor?: (ciphertext: Uint8Array, objectName: string) => Promise<SessionKey>;
  onSegment?: (segment: ManifestSegment) => void;
}

/** Downloads one segment and checks it against its manifest record. */
export async function fetchVerifiedSegment(
  store: ObjectStore,
  ref: BackupRef,
  segment: ManifestSegment,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const key = segmentKey(ref, segment.name);
  let ciphertext: Buffer;
  try {
    ciphertext = await store.get(key, { signal });
  } catch (error) {
    if (error instanceof NotFoundError) {
      throw new VerificationError('segment-present', key, 'the segment listed in the manifest is missing');
    }
    throw error;
  }

  if (ciphertext.length !== segment.size) {
    throw new VerificationError('segment-size', key, `${ciphertext.length} bytes, the manifest says ${segment.size}`);
  }
  const digest = createHash('sha256').update(ciphertext).digest('hex');
  if (digest !== segment.sha256) {
    throw new VerificationError('segment-hash', key, `SHA-256 ${digest} differs from the manifest's ${segment.sha256}`);
  }
  return ciphertext;
}

/** Yields the decrypted, verified plaintext of every segment, in manifest order. */
export async function* readSegments(options: SegmentSourceOptions): AsyncGenerator<Uint8Array> {
  const { segments } = options;
  const decrypted: Promise<Uint8Array>[] = [];
  let next = 0;

  const schedule = () => {
    while (next < segments.length && decrypted.length < options.readAhead) {
      const segment = segments[next];
      next += 1;
      const work = decryptSegment(options, segment);
      work.catch(() => undefined); // surfaced in order when awaited below
      decrypted.push(work);
    }
  };

  schedule();
  while (decrypted.length > 0) {
    const plaintext = await decrypted.shift()!;
    schedule();
    yield plaintext;
  }
}

async function decryptSegment(options: SegmentSourceOptions, segment: ManifestSegment): Promise<Uint8Array> {
  options.signal.throwIfAborted();
  const key = segmentKey(options.ref, segment.name);
  await options.limiter?.take(segment.size, options.signal);
  const ciphertext = await fetchVerifiedSegment(options.store, options.ref, segment, options.signal);
  const sessionKey = options.sessionKeyFor ? await options.sessionKeyFor(ciphertext, key) : undefined;
  const { plaintext, signerFingerprint } = await options.decryptor.decrypt(ciphertext, key, { transfer: true, sessionKey });

  if (!options.trustedSigners.includes(signerFingerprint)) {
    throw new VerificationError('segment-signature', key, `signed by ${signerFingerprint}, which is not a pinned host key`);
  }
  if (plaintext.byteLength !== segment.plainSize) {
    throw new VerificationError('segment-plaintext-size', key, `${plaintext.byteLength} bytes, the manifest says ${segment.plainSize}`);
  }
  options.onSegment?.(segment);
  return plaintext;
}
