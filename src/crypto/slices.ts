/**
 * Streams of slices between whole segment buffers and openpgp.js. Given a
 * whole 16 MiB array at once, openpgp.js keeps about seven copies of it while
 * it works; given 1 MiB slices, it keeps only a few slices (bench/notes.md has
 * the measurements).
 */
import type { Hash } from 'node:crypto';
import { ReadableStream } from 'node:stream/web';

import { collectYoungGarbage } from './young-garbage.js';

const SLICE_BYTES = 1024 * 1024;

/** Output bytes between two young-generation collections; see young-garbage.ts. */
const COLLECT_EVERY_BYTES = 2 * 1024 * 1024;

/**
 * Reads a stream into `buffer`, from its start, updating `hash` when given.
 * A stream that does not fit moves to a new buffer twice as large. Returns
 * the filled part.
 */
export async function collectStream(stream: ReadableStream<Uint8Array>, buffer: Uint8Array, hash?: Hash): Promise<Uint8Array> {
  let length = 0;
  let sinceCollection = 0;

  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;

    if (length + value.byteLength > buffer.byteLength) {
      const grown = new Uint8Array(Math.max(2 * buffer.byteLength, length + value.byteLength));
      grown.set(buffer.subarray(0, length));
      buffer = grown;
    }
    buffer.set(value, length);
    length += value.byteLength;
    hash?.update(value);

    sinceCollection += value.byteLength;
    if (sinceCollection >= COLLECT_EVERY_BYTES) {
      sinceCollection = 0;
      collectYoungGarbage();
    }
  }

  return buffer.subarray(0, length);
}

/** Offers `bytes` to openpgp.js in slices; the slices are views, not copies. */
export function sliced(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (let offset = 0; offset < bytes.byteLength; offset += SLICE_BYTES) {
        controller.enqueue(bytes.subarray(offset, offset + SLICE_BYTES));
      }
      controller.close();
    },
  });
}
