/**
 * Strict decoding of one 512-byte ustar header block (POSIX.1-1988 layout,
 * also used by the pax format). Only the fields the reader needs are decoded:
 * name, prefix, size, typeflag, checksum and magic. Other fields are ignored.
 */
import { ArchiveError } from '../errors.js';

export interface UstarHeader {
  /** Name from the name field, joined with the prefix field for POSIX ustar headers. */
  name: string;
  /** The typeflag byte as a character ('0', 'x', ...); NUL for an old-style regular file. */
  typeflag: string;
  /** Entry data size in bytes from the size field, before any PAX size record. */
  size: number;
}

const POSIX_MAGIC = Buffer.from('ustar\u000000', 'latin1');
const GNU_MAGIC = Buffer.from('ustar  \u0000', 'latin1');

/** True when all 512 bytes are zero, which marks the end of the archive. */
export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < block.length; i += 1) {
    if (block[i] !== 0) return false;
  }
  return true;
}

/** Decodes a header block; `position` is its byte offset in the stream, for messages. */
export function decodeUstarHeader(block: Buffer, position: number): UstarHeader {
  const fail = (fault: string): never => {
    throw new ArchiveError(`invalid tar header at byte ${position}: ${fault}`, {
      hint: 'the archive is damaged or not a tar stream; restore from another backup',
    });
  };

  const stored = decodeNumber(block, 148, 8);
  if (stored === undefined) fail('the checksum field is not an octal number');
  if (stored !== checksum(block)) fail(`the checksum ${stored} does not match the computed ${checksum(block)}`);

  const magic = block.subarray(257, 265);
  const posix = magic.equals(POSIX_MAGIC);
  if (!posix && !magic.equals(GNU_MAGIC)) fail('the magic field is not "ustar"');

  const size = decodeNumber(block, 124, 12);
  if (size === undefined) fail('the size field is not a valid octal or base-256 number');

  const name = decodeString(block, 0, 100);
  const prefix = posix ? decodeString(block, 345, 155) : '';

  return {
    name: prefix === '' ? name : `${prefix}/${name}`,
    typeflag: String.fromCharCode(block[156]!),
    size: size!,
  };
}

/** Sum of the header bytes with the checksum field counted as eight spaces. */
function checksum(block: Buffer): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < 512; i += 1) {
    if (i < 148 || i >= 156) sum += block[i]!;
  }
  return sum;
}

function decodeString(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.toString('utf8', 0, end === -1 ? length : end);
}

/**
 * Decodes a numeric field. Octal form is digits after optional leading
 * spaces, ended by a space or NUL and followed only by spaces and NULs. GNU
 * base-256 form has 0x80 as its first byte and a big-endian number in the
 * rest. Returns undefined for anything else, including negative base-256
 * values and values above 2^53-1.
 */
export function decodeNumber(block: Buffer, start: number, length: number): number | undefined {
  const field = block.subarray(start, start + length);

  if (field[0] === 0x80) {
    let value = 0;
    for (let i = 1; i < field.length; i += 1) value = value * 256 + field[i]!;
    return Number.isSafeInteger(value) ? value : undefined;
  }

  let i = 0;
  while (i < field.length && field[i] === 0x20) i += 1;

  let value = 0;
  while (i < field.length && field[i]! >= 0x30 && field[i]! <= 0x37) {
    value = value * 8 + (field[i]! - 0x30);
    i += 1;
  }

  for (; i < field.length; i += 1) {
    if (field[i] !== 0x20 && field[i] !== 0) return undefined;
  }
  // A field of only spaces and NULs (digits === 0) reads as 0, as GNU tar does.
  return Number.isSafeInteger(value) ? value : undefined;
}
