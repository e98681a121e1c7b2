/**
 * The back half of a backup: cut the tar stream into segments, encrypt and
 * hash each in a worker thread, and upload it. Segments are processed out of
 * order but recorded in order.
 *
 * Memory is bounded by one pool of segment buffers that go round: one is
 * filled while the others are encrypted or uploading, inFlight + 1 in all,
 * whatever the disk size. Each buffer keeps room before and after the
 * plaintext, so that a SEIPD v1 segment is encrypted where it lies and the
 * same buffer is uploaded (seipd-writer.ts).
 */
import PQueue from 'p-queue';

import { SEGMENT_HEADROOM_BYTES, SEGMENT_TAILROOM_BYTES, type SegmentEncryptor } from '../crypto/index.js';
import { segmentKey, segmentName, type BackupRef } from '../manifest/layout.js';
import type { ManifestSegment } from '../manifest/schema.js';
import type { ObjectStore, PutOptions } from '../repository/store.js';
import { BufferPool } from '../segment/buffer-pool.js';
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
  const pool = new BufferPool(SEGMENT_HEADROOM_BYTES + options.segmentSize + SEGMENT_TAILROOM_BYTES, options.inFlight + 1);
  const segments: ManifestSegment[] = [];
  let archiveBytes = 0;
  let storedBytes = 0;
  let failure: unknown;
  // A failed segment keeps its buffers, so the splitter could wait for one
  // forever: the first failure also aborts every wait on the pools.
  const failed = new AbortController();
  const poolSignal = AbortSignal.any([options.signal, failed.signal]);
  const takeSegmentBuffer = async () => (await pool.take(poolSignal)).subarray(SEGMENT_HEADROOM_BYTES, SEGMENT_HEADROOM_BYTES + options.segmentSize);

  const processSegment = async (index: number, plaintext: Buffer) => {
    const name = segmentName(index);
    const plainSize = plaintext.length;
    // Transfer moves the whole pool buffer to the worker instead of copying
    // it; the segment is encrypted in it, and `plaintext` is unusable afterwards.
    const encrypted = await options.encryptor.encrypt(plaintext, { transfer: true });
    options.signal.throwIfAborted();
    const { ciphertext, sha256 } = encrypted;

    const record: ManifestSegment = { name, size: ciphertext.byteLength, sha256, plainSize };
    await options.limiter?.take(ciphertext.byteLength, options.signal);
    await options.store.put(segmentKey(options.ref, name), ciphertext, {
      ifNoneMatch: true,
      contentType: 'application/pgp-encrypted',
      signal: options.signal,
      retention: options.retention,
      sha256,
    });
    pool.give(encrypted.buffer);
    segments[index] = record;
    storedBytes += record.size;
    options.onSegment?.(record);
  };

  let index = 0;
  try {
    for await (const plaintext of splitIntoSegments(tar, options.segmentSize, takeSegmentBuffer)) {
      if (failure !== undefined) break;
      options.signal.throwIfAborted();
      archiveBytes += plaintext.length;

      const current = index;
      index += 1;
      queue
        .add(() => processSegment(current, plaintext))
        .catch((error: unknown) => {
          failure ??= error;
          failed.abort(error);
          queue.clear();
        });

      // Backpressure: wait until the segment just added has started, so at most
      // inFlight segments are in work and one more is being filled by the splitter.
      await queue.onSizeLessThan(1);
    }
  } catch (error) {
    // A wait on a pool that the first failure ended: report that failure.
    if (failure === undefined) throw error;
  }

  await queue.onIdle();
  if (failure !== undefined) throw failure;
  return { segments, archiveBytes, storedBytes };
}
