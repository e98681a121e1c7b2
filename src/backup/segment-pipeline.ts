/**
 * The back half of a backup: cut the tar stream into segments, encrypt each
 * in a worker thread, hash the ciphertext and upload it. Segments are
 * processed out of order but recorded in order. At most `inFlight` segments
 * (plaintext and ciphertext) are held at once, which bounds memory to about
 * inFlight × 2 × segmentSize.
 */
import { createHash } from 'node:crypto';

import PQueue from 'p-queue';

import type { SegmentEncryptor } from '../crypto/index.js';
import { segmentKey, segmentName, type BackupRef } from '../manifest/layout.js';
import type { ManifestSegment } from '../manifest/schema.js';
import type { ObjectStore, PutOptions } from '../repository/store.js';
import { splitIntoSegments } from '../segment/splitter.js';
import type { RateLimiter } from '../util/rate-limiter.js';

export interface SegmentPipelineOptions {
  store: ObjectStore;
  encryptor: SegmentEncryptor;
  ref: BackupRef;
  segmentSize: number;
  inFlight: number;
  signal: AbortSignal;
  retention?: PutOptions['retention'];
  /** Paces uploads to the configured bandwidth limit. */
  limiter?: RateLimiter;
  onSegment?: (segment: ManifestSegment) => void;
}

export interface SegmentPipelineResult {
  segments: ManifestSegment[];
  archiveBytes: number;
  storedBytes: number;
}

export async function uploadSegments(
  tar: AsyncIterable<Uint8Array>,
  options: SegmentPipelineOptions,
): Promise<SegmentPipelineResult> {
  const queue = new PQueue({ concurrency: options.inFlight });
  const segments: ManifestSegment[] = [];
  let archiveBytes = 0;
  let storedBytes = 0;
  let failure: unknown;

  const processSegment = async (index: number, plaintext: Buffer) => {
    const name = segmentName(index);
    const plainSize = plaintext.length;
    // Transfer moves the buffer to the worker instead of copying it; plaintext is unusable afterwards.
    const ciphertext = await options.encryptor.encrypt(plaintext, { transfer: true });
    options.signal.throwIfAborted();

    const record: ManifestSegment = {
      name,
      size: ciphertext.byteLength,
      sha256: createHash('sha256').update(ciphertext).digest('hex'),
      plainSize,
    };
    await options.limiter?.take(ciphertext.byteLength, options.signal);
    await options.store.put(segmentKey(options.ref, name), ciphertext, {
      ifNoneMatch: true,
      contentType: 'application/pgp-encrypted',
      signal: options.signal,
      retention: options.retention,
    });
    segments[index] = record;
    storedBytes += record.size;
    options.onSegment?.(record);
  };

  let index = 0;
  for await (const plaintext of splitIntoSegments(tar, options.segmentSize)) {
    if (failure !== undefined) break;
    options.signal.throwIfAborted();
    archiveBytes += plaintext.length;

    const current = index;
    index += 1;
    queue
      .add(() => processSegment(current, plaintext))
      .catch((error: unknown) => {
        failure ??= error;
        queue.clear();
      });

    // Backpressure: wait until the segment just added has started, so at most
    // inFlight segments are in work and one more is being filled by the splitter.
    await queue.onSizeLessThan(1);
  }

  await queue.onIdle();
  if (failure !== undefined) throw failure;
  return { segments, archiveBytes, storedBytes };
}
