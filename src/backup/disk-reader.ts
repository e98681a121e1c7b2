import type { NbdClient } from '../nbd/client.js';
import { chunkExtents, type Extent } from './extents.js';

/** Bytes per NBD READ request: large enough to amortise round trips, small enough to keep memory flat. */
export const READ_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * Reads the extents of a disk in order with `inFlight` READ requests
 * outstanding, so network and server latency overlap with the consumer.
 * Memory is bounded by inFlight × READ_CHUNK_BYTES.
 */
export async function* readExtents(
  client: NbdClient,
  extents: Extent[],
  options: { inFlight: number; onBytes?: (bytes: number) => void },
): AsyncGenerator<Buffer> {
  const chunkBytes = Math.min(READ_CHUNK_BYTES, client.maxRequestBytes);
  const pieces = chunkExtents(extents, chunkBytes);
  const pending: Promise<Buffer>[] = [];

  const refill = () => {
    while (pending.length < options.inFlight) {
      const next = pieces.next();
      if (next.done) return;
      const request = client.read(next.value.offset, next.value.length);
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
