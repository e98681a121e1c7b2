import { describe, expect, test } from 'vitest';
import { appendMerged, clipExtents } from '../../src/nbd/extents.js';

describe('extents', () => {
  test('clipExtents trims both ends', () => {
    const extents = [
      { offset: 0, length: 100, flags: 1 },
      { offset: 100, length: 100, flags: 0 },
      { offset: 200, length: 100, flags: 1 },
    ];
    expect(clipExtents(extents, 50, 150)).toEqual([
      { offset: 50, length: 50, flags: 1 },
      { offset: 100, length: 50, flags: 0 },
    ]);
  });

  test('appendMerged joins equal neighbours', () => {
    const map = [{ offset: 0, length: 10, flags: 3 }];
    appendMerged(map, [
      { offset: 10, length: 5, flags: 3 },
      { offset: 15, length: 5, flags: 0 },
      { offset: 20, length: 5, flags: 0 },
    ]);
    expect(map).toEqual([
      { offset: 0, length: 15, flags: 3 },
      { offset: 15, length: 10, flags: 0 },
    ]);
  });

  test('appendMerged keeps gapped extents apart', () => {
    const map = [{ offset: 0, length: 10, flags: 0 }];
    appendMerged(map, [{ offset: 20, length: 5, flags: 0 }]);
    expect(map).toHaveLength(2);
  });
});
