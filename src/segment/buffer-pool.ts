/**
 * A bounded set of equal-size buffers that go round the backup pipeline:
 * the splitter fills one, a worker thread encrypts from it and hands it
 * back, and the next segment reuses it. Reusing them keeps segment-sized
 * garbage out of the heap, where it would stay until V8 decides to collect
 * it and raise peak RSS by several segments.
 *
 * The pool also bounds memory: take() waits while `count` buffers are out.
 */
import { WaitQueue } from '../util/wait-queue.js';

export class BufferPool {
  /** Bytes in each buffer. */
  readonly size: number;
  private readonly count: number;
  private readonly free: Buffer[] = [];
  private outstanding = 0;
  private readonly waiting = new WaitQueue<undefined, Buffer>();

  constructor(size: number, count: number) {
    if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`buffer pool size must be a positive whole number of bytes, got ${size}`);
    if (!Number.isSafeInteger(count) || count <= 0) throw new RangeError(`buffer pool count must be a positive whole number, got ${count}`);
    this.size = size;
    this.count = count;
  }

  /** Buffers taken and not yet given back or dropped. */
  get inUse(): number {
    return this.outstanding;
  }

  /**
   * Returns a buffer of exactly `size` bytes that owns its whole ArrayBuffer,
   * so it can be moved to a worker. Waits while all buffers are in use.
   */
  async take(signal?: AbortSignal): Promise<Buffer> {
    signal?.throwIfAborted();
    const reused = this.free.pop();
    if (reused !== undefined) {
      this.outstanding += 1;
      return reused;
    }
    if (this.outstanding < this.count) {
      this.outstanding += 1;
      return Buffer.allocUnsafeSlow(this.size);
    }

    return this.waiting.wait(undefined, signal);
  }

  /**
   * Gives back the memory behind `bytes`, which may be a view of it and may
   * have come back from a worker as a new object. A buffer smaller than
   * `size` (for example a copy) only frees its slot.
   */
  give(bytes: Uint8Array): void {
    const backing = bytes.buffer;
    if (!(backing instanceof ArrayBuffer) || backing.byteLength < this.size) {
      this.drop();
      return;
    }

    const buffer = Buffer.from(backing, 0, this.size);
    if (!this.waiting.serveNext(() => buffer)) {
      this.outstanding -= 1;
      this.free.push(buffer);
    }
  }

  /** Frees the slot of a buffer that is lost, for example with a failed task. */
  drop(): void {
    if (!this.waiting.serveNext(() => Buffer.allocUnsafeSlow(this.size))) this.outstanding -= 1;
  }
}
