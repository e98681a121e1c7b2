/**
 * Segment-sized download buffers of one restore, reused from segment to
 * segment. A fresh 16 MiB buffer per segment left dead buffers for V8 to
 * collect and fragmented glibc's heap once its mmap threshold had risen, so
 * the restore's peak RSS grew with the size of the backup.
 *
 * A buffer goes back to the free list only when every holder has released
 * it. Holders are counted per ArrayBuffer, so any view of a pooled buffer
 * (the plaintext, a tar data chunk, an NBD write payload) can retain and
 * release it. Views of other memory are ignored, which lets consumers call
 * retain() and release() on every chunk without knowing where it came from.
 */

import { WaitQueue } from '../util/wait-queue.js';

/** Holders of segment memory; both calls ignore views of memory that is not pooled. */
export interface SegmentMemory {
  /** Adds a holder to the buffer behind `view`, so it cannot be reused until release(). */
  retain(view: Uint8Array): void;
  /** Drops one holder. With `reusable` false (a failed write that may still read it) the buffer is never reused. */
  release(view: Uint8Array, options?: { reusable?: boolean }): void;
}

interface Holding {
  holders: number;
  reusable: boolean;
}

export class SegmentBufferPool implements SegmentMemory {
  /** Bytes of each reusable buffer. A smaller request gets a view of one; a larger one gets a buffer that is dropped after use. */
  readonly bufferBytes: number;
  /**
   * Maximum number of buffers out at once, reusable or not. Free buffers
   * are not counted, so while buffers of other sizes are out, more than
   * this many exist.
   */
  readonly maxBuffers: number;

  private readonly free: Buffer[] = [];
  private readonly holdings = new Map<ArrayBufferLike, Holding>();
  /** Callers waiting for a buffer, each with the byte length it asked for. */
  private readonly waiting = new WaitQueue<number, Buffer>();
  private outstanding = 0;

  constructor(bufferBytes: number, maxBuffers: number) {
    if (!Number.isSafeInteger(bufferBytes) || bufferBytes <= 0) throw new RangeError(`segment buffer size must be a positive whole number of bytes, got ${bufferBytes}`);
    if (!Number.isSafeInteger(maxBuffers) || maxBuffers <= 0) throw new RangeError(`segment buffer count must be a positive whole number, got ${maxBuffers}`);
    this.bufferBytes = bufferBytes;
    this.maxBuffers = maxBuffers;
  }

  /** Buffers acquired and not yet given back. */
  get inUse(): number {
    return this.outstanding;
  }

  /** Buffers allocated so far that are free for reuse. */
  get idle(): number {
    return this.free.length;
  }

  /**
   * Returns a buffer of exactly `byteLength` bytes, with the caller as its
   * one holder: a view of the start of a pooled buffer, or a buffer of its
   * own when the request is larger. The caller owns the whole ArrayBuffer,
   * so it can move it to a worker. Waits, in request order, while
   * `maxBuffers` buffers are out.
   */
  acquire(byteLength: number, signal?: AbortSignal): Promise<Buffer> {
    signal?.throwIfAborted();
    if (this.outstanding < this.maxBuffers && this.waiting.length === 0) {
      return Promise.resolve(this.hand(byteLength));
    }
    return this.waiting.wait(byteLength, signal);
  }

  /**
   * Records that the memory of `from` now lives in `to`: a buffer moved to a
   * worker and back is a new ArrayBuffer over the same memory, and a worker
   * may also reply with a buffer of its own. The holders carry over.
   */
  moved(from: Uint8Array, to: Uint8Array): void {
    const holding = this.holdings.get(from.buffer);
    if (holding === undefined || from.buffer === to.buffer) return;
    this.holdings.delete(from.buffer);
    this.holdings.set(to.buffer, holding);
  }

  retain(view: Uint8Array): void {
    const holding = this.holdings.get(view.buffer);
    if (holding !== undefined) holding.holders += 1;
  }

  release(view: Uint8Array, options: { reusable?: boolean } = {}): void {
    const buffer = view.buffer;
    const holding = this.holdings.get(buffer);
    if (holding === undefined) return;
    if (options.reusable === false) holding.reusable = false;

    holding.holders -= 1;
    if (holding.holders > 0) return;

    this.holdings.delete(buffer);
    this.outstanding -= 1;
    // A detached buffer (moved to a worker that failed) and one of another size are not reused.
    if (holding.reusable && buffer instanceof ArrayBuffer && buffer.byteLength === this.bufferBytes) {
      this.free.push(Buffer.from(buffer));
    }
    this.serveWaiters();
  }

  private serveWaiters(): void {
    let served = true;
    while (served && this.outstanding < this.maxBuffers) {
      served = this.waiting.serveNext((byteLength) => this.hand(byteLength));
    }
  }

  private hand(byteLength: number): Buffer {
    this.outstanding += 1;
    if (byteLength > this.bufferBytes) {
      const own = Buffer.allocUnsafeSlow(byteLength);
      this.holdings.set(own.buffer, { holders: 1, reusable: true });
      return own;
    }

    // Shorter segments (the last one, or one whose signature has a shorter
    // MPI) use the start of a pooled buffer, so that no odd-sized buffer
    // comes from the heap.
    const buffer = this.free.pop() ?? Buffer.allocUnsafeSlow(this.bufferBytes);
    this.holdings.set(buffer.buffer, { holders: 1, reusable: true });
    return buffer.subarray(0, byteLength);
  }
}

/**
 * Returns the largest of `sizes`, at least 1. Full segments of a backup
 * have one ciphertext size, or a byte less when an OpenPGP MPI in their
 * signature starts with a zero byte, and the last segment is shorter, so
 * buffers of the largest size serve every segment.
 */
export function largestSize(sizes: number[]): number {
  let largest = 1;
  for (const size of sizes) largest = Math.max(largest, size);
  return largest;
}
