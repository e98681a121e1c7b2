/**
 * Pull-based reading of a byte stream for the tar reader. Data chunks are
 * passed on as views into the input buffers; only reads that span two input
 * chunks (headers, map blocks) copy.
 */
import { ArchiveError } from '../errors.js';

const EMPTY = Buffer.alloc(0);

export class ByteSource {
  /** Bytes consumed so far. */
  position = 0;

  private readonly iterator: AsyncIterator<Uint8Array>;
  private current: Buffer = EMPTY;
  private ended = false;

  constructor(input: AsyncIterable<Uint8Array>) {
    this.iterator = input[Symbol.asyncIterator]();
  }

  /**
   * Returns up to `max` bytes as a view into the current input chunk, or
   * undefined when the input has ended.
   */
  async next(max: number): Promise<Buffer | undefined> {
    if (this.current.length === 0 && !(await this.load())) return undefined;

    const take = Math.min(max, this.current.length);
    const view = this.current.subarray(0, take);
    this.current = this.current.subarray(take);
    this.position += take;
    return view;
  }

  /**
   * Returns exactly `size` bytes, or undefined when the input ended before
   * the first byte. Throws an ArchiveError naming `location` when it ends later.
   */
  async exact(size: number, location: string): Promise<Buffer | undefined> {
    const first = await this.next(size);
    if (first === undefined) return undefined;
    if (first.length === size) return first;

    const copy = Buffer.allocUnsafe(size);
    first.copy(copy);
    let filled = first.length;

    while (filled < size) {
      const chunk = await this.next(size - filled);
      if (chunk === undefined) throw truncated(location);
      chunk.copy(copy, filled);
      filled += chunk.length;
    }
    return copy;
  }

  /** Discards exactly `size` bytes; throws an ArchiveError naming `location` when the input ends first. */
  async skip(size: number, location: string): Promise<void> {
    let left = size;
    while (left > 0) {
      const chunk = await this.next(left);
      if (chunk === undefined) throw truncated(location);
      left -= chunk.length;
    }
  }

  /** Stops the input, for example when the caller stops reading early. */
  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.iterator.return?.();
  }

  private async load(): Promise<boolean> {
    while (!this.ended) {
      const result = await this.iterator.next();
      if (result.done === true) {
        this.ended = true;
        return false;
      }

      const chunk = result.value;
      if (chunk.byteLength === 0) continue;
      this.current = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      return true;
    }
    return false;
  }
}

/** Builds the error for input that ends inside `location` (a member or a header). */
export function truncated(location: string): ArchiveError {
  return new ArchiveError(`tar stream ended inside ${location}`, {
    hint: 'the archive is incomplete; check that every segment was downloaded and decrypted',
  });
}
