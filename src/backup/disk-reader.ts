import type { NbdClient } from '../nbd/client.js';
import { chunkExtents, type Extent } from './extents.js';
import type { ReadBuffers } from './read-buffers.js';

/**
 * Bytes per NBD READ request. Four 1 MiB reads in flight read a local QEMU
 * export as fast as four of 4 MiB, with a quarter of the buffer memory
 * (docs/benchmarks.md).
 */
export const READ_CHUNK_BYTES = 1024 * 1024;

/**
 * Reads the extents of a disk in order with `inFlight` READ requests
 * outstanding, so network and server latency overlap with the consumer.
 * Each read lands in a buffer from `buffers`, which bound the memory. The
 * yielded chunks are views of those buffers, valid until the archive
 * stream's consumer has finished with them (see ReadBuffers).
 */
export async function* readExtents(
  client: NbdClient,
  extents: Extent[],
  options: { inFlight: number; buffers: ReadBuffers; signal?: AbortSignal; onBytes?: (bytes: number) => void },
): AsyncGenerator<Buffer> {
  const chunkBytes = Math.min(options.buffers.size, client.maxRequestBytes);
  const pieces = chunkExtents(extents, chunkBytes);
  const pending: Promise<Buffer>[] = [];

  const readNext = async (offset: number, length: number) => client.read(offset, length, await options.buffers.take(length, options.signal));
  const refill = () => {
    while (pending.length < options.inFlight) {
      const next = pieces.next();
      if (next.done) return;
      const request = readNext(next.value.offset, next.value.length);
      // Mark the promise handled: a rejection surfaces when it is awaited in order below.
      request.catch(() => undefined);
      pending.push(request);
    }
  };

  refill();
  while (pending.length > 0) {
    const data = await pending.shift()!;
    refill();
    options.onBytes?.(data.length);
    yield data;
  }
}
