/**
 * Cuts the archive byte stream into fixed-size segments, each of which is
 * then encrypted and stored on its own. Concatenating the segments in order
 * gives back the input bytes.
 */
import { UsageError } from '../errors.js';

/**
 * Yields segments of exactly `segmentSize` bytes; the last one may be
 * shorter (a view of a full-size buffer), and an empty input yields none.
 * Each segment is a buffer from `allocate` (default: a new one) that the
 * caller owns, filled by copying, so input chunks can be reused.
 */
export async function* splitIntoSegments(
  input: AsyncIterable<Uint8Array>,
  segmentSize: number,
  allocate: () => Buffer | Promise<Buffer> = () => Buffer.allocUnsafe(segmentSize),
): AsyncGenerator<Buffer, void, undefined> {
  if (!Number.isSafeInteger(segmentSize) || segmentSize <= 0) {
    throw new UsageError(`invalid segment size ${segmentSize}: expected a positive whole number of bytes`);
  }

  let segment: Buffer | undefined;
  let filled = 0;

  for await (const chunk of input) {
    let position = 0;

    while (position < chunk.byteLength) {
      segment ??= await allocate();

      const take = Math.min(segmentSize - filled, chunk.byteLength - position);
      segment.set(chunk.subarray(position, position + take), filled);
      filled += take;
      position += take;

      if (filled === segmentSize) {
        yield segment;
        segment = undefined;
        filled = 0;
      }
    }
  }

  if (segment !== undefined && filled > 0) yield segment.subarray(0, filled);
}
