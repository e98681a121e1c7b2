import { describe, expect, it } from 'vitest';

import { chunkExtents, dataExtents, dirtyExtents, totalLength } from '../../src/backup/extents.js';

const HOLE = 1;
const ZERO = 2;
const DIRTY = 1;

describe('dataExtents', () => {
  it('skips ranges reading as zeros', () => {
    const extents = dataExtents([
      { offset: 0, length: 4096, flags: 0 },
      { offset: 4096, length: 4096, flags: HOLE | ZERO },
      { offset: 8192, length: 4096, flags: ZERO },
      { offset: 12288, length: 4096, flags: 0 },
    ]);
    expect(extents).toEqual([
      { offset: 0, length: 4096 },
      { offset: 12288, length: 4096 },
    ]);
  });

  it('keeps holes without zero flag', () => {
    expect(dataExtents([{ offset: 0, length: 512, flags: HOLE }])).toEqual([{ offset: 0, length: 512 }]);
  });

  it('merges adjacent data extents', () => {
    const extents = dataExtents([
      { offset: 0, length: 100, flags: 0 },
      { offset: 100, length: 50, flags: 0 },
    ]);
    expect(extents).toEqual([{ offset: 0, length: 150 }]);
  });
});

describe('dirtyExtents', () => {
  it('splits dirty ranges into data and zero', () => {
    const dirty = [
      { offset: 0, length: 1000, flags: DIRTY },
      { offset: 1000, length: 1000, flags: 0 },
      { offset: 2000, length: 1000, flags: DIRTY },
    ];
    const allocation = [
      { offset: 0, length: 500, flags: 0 },
      { offset: 500, length: 2000, flags: HOLE | ZERO },
      { offset: 2500, length: 500, flags: 0 },
    ];
    const { data, zero } = dirtyExtents(dirty, allocation);
    expect(data).toEqual([
      { offset: 0, length: 500 },
      { offset: 2500, length: 500 },
    ]);
    expect(zero).toEqual([
      { offset: 500, length: 500 },
      { offset: 2000, length: 500 },
    ]);
  });

  it('clean disk yields nothing', () => {
    const { data, zero } = dirtyExtents([{ offset: 0, length: 4096, flags: 0 }], [{ offset: 0, length: 4096, flags: 0 }]);
    expect(data).toEqual([]);
    expect(zero).toEqual([]);
  });
});

describe('chunkExtents', () => {
  it('splits at the maximum length', () => {
    const chunks = [...chunkExtents([{ offset: 10, length: 25 }], 10)];
    expect(chunks).toEqual([
      { offset: 10, length: 10 },
      { offset: 20, length: 10 },
      { offset: 30, length: 5 },
    ]);
    expect(totalLength(chunks)).toBe(25);
  });
});
