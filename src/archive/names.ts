/**
 * Entry names that the writer accepts and the reader trusts. A name is a
 * relative path of '/'-separated segments made of [A-Za-z0-9._+-], so it can
 * never leave the extraction directory, hide a control character, or differ
 * between platforms.
 */
import { ArchiveError } from '../errors.js';

const SEGMENT = /^[A-Za-z0-9._+-]+$/;

/** Longest accepted name in bytes. Linux PATH_MAX is 4096, so longer names could not be extracted anyway. */
export const MAX_NAME_BYTES = 4096;

/**
 * Returns a description of what is wrong with `name`, or undefined when the
 * name is valid. The reader and the writer turn the fault into their own
 * message.
 */
export function findNameFault(name: string): string | undefined {
  if (name.length === 0) return 'the name is empty';
  if (name.length > MAX_NAME_BYTES) return `the name is longer than ${MAX_NAME_BYTES} bytes`;
  if (name.includes('\0')) return 'the name contains a NUL byte';
  if (name.startsWith('/')) return 'the name is an absolute path';

  for (const segment of name.split('/')) {
    if (segment === '') return 'the name contains an empty segment (leading, trailing or double "/")';
    if (segment === '.' || segment === '..') return `the name contains a "${segment}" segment`;
    if (!SEGMENT.test(segment)) return `the segment "${segment}" has characters outside [A-Za-z0-9._+-]`;
  }
  return undefined;
}

/** Throws an ArchiveError when `name` is not a valid entry name for the writer. */
export function assertWritableName(name: string): void {
  const fault = findNameFault(name);
  if (fault !== undefined) {
    throw new ArchiveError(`invalid archive entry name ${JSON.stringify(name)}: ${fault}`, {
      hint: 'use a relative path of segments made of letters, digits, ".", "_", "+" and "-"',
    });
  }
}
