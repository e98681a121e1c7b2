/**
 * Streaming tar reader for hvbackup archives (format: docs/format-archive.md).
 *
 * The input is decrypted backup data. It was verified before it got here, but
 * this reader still treats it as hostile. It accepts only regular files with
 * safe relative names and parses PAX records and sparse maps strictly. It
 * allocates no more than the limits allow, and it reports every fault as an
 * ArchiveError that names the member and the fault. Directory members are
 * rejected, because hvbackup archives never contain them.
 *
 * Members must be consumed in order: a member that the caller does not read
 * (or reads only in part) is skipped when the caller asks for the next one,
 * and reading it after that throws.
 */
import type { Readable } from 'node:stream';

import { ArchiveError } from '../errors.js';
import { ByteSource, truncated } from './byte-source.js';
import { readMemberHeader, type MemberHeader } from './entry-header.js';
import { isZeroBlock } from './header.js';
import { BLOCK_SIZE, DEFAULT_MAX_EXTENTS, padToBlock, SparseMapDecoder, type Extent } from './sparse-map.js';

export { DEFAULT_MAX_EXTENTS, type Extent } from './sparse-map.js';

export type ArchiveEntry =
  | { kind: 'file'; name: string; size: number; read(): Promise<Buffer> }
  | {
      kind: 'sparse';
      name: string;
      realSize: number;
      /** Stored extents in file order; zero-length extents of the map are left out. */
      extents: Extent[];
      /** Stored bytes with their offsets in the real file. Each `data` is a view of an input chunk, not a copy. */
      chunks(): AsyncIterable<{ offset: number; data: Buffer }>;
    };

export interface ArchiveLimits {
  /** Largest member that read() returns, in bytes. Default 64 MiB. */
  maxFileBytes?: number;
  /** Maximum number of extents in one sparse map. Default DEFAULT_MAX_EXTENTS (2^20). */
  maxExtents?: number;
  /** Largest GNU.sparse.realsize accepted, in bytes. Default 2^50 (1 PiB). */
  maxRealSize?: number;
}

export const DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024;

// NOTE: 1 PiB is a guard against absurd values, not a measured bound; callers
// that restore larger disks must raise maxRealSize.
export const DEFAULT_MAX_REAL_SIZE = 2 ** 50;

/** Reads the members of a tar stream in order. Breaking out of the loop stops the input. */
export async function* readArchive(
  input: AsyncIterable<Uint8Array> | Readable,
  limits: ArchiveLimits = {},
): AsyncGenerator<ArchiveEntry, void, undefined> {
  const source = new ByteSource(input as AsyncIterable<Uint8Array>);
  const maxFileBytes = limits.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  const maxExtents = limits.maxExtents ?? DEFAULT_MAX_EXTENTS;
  const maxRealSize = limits.maxRealSize ?? DEFAULT_MAX_REAL_SIZE;
  const seen = new Set<string>();
  let body: MemberBody | undefined;

  try {
    for (;;) {
      if (body !== undefined) await body.drain();

      const header = await readMemberHeader(source);
      if (header === undefined) {
        await readEndOfArchive(source);
        return;
      }

      if (seen.has(header.name)) throw new ArchiveError(`archive member ${header.name} appears twice`);
      seen.add(header.name);

      if (header.realSize === undefined) {
        body = new MemberBody(source, header.name, header.size, header.size);
        yield fileEntry(body, header, maxFileBytes);
      } else {
        if (header.realSize > maxRealSize) {
          throw new ArchiveError(`sparse member ${header.name} declares realSize ${header.realSize}, more than the limit of ${maxRealSize} bytes`);
        }
        const map = await readSparseMap(source, header, maxExtents);
        body = new MemberBody(source, header.name, map.storedBytes, header.size - map.mapBytes);
        yield sparseEntry(body, header.name, header.realSize, map.extents);
      }
    }
  } finally {
    body?.close();
    await source.close();
  }
}

/**
 * The data of one member after its headers (and, for sparse members, after
 * its map): `dataLeft` stored bytes, then NUL padding to a block boundary.
 */
class MemberBody {
  dataLeft: number;
  private readonly padding: number;
  private claimed = false;
  private closed = false;

  constructor(
    private readonly source: ByteSource,
    readonly name: string,
    dataBytes: number,
    bodyBytes: number,
  ) {
    this.dataLeft = dataBytes;
    this.padding = padToBlock(bodyBytes) - bodyBytes;
  }

  /** Marks the body as being read; a body can be read once, and only before the next member. */
  claim(): void {
    if (this.closed) throw new ArchiveError(`archive member ${this.name} was already skipped; read each member before asking for the next one`);
    if (this.claimed) throw new ArchiveError(`archive member ${this.name} was already read; its data can be read only once`);
    this.claimed = true;
  }

  /** Returns the next up to `max` data bytes as a view of the input. */
  async next(max: number): Promise<Buffer> {
    if (this.closed) throw new ArchiveError(`archive member ${this.name} was skipped while it was being read`);

    const chunk = await this.source.next(Math.min(max, this.dataLeft));
    if (chunk === undefined) throw truncated(`archive member ${this.name}`);
    this.dataLeft -= chunk.length;
    return chunk;
  }

  /** Skips what the caller left unread, including the padding. */
  async drain(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.source.skip(this.dataLeft + this.padding, `archive member ${this.name}`);
    this.dataLeft = 0;
  }

  close(): void {
    this.closed = true;
  }
}

function fileEntry(body: MemberBody, header: MemberHeader, maxFileBytes: number): ArchiveEntry {
  return {
    kind: 'file',
    name: header.name,
    size: header.size,
    async read(): Promise<Buffer> {
      body.claim();
      if (header.size > maxFileBytes) {
        throw new ArchiveError(`archive member ${header.name} is ${header.size} bytes, more than the limit of ${maxFileBytes} bytes for reading it into memory`);
      }

      const buffer = Buffer.allocUnsafe(header.size);
      let filled = 0;
      while (filled < header.size) {
        const chunk = await body.next(header.size - filled);
        chunk.copy(buffer, filled);
        filled += chunk.length;
      }
      await body.drain();
      return buffer;
    },
  };
}

function sparseEntry(body: MemberBody, name: string, realSize: number, extents: Extent[]): ArchiveEntry {
  return {
    kind: 'sparse',
    name,
    realSize,
    extents,
    async *chunks(): AsyncGenerator<{ offset: number; data: Buffer }, void, undefined> {
      body.claim();

      for (const extent of extents) {
        let offset = extent.offset;
        const end = extent.offset + extent.length;

        while (offset < end) {
          const data = await body.next(end - offset);
          yield { offset, data };
          offset += data.length;
        }
      }
      await body.drain();
    },
  };
}

/** Reads map blocks until the map is complete, then checks it against the member size. */
async function readSparseMap(source: ByteSource, header: MemberHeader, maxExtents: number): Promise<SparseMapDecoder> {
  const decoder = new SparseMapDecoder(header.name, header.realSize!, maxExtents);
  let complete = false;

  while (!complete) {
    if (decoder.mapBytes + BLOCK_SIZE > header.size) {
      throw new ArchiveError(`invalid sparse map in archive member ${header.name}: the map runs past the member size ${header.size}`);
    }
    const block = await source.exact(BLOCK_SIZE, `archive member ${header.name}`);
    if (block === undefined) throw truncated(`archive member ${header.name}`);
    complete = decoder.pushBlock(block);
  }

  const dataBytes = header.size - decoder.mapBytes;
  if (decoder.storedBytes !== dataBytes) {
    throw new ArchiveError(`invalid sparse map in archive member ${header.name}: the extents add up to ${decoder.storedBytes} bytes but the member stores ${dataBytes} bytes after the map`);
  }
  return decoder;
}

/**
 * Checks the end-of-archive marker: two zero blocks (the first one is already
 * read), then only zero bytes, which GNU tar adds to fill its last record.
 */
async function readEndOfArchive(source: ByteSource): Promise<void> {
  const second = await source.exact(BLOCK_SIZE, 'the end-of-archive marker');
  if (second === undefined) throw truncated('the end-of-archive marker');
  if (!isZeroBlock(second)) throw new ArchiveError(`the end-of-archive marker at byte ${source.position - 2 * BLOCK_SIZE} is a single zero block followed by data`);

  for (;;) {
    const chunk = await source.next(64 * 1024);
    if (chunk === undefined) return;
    if (chunk.some((byte) => byte !== 0)) throw new ArchiveError('the tar stream has data after the end-of-archive marker');
  }
}
