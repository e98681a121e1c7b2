/**
 * Streams of slices between whole segment buffers and openpgp.js. Given a
 * whole 16 MiB array at once, openpgp.js keeps about seven copies of it while
 * it works. Given 1 MiB slices, it keeps only a few slices (bench/notes.md has
 * the measurements).
 */
import type { Hash } from 'node:crypto';
import { ReadableStream } from 'node:stream/web';

import { YoungGarbagePacer } from './young-garbage.js';

const SLICE_BYTES = 1024 * 1024;

/**
 * Calls `visit` with each chunk of `stream`, in order, until the stream ends.
 * A young-generation collection runs every 2 MiB, because openpgp.js leaves
 * short-lived copies behind for each chunk.
 */
export async function forEachChunk(stream: ReadableStream<Uint8Array>, visit: (chunk: Uint8Array) => void): Promise<void> {
  const garbage = new YoungGarbagePacer();

  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    visit(value);
    garbage.add(value.byteLength);
  }
}

/**
 * Reads a stream into `buffer`, from its start, updating `hash` when given.
 * A stream that does not fit moves to a new buffer twice as large. Returns
 * the filled part.
 */
export async function collectStream(stream: ReadableStream<Uint8Array>, buffer: Uint8Array, hash?: Hash): Promise<Uint8Array> {
  const collected = new GrowingBuffer(buffer);
  await forEachChunk(stream, (chunk) => {
    collected.write(chunk);
    hash?.update(chunk);
  });
  return collected.bytes();
}

/** A byte buffer for appending, which moves to one twice as large when new bytes do not fit. */
export class GrowingBuffer {
  length = 0;

  constructor(private buffer: Uint8Array) {}

  write(bytes: Uint8Array): void {
    if (this.length + bytes.byteLength > this.buffer.byteLength) {
      const grown = new Uint8Array(Math.max(2 * this.buffer.byteLength, this.length + bytes.byteLength));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(bytes, this.length);
    this.length += bytes.byteLength;
  }

  /** Returns the bytes written so far, as a view of the current buffer. */
  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }
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
