import type { NbdExtent } from '../nbd/client.js';

/** A byte range of a disk. */
export interface Extent {
  offset: number;
  length: number;
}

const STATE_ZERO = 2;
const DIRTY = 1;

/**
 * Turns `base:allocation` block status into the extents a full backup must
 * store. Only ranges the server reports as reading zeros are skipped: a hole
 * without the zero flag can still read data (from a backing file), so it is
 * stored like allocated data.
 */
export function dataExtents(allocation: NbdExtent[]): Extent[] {
  return mergeAdjacent(allocation.filter((extent) => (extent.flags & STATE_ZERO) === 0));
}

/**
 * Splits dirty ranges of an incremental backup into those with data to store
 * and those that now read as zeros, which are recorded but carry no bytes.
 */
export function dirtyExtents(dirty: NbdExtent[], allocation: NbdExtent[]): { data: Extent[]; zero: Extent[] } {
  const dirtyRanges = mergeAdjacent(dirty.filter((extent) => (extent.flags & DIRTY) !== 0));
  const zeroRanges = mergeAdjacent(allocation.filter((extent) => (extent.flags & STATE_ZERO) !== 0));

  const zero = intersect(dirtyRanges, zeroRanges);
  const data = subtract(dirtyRanges, zero);
  return { data, zero };
}

export function totalLength(extents: Extent[]): number {
  return extents.reduce((sum, extent) => sum + extent.length, 0);
}

/** Yields [offset, length] pieces of at most `maxLength` bytes covering the extents in order. */
export function* chunkExtents(extents: Extent[], maxLength: number): Generator<Extent> {
  for (const extent of extents) {
    for (let offset = extent.offset; offset < extent.offset + extent.length; offset += maxLength) {
      yield { offset, length: Math.min(maxLength, extent.offset + extent.length - offset) };
    }
  }
}

function mergeAdjacent(extents: Extent[]): Extent[] {
  const merged: Extent[] = [];
  for (const { offset, length } of extents) {
    if (length === 0) continue;
    const last = merged.at(-1);
    if (last && last.offset + last.length === offset) {
      last.length += length;
    } else {
      merged.push({ offset, length });
    }
  }
  return merged;
}

function intersect(a: Extent[], b: Extent[]): Extent[] {
  const result: Extent[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const start = Math.max(a[i].offset, b[j].offset);
    const end = Math.min(a[i].offset + a[i].length, b[j].offset + b[j].length);
    if (start < end) result.push({ offset: start, length: end - start });
    if (a[i].offset + a[i].length < b[j].offset + b[j].length) i += 1;
    else j += 1;
  }
  return mergeAdjacent(result);
}

function subtract(ranges: Extent[], removed: Extent[]): Extent[] {
  const result: Extent[] = [];
  let j = 0;
  for (const range of ranges) {
    let cursor = range.offset;
    const end = range.offset + range.length;
    while (j < removed.length && removed[j].offset + removed[j].length <= cursor) j += 1;
    let k = j;
    while (k < removed.length && removed[k].offset < end) {
      if (removed[k].offset > cursor) result.push({ offset: cursor, length: removed[k].offset - cursor });
      cursor = Math.max(cursor, removed[k].offset + removed[k].length);
      k += 1;
    }
    if (cursor < end) result.push({ offset: cursor, length: end - cursor });
  }
  return mergeAdjacent(result);
}
