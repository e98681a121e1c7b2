import { describe, expect, it } from 'vitest';

import { UsageError } from '../../src/errors.js';
import { formatByteSize, parseByteSize } from '../../src/segment/size.js';

describe('parseByteSize', () => {
  it.each([
    ['1048576', 1048576],
    ['16MiB', 16 * 1024 ** 2],
    ['64M', 64 * 1024 ** 2],
    ['1GiB', 1024 ** 3],
    ['1.5 KiB', 1536],
    ['2t', 2 * 1024 ** 4],
  ])('parseByteSize accepts %s', (text, bytes) => {
    expect(parseByteSize(text, 'segment size')).toBe(bytes);
  });

  it.each(['', '-1', '0', '1.3B', '12 parsecs', '1e6', '0x10', '99999999999T'])('parseByteSize rejects %j', (text) => {
    expect(() => parseByteSize(text, 'segment size')).toThrow(UsageError);
  });

  it('parseByteSize error names value and forms', () => {
    expect(() => parseByteSize('12 parsecs', '--segment-size')).toThrow(/invalid --segment-size "12 parsecs": expected .*16MiB/);
  });
});

describe('formatByteSize', () => {
  it.each([
    [512, '512 B'],
    [16 * 1024 ** 2, '16.0 MiB'],
    [1536, '1.5 KiB'],
    [3 * 1024 ** 4, '3.0 TiB'],
  ])('formatByteSize formats %d', (bytes, text) => {
    expect(formatByteSize(bytes)).toBe(text);
  });
});
