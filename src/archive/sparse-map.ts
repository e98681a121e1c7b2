/**
 * The sparse map of GNU tar sparse format 1.0, as GNU tar 1.34 writes it. It
 * starts the member data and is ASCII decimal numbers, each ended by "\n":
 * the extent count, then offset and length of each extent. NUL bytes pad it
 * to a 512-byte boundary. A file that ends in a hole gets a last extent of
 * length 0 at offset realSize, because that is how GNU tar learns the file
 * size when it extracts.
 *
 * Every extent with data except the last one must have a length that is a
 * multiple of 512. GNU tar 1.34 reads and writes each extent's data in whole
 * 512-byte blocks (sparse_dump_region and sparse_extract_region in its
 * sparse.c), while the format description and libarchive treat the data as
 * plain concatenation. The two layouts are the same only under this rule, and
 * GNU tar itself only produces such maps because it finds extents with
 * SEEK_DATA/SEEK_HOLE on filesystem blocks.
 */
import { ArchiveError } from '../errors.js';

/** A run of stored bytes in the real (virtual) file, in bytes. */
export interface Extent {
  offset: number;
  length: number;
}

export const BLOCK_SIZE = 512;

/**
 * Maximum number of extents in one sparse map, 2^20, for both the writer and the reader,
 * so every archive the writer makes is readable with the default limits. A
 * map of that many extents is at most about 34 MiB of text, and the parsed
 * list takes an estimated 100 MiB of heap.
 */
export const DEFAULT_MAX_EXTENTS = 1 << 20;

/** Decimal digits of Number.MAX_SAFE_INTEGER (2^53 - 1), the widest number a map may hold. */
const MAX_DIGITS = 16;

/** Rounds a byte count up to a whole number of 512-byte tar blocks. */
export function padToBlock(bytes: number): number {
  return Math.ceil(bytes / BLOCK_SIZE) * BLOCK_SIZE;
}

/**
 * Checks a writer's extent list and returns the extents to store: zero-length
 * extents removed and the end-of-file marker appended when the file ends in a
 * hole. Throws an ArchiveError naming the entry and the first bad extent.
 */
export function planSparseExtents(entry: string, realSize: number, extents: readonly Extent[]): Extent[] {
  if (!Number.isSafeInteger(realSize) || realSize < 0) {
    throw new ArchiveError(`invalid realSize ${realSize} for sparse entry ${entry}: expected an integer from 0 to 2^53-1`);
  }

  const stored: Extent[] = [];
  let end = 0;

  for (const [index, extent] of extents.entries()) {
    const { offset, length } = extent;
    const where = `extent ${index} (offset ${offset}, length ${length}) of sparse entry ${entry}`;

    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new ArchiveError(`invalid ${where}: offset and length must be non-negative integers`);
    }
    if (offset < end) {
      throw new ArchiveError(`invalid ${where}: it starts before the previous extent ends at ${end}`, {
        hint: 'sort the extents by offset and merge overlapping ones',
      });
    }
    if (offset + length > realSize) {
      throw new ArchiveError(`invalid ${where}: it ends past realSize ${realSize}`);
    }

    const previous = stored.at(-1);
    if (length > 0 && previous !== undefined && previous.length % BLOCK_SIZE !== 0) {
      throw new ArchiveError(`invalid ${where}: the extent before it has a length that is not a multiple of ${BLOCK_SIZE}`, {
        hint: 'only the last extent with data may have an unaligned length; extend the others to whole 512-byte sectors',
      });
    }

    if (length > 0) stored.push({ offset, length });
    end = offset + length;
  }

  if (end < realSize || (stored.length === 0 && realSize === 0)) {
    stored.push({ offset: realSize, length: 0 });
  }
  return stored;
}

/** Encodes the map text for already planned extents, padded with NUL bytes to a block boundary. */
export function encodeSparseMap(stored: readonly Extent[]): Buffer {
  const lines = [String(stored.length)];
  for (const extent of stored) {
    lines.push(String(extent.offset), String(extent.length));
  }
  const text = lines.join('\n') + '\n';

  const block = Buffer.alloc(padToBlock(Buffer.byteLength(text, 'latin1')));
  block.write(text, 'latin1');
  return block;
}

/**
 * Parses a sparse map block by block. Every number must be plain decimal
 * (digits only, no sign, no leading zero, at most 2^53-1), and the bytes after
 * the last number up to the block end must be NUL. Extents must be sorted,
 * must not overlap, must end within realSize, and only the last extent with
 * data may have a length that is not a multiple of 512. Zero-length extents are
 * accepted (GNU tar writes one to mark a trailing hole) but left out of
 * `extents`.
 */
export class SparseMapDecoder {
  readonly extents: Extent[] = [];
  /** Sum of extent lengths, in bytes. */
  storedBytes = 0;
  /** Bytes of map blocks consumed so far. */
  mapBytes = 0;

  private readonly numbers: number[] = [];
  private digits = '';
  private count: number | undefined;
  private previousEnd = 0;
  private extentsParsed = 0;
  private done = false;

  constructor(
    private readonly entry: string,
    private readonly realSize: number,
    private readonly maxExtents: number,
  ) {}

  /** Consumes one 512-byte block and returns true once the map is complete. */
  pushBlock(block: Buffer): boolean {
    this.mapBytes += block.length;

    for (let i = 0; i < block.length; i += 1) {
      const byte = block[i]!;

      if (this.done) {
        if (byte !== 0) this.fail(`byte ${this.mapBytes - block.length + i} after the last number is not NUL padding`);
        continue;
      }
      if (byte === 0x0a) {
        this.finishNumber();
        continue;
      }
      if (byte < 0x30 || byte > 0x39) {
        this.fail(`byte 0x${byte.toString(16).padStart(2, '0')} at map offset ${this.mapBytes - block.length + i} is not a decimal digit or newline`);
      }
      if (this.digits === '0') this.fail('a number has a leading zero');
      if (this.digits.length === MAX_DIGITS) this.fail(`a number has more than ${MAX_DIGITS} digits`);
      this.digits += String.fromCharCode(byte);
    }

    return this.done;
  }

  private finishNumber(): void {
    if (this.digits === '') this.fail('an empty line where a number was expected');

    const value = Number(this.digits);
    this.digits = '';
    if (!Number.isSafeInteger(value)) this.fail(`the number ${value} is larger than 2^53-1`);

    if (this.count === undefined) {
      if (value > this.maxExtents) {
        this.fail(`it declares ${value} extents, more than the limit of ${this.maxExtents}`);
      }
      this.count = value;
      this.done = value === 0;
      return;
    }

    this.numbers.push(value);
    if (this.numbers.length === 2) {
      this.addExtent(this.numbers[0]!, this.numbers[1]!);
      this.numbers.length = 0;
    }
  }

  private addExtent(offset: number, length: number): void {
    if (offset < this.previousEnd) {
      this.fail(`extent at offset ${offset} starts before the previous extent ends at ${this.previousEnd}`);
    }
    if (offset + length > this.realSize) {
      this.fail(`extent at offset ${offset} with length ${length} ends past realSize ${this.realSize}`);
    }

    const previous = this.extents.at(-1);
    if (length > 0 && previous !== undefined && previous.length % BLOCK_SIZE !== 0) {
      this.fail(`extent at offset ${offset} follows an extent whose length ${previous.length} is not a multiple of ${BLOCK_SIZE}, which GNU tar and other readers lay out differently`);
    }

    this.previousEnd = offset + length;
    this.storedBytes += length;
    if (length > 0) this.extents.push({ offset, length });

    this.extentsParsed += 1;
    if (this.extentsParsed === this.count) this.done = true;
  }

  private fail(fault: string): never {
    throw new ArchiveError(`invalid sparse map in entry ${this.entry}: ${fault}`);
  }
}

/** Bytes of the padded map block for already planned extents, without building it. */
export function sparseMapBytes(stored: readonly Extent[]): number {
  let text = String(stored.length).length + 1;
  for (const extent of stored) {
    text += String(extent.offset).length + 1 + String(extent.length).length + 1;
  }
  return padToBlock(text);
}
