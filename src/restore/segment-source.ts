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
import { largestSize, SegmentBufferPool } from './segment-buffers.js';

export interface SegmentSourceOptions {
  store: ObjectStore;
  decryptor: SegmentDecryptor;
  ref: BackupRef;
  segments: ManifestSegment[];
  /** Fingerprints that may sign segment contents. */
  trustedSigners: string[];
  /** Segments downloaded ahead of the consumer. */
  readAhead: number;
  /** Download buffers, from createSegmentBuffers() with the same segments and readAhead. */
  buffers: SegmentBufferPool;
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

/**
 * Returns the download buffers for reading `segments` with `readAhead`:
 * one buffer per segment in flight, one for the segment the consumer reads,
 * and one for the segment before it (see readSegments).
 */
export function createSegmentBuffers(segments: ManifestSegment[], readAhead: number): SegmentBufferPool {
  return new SegmentBufferPool(largestSize(segments.map((segment) => segment.size)), readAhead + 2);
}

/**
 * Downloads one segment and checks it against its manifest record. With
 * `target`, which must be exactly `segment.size` bytes, the segment is read
 * into it and the result is `target`; without it, into a new buffer.
 */
export async function fetchVerifiedSegment(
  store: ObjectStore,
  ref: BackupRef,
  segment: ManifestSegment,
  signal?: AbortSignal,
  target?: Buffer,
): Promise<Uint8Array> {
  const key = segmentKey(ref, segment.name);
  let ciphertext: Buffer;
  let size: number;
  try {
    if (target === undefined) {
      ciphertext = await store.get(key, { signal });
      size = ciphertext.length;
    } else {
      ciphertext = target;
      size = await store.getInto(key, target, { signal });
    }
  } catch (error) {
    if (error instanceof NotFoundError) {
      throw new VerificationError('segment-present', key, 'the segment listed in the manifest is missing');
    }
    throw error;
  }

  if (size !== segment.size || ciphertext.length !== segment.size) {
    throw new VerificationError('segment-size', key, `${size} bytes, the manifest says ${segment.size}`);
  }
  const digest = createHash('sha256').update(ciphertext).digest('hex');
  if (digest !== segment.sha256) {
    throw new VerificationError('segment-hash', key, `SHA-256 ${digest} differs from the manifest's ${segment.sha256}`);
  }
  return ciphertext;
}

/**
 * Yields the decrypted, verified plaintext of every segment, in manifest
 * order. Each plaintext is a view of a buffer from `options.buffers`.
 *
 * Ownership: the consumer may read a plaintext, and views of it, until it
 * requests the segment after the next one. The generator then releases the
 * buffer, and a later download may overwrite it. A consumer that keeps a
 * view longer, such as a disk write still in flight, must retain() it and
 * release() it when done.
 */
export async function* readSegments(options: SegmentSourceOptions): AsyncGenerator<Uint8Array> {
  const { segments, buffers } = options;
  const decrypted: Promise<Uint8Array>[] = [];
  // The plaintext being consumed, after the one before it while that may still be read.
  const unreleased: Uint8Array[] = [];
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

  try {
    schedule();
    while (decrypted.length > 0) {
      // A read that straddles two segments (a tar header, a PAX record) can
      // still use the previous one, so only the one before that goes back.
      while (unreleased.length > 1) buffers.release(unreleased.shift()!);

      const plaintext = await decrypted.shift()!;
      unreleased.push(plaintext);
      schedule();
      yield plaintext;
    }
  } finally {
    for (const plaintext of unreleased) buffers.release(plaintext);
    // Segments still downloading when the consumer stops go back once they finish.
    for (const work of decrypted) work.then((plaintext) => buffers.release(plaintext), () => undefined);
  }
}

async function decryptSegment(options: SegmentSourceOptions, segment: ManifestSegment): Promise<Uint8Array> {
  options.signal.throwIfAborted();
  const key = segmentKey(options.ref, segment.name);
  await options.limiter?.take(segment.size, options.signal);
  const buffer = await options.buffers.acquire(segment.size, options.signal);

  let plaintext: Uint8Array;
  let signerFingerprint: string;
  try {
    const ciphertext = await fetchVerifiedSegment(options.store, options.ref, segment, options.signal, buffer);
    const sessionKey = options.sessionKeyFor ? await options.sessionKeyFor(ciphertext, key) : undefined;
    ({ plaintext, signerFingerprint } = await options.decryptor.decrypt(ciphertext, key, { transfer: true, wholeBuffer: true, sessionKey }));
  } catch (error) {
    // After a failed move to a worker the buffer is detached, and the pool drops it.
    options.buffers.release(buffer);
    throw error;
  }
  options.buffers.moved(buffer, plaintext);

  try {
    if (!options.trustedSigners.includes(signerFingerprint)) {
      throw new VerificationError('segment-signature', key, `signed by ${signerFingerprint}, which is not a pinned host key`);
    }
    if (plaintext.byteLength !== segment.plainSize) {
      throw new VerificationError('segment-plaintext-size', key, `${plaintext.byteLength} bytes, the manifest says ${segment.plainSize}`);
    }
  } catch (error) {
    options.buffers.release(plaintext);
    throw error;
  }
  options.onSegment?.(segment);
  return plaintext;
}
