/**
 * Byte sizes as users write them in options and configuration: a whole
 * number of bytes, or a number with a binary unit. "K", "M", "G" and "T" are
 * read as KiB, MiB, GiB and TiB, as dd and qemu-img do.
 */
import { UsageError } from '../errors.js';

const UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  K: 1024,
  KIB: 1024,
  M: 1024 ** 2,
  MIB: 1024 ** 2,
  G: 1024 ** 3,
  GIB: 1024 ** 3,
  T: 1024 ** 4,
  TIB: 1024 ** 4,
};

const ACCEPTED_FORMS = 'a whole number of bytes or a number with one of the units K, KiB, M, MiB, G, GiB, T, TiB (for example 16MiB or 1048576)';

/**
 * Parses a size such as "16MiB", "64M", "1.5GiB" or "1048576" into bytes.
 * `what` names the option or setting in the error message. The result must
 * be a whole number of bytes from 1 to 2^53-1.
 */
export function parseByteSize(text: string, what: string): number {
  // Trimmed first: with \s* on both sides of an optional unit, a long run of
  // blanks followed by a stray character took quadratic time to reject.
  const match = /^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$/.exec(text.trim());
  const multiplier = match ? UNITS[match[2]!.toUpperCase()] : undefined;

  if (!match || multiplier === undefined) {
    throw new UsageError(`invalid ${what} ${JSON.stringify(text)}: expected ${ACCEPTED_FORMS}`);
  }

  const bytes = Number(match[1]) * multiplier;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new UsageError(`invalid ${what} ${JSON.stringify(text)}: it must come to a whole number of bytes from 1 to 2^53-1`);
  }
  return bytes;
}

/** Formats bytes with one decimal in the largest binary unit that fits: "16.0 MiB", "512 B". */
export function formatByteSize(bytes: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  if (Math.abs(bytes) < 1024) return `${bytes} B`;

  let value = bytes / 1024;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
