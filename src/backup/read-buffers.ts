/**
 * The buffers that disk reads land in, reused for the whole backup. A read
 * takes a buffer, its bytes travel through the tar writer into the archive
 * stream, and the buffer comes back once the stream's consumer has finished
 * with them. The segment splitter copies every chunk before it requests the
 * next one, so a request for the next chunk means the previous one is done.
 *
 * Before, each 4 MiB read was a new Buffer, dead as soon as the splitter had
 * copied it. V8 let tens of MiB of them pile up between collections, and
 * their churn fragmented glibc's heap: a 1 GiB backup peaked about 20 MiB
 * higher and used about 8% more CPU time (docs/benchmarks.md).
 */
import { BufferPool } from '../segment/buffer-pool.js';

/**
 * Buffers held past the reads in flight: one chunk the tar writer is
 * writing, one in the archive stream's queue, and one the splitter copies.
 */
const HELD_DOWNSTREAM = 3;

export class ReadBuffers {
  /** Bytes in each buffer, the largest read that fits one. */
  readonly size: number;
  private readonly pool: BufferPool;
  /** Bytes of each lent buffer that the consumer has not finished yet, by its ArrayBuffer. */
  private readonly unfinished = new Map<ArrayBufferLike, { buffer: Buffer; remaining: number }>();

  /** Creates buffers for `readsInFlight` reads of up to `size` bytes each. */
  constructor(size: number, readsInFlight: number) {
    this.size = size;
    this.pool = new BufferPool(size, readsInFlight + HELD_DOWNSTREAM);
  }

  /**
   * Returns a buffer for a read of `length` bytes (at most `size`), which
   * comes back after `length` bytes of views of it went through
   * `returning()`. Waits while every buffer is out, until `signal` aborts.
   */
  async take(length: number, signal?: AbortSignal): Promise<Buffer> {
    if (length > this.size) throw new RangeError(`a read of ${length} bytes does not fit the ${this.size}-byte read buffers`);
    const buffer = await this.pool.take(signal);
    this.unfinished.set(buffer.buffer, { buffer, remaining: length });
    return buffer;
  }

  /**
   * Passes `stream` on. When the consumer requests the next chunk, the
   * chunk before it counts as finished, and a buffer whose bytes are all
   * finished goes back to the pool. Chunks from elsewhere pass untouched.
   * The consumer must keep no view of a chunk once it requests the next.
   */
  async *returning(stream: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array, void, undefined> {
    for await (const chunk of stream) {
      yield chunk;
      this.finished(chunk);
    }
  }

  private finished(chunk: Uint8Array): void {
    const lent = this.unfinished.get(chunk.buffer);
    if (lent === undefined) return;

    lent.remaining -= chunk.byteLength;
    if (lent.remaining > 0) return;
    this.unfinished.delete(chunk.buffer);
    this.pool.give(lent.buffer);
  }
}
