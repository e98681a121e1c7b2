import { describe, expect, it } from 'vitest';

import { PacketFramingError, readPacketFrames } from '../../src/crypto/packet-frames.js';
import { patternBytes } from './fixtures.js';

/** Returns a new-format header with an ordinary length of one, two or five bytes, as RFC 9580 section 4.2.1 chooses them. */
function newFormatHeader(tag: number, length: number): number[] {
  const first = 0xc0 | tag;
  if (length < 192) return [first, length];
  if (length < 8384) return [first, ((length - 192) >> 8) + 192, (length - 192) & 0xff];
  return [first, 0xff, (length >>> 24) & 0xff, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff];
}

function joined(...parts: (number[] | Uint8Array)[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((part) => Array.from(part)));
}

describe('readPacketFrames', () => {
  it('reads new-format lengths of one, two and five bytes', () => {
    const bodies = [patternBytes(100, 1), patternBytes(191, 2), patternBytes(192, 3), patternBytes(8383, 4), patternBytes(8384, 5)];
    const bytes = joined(...bodies.flatMap((body, index) => [newFormatHeader(index + 1, body.length), body]));

    const frames = readPacketFrames(bytes);

    expect(frames.map((frame) => frame.tag)).toEqual([1, 2, 3, 4, 5]);
    for (const [index, frame] of frames.entries()) {
      expect(frame.bodyLength).toBe(bodies[index].length);
      expect(frame.body).toHaveLength(1);
      const { offset, length } = frame.body[0];
      expect(bytes.subarray(offset, offset + length)).toEqual(bodies[index]);
    }
    expect(frames.at(-1)?.end).toBe(bytes.length);
  });

  it('joins a chain of partial lengths into one body', () => {
    // 2^9 and 2^10 partial pieces, then an ordinary length of 7.
    const first = patternBytes(512, 6);
    const second = patternBytes(1024, 7);
    const last = patternBytes(7, 8);
    const bytes = joined([0xc0 | 18, 0xe0 | 9], first, [0xe0 | 10], second, [7], last, newFormatHeader(2, 3), [1, 2, 3]);

    const [data, signature] = readPacketFrames(bytes);

    expect(data.tag).toBe(18);
    expect(data.bodyLength).toBe(512 + 1024 + 7);
    expect(data.body.map((piece) => piece.length)).toEqual([512, 1024, 7]);
    const pieces = data.body.map((piece) => bytes.subarray(piece.offset, piece.offset + piece.length));
    expect(joined(...pieces)).toEqual(joined(first, second, last));
    expect(signature.tag).toBe(2);
    expect(signature.start).toBe(data.end);
  });

  it('reads old-format lengths, including indeterminate', () => {
    const short = patternBytes(10, 9);
    const medium = patternBytes(300, 10);
    const long = patternBytes(70_000, 11);
    const rest = patternBytes(50, 12);
    const bytes = joined(
      [0x80 | (1 << 2) | 0, short.length], short,
      [0x80 | (2 << 2) | 1, medium.length >> 8, medium.length & 0xff], medium,
      [0x80 | (8 << 2) | 2, 0, (long.length >> 16) & 0xff, (long.length >> 8) & 0xff, long.length & 0xff], long,
      [0x80 | (11 << 2) | 3], rest,
    );

    const frames = readPacketFrames(bytes);

    expect(frames.map((frame) => [frame.tag, frame.bodyLength])).toEqual([
      [1, 10],
      [2, 300],
      [8, 70_000],
      [11, 50],
    ]);
    expect(frames.at(-1)?.end).toBe(bytes.length);
  });

  it.each([
    ['a byte without the header bit', Uint8Array.from([0x41, 0x00])],
    ['a body longer than the input', joined(newFormatHeader(1, 100), patternBytes(99, 13))],
    ['a header cut off in its length', Uint8Array.from([0xc0 | 1, 0xff, 0x00])],
    ['a partial chain without its last piece', joined([0xc0 | 18, 0xe0 | 9], patternBytes(512, 14))],
    ['an old-format length cut off', Uint8Array.from([0x80 | (1 << 2) | 1, 0x01])],
  ])('rejects %s', (_, bytes) => {
    expect(() => readPacketFrames(bytes)).toThrow(PacketFramingError);
  });
});
