/** Pure helpers for block status extents. */
import type { NbdExtent } from './reply-reader.js';

/**
 * Clips extents to [start, end). The last extent of a BLOCK_STATUS reply
 * may reach past the requested range, which the protocol allows.
 */
export function clipExtents(extents: NbdExtent[], start: number, end: number): NbdExtent[] {
  const clipped: NbdExtent[] = [];

  for (const extent of extents) {
    const from = Math.max(extent.offset, start);
    const to = Math.min(extent.offset + extent.length, end);
    if (to > from) clipped.push({ offset: from, length: to - from, flags: extent.flags });
  }
  return clipped;
}

/** Appends extents to `target`, merging each into the previous one when they touch and have equal flags. */
export function appendMerged(target: NbdExtent[], extents: NbdExtent[]): void {
  for (const extent of extents) {
    const last = target[target.length - 1];
    if (last && last.flags === extent.flags && last.offset + last.length === extent.offset) {
      last.length += extent.length;
    } else {
      target.push({ ...extent });
    }
  }
}
