import { describe, expect, it } from 'vitest';

import { UsageError } from '../../src/errors.js';
import { splitIntoSegments } from '../../src/segment/splitter.js';
import { patternBytes } from '../archive/support.js';

async function* chunksOf(data: Buffer, sizes: number[]): AsyncGenerator<Uint8Array> {
  let position = 0;
  let index = 0;
  while (position < data.length) {
    const size = sizes[index % sizes.length]!;
    yield new Uint8Array(data.buffer, data.byteOffset + position, Math.min(size, data.length - position));
    position += size;
    index += 1;
  }
}

async function split(data: Buffer, chunkSizes: number[], segmentSize: number): Promise<Buffer[]> {
  const segments: Buffer[] = [];
  for await (const segment of splitIntoSegments(chunksOf(data, chunkSizes), segmentSize)) segments.push(segment);
  return segments;
}

describe('splitIntoSegments', () => {
  it('splitter empty input gives nothing', async () => {
    expect(await split(Buffer.alloc(0), [1], 10)).toEqual([]);
  });

  it('splitter exact multiple has full segments', async () => {
    const segments = await split(patternBytes(1, 300), [7, 64], 100);

    expect(segments.map((segment) => segment.length)).toEqual([100, 100, 100]);
  });

  it('splitter short last segment', async () => {
    const segments = await split(patternBytes(2, 250), [1000], 100);

    expect(segments.map((segment) => segment.length)).toEqual([100, 100, 50]);
  });

  it('splitter concatenation restores input', async () => {
    const data = patternBytes(3, 3 * 1024 * 1024 + 11);
    const segments = await split(data, [65536, 1, 300_000], 1024 * 1024 + 7);

    expect(Buffer.concat(segments).equals(data)).toBe(true);
  });

  it('splitter segments do not alias input', async () => {
    const data = patternBytes(4, 64);
    const segments = await split(data, [64], 32);
    data.fill(0);

    expect(segments[0]!.equals(patternBytes(4, 64).subarray(0, 32))).toBe(true);
  });

  it('splitter rejects zero segment size', async () => {
    await expect(split(Buffer.alloc(1), [1], 0)).rejects.toThrow(UsageError);
  });
});
