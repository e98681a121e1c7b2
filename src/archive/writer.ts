/**
 * Streaming tar writer for hvbackup archives (format: docs/format-archive.md),
 * built on tar-stream's pack. Regular files are plain ustar members (with a
 * PAX header when the name needs one). Disk images are GNU sparse 1.0 members
 * in pax format, which GNU tar 1.34 extracts as sparse files.
 *
 * tar-stream 3.3 writes every member that has PAX records as: a PAX header
 * named "PaxHeader" that starts with a `path` record, then a ustar header that
 * is also named "PaxHeader". Readers that understand PAX take the name from
 * the records; GNU tar takes a sparse member's name from GNU.sparse.name.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pack as createPack, type Pack } from 'tar-stream';

import { ArchiveError } from '../errors.js';
import { assertWritableName } from './names.js';
import { paxRecordLength } from './pax.js';
import { BLOCK_SIZE, DEFAULT_MAX_EXTENTS, encodeSparseMap, padToBlock, planSparseExtents, sparseMapBytes, type Extent } from './sparse-map.js';

export type { Extent } from './sparse-map.js';

export interface SparseFileOptions {
  /** Size of the virtual file in bytes. */
  realSize: number;
  /** Runs of stored data, sorted by offset and not overlapping. */
  extents: Extent[];
  /** Exactly the sum of the extent lengths, in extent order, in chunks of any size. */
  data: AsyncIterable<Uint8Array>;
}

type PackHeader = Parameters<Pack['entry']>[0];

type EntrySink = ReturnType<Pack['entry']>;

export class ArchiveWriter {
  /** The tar bytes. Writes wait until this stream's consumer reads. */
  readonly stream: Readable;

  private readonly pack: Pack;
  private readonly mtime: Date;
  private busy = false;

  constructor(options: { mtime?: Date } = {}) {
    this.mtime = options.mtime ?? new Date();
    this.pack = createPack();
    // Failures reach callers through the add promises and `stream`; without a
    // listener an 'error' on the pack would be an uncaught exception.
    this.pack.on('error', () => undefined);
    // pack() returns a streamx stream; this wraps it as a Node byte stream.
    this.stream = Readable.from(this.pack, { objectMode: false });
  }

  /** Adds a regular file with the given content; resolves once the consumer has taken it. */
  async addFile(name: string, data: Buffer, options: { mode?: number } = {}): Promise<void> {
    assertWritableName(name);
    await this.exclusive(name, async () => {
      await new Promise<void>((resolve, reject) => {
        const header: PackHeader = { name, size: data.length, mode: options.mode ?? 0o644, mtime: this.mtime, type: 'file' };
        this.pack.entry(header, data, (error) => (error ? reject(wrap(error, name)) : resolve()));
      });
    });
  }

  /**
   * Adds a GNU sparse 1.0 member. Returns the SHA-256 (hex) and count of the
   * stored data bytes, which do not include the map. A data stream that
   * yields more or fewer bytes than the extents cover destroys the writer and
   * rejects with an ArchiveError, because the tar stream is then unusable.
   */
  async addSparseFile(name: string, options: SparseFileOptions): Promise<{ sha256: string; storedBytes: number }> {
    assertWritableName(name);
    const stored = planSparseExtents(name, options.realSize, options.extents);
    if (stored.length > DEFAULT_MAX_EXTENTS) {
      throw new ArchiveError(`sparse entry ${name} has ${stored.length} extents, more than the limit of ${DEFAULT_MAX_EXTENTS}`, {
        hint: 'merge extents separated by short holes, storing the holes as zeros',
      });
    }

    const map = encodeSparseMap(stored);
    const expected = sumLengths(stored);
    const size = map.length + expected;
    const header: PackHeader = {
      name: sparseMemberPath(name),
      size,
      mode: 0o644,
      mtime: this.mtime,
      type: 'file',
      pax: sparseRecords(name, options.realSize, size),
    };

    return this.exclusive(name, async () => {
      let sink: EntrySink | undefined;
      const finished = new Promise<void>((resolve, reject) => {
        sink = this.pack.entry(header, (error) => (error ? reject(wrap(error, name)) : resolve()));
      });
      sink!.on('error', () => undefined);
      finished.catch(() => undefined);

      const hash = createHash('sha256');
      let storedBytes = 0;
      try {
        await write(sink!, map);

        for await (const piece of options.data) {
          const chunk = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
          if (storedBytes + chunk.length > expected) {
            throw new ArchiveError(`data for sparse entry ${name} is longer than its extents: more than ${expected} bytes`);
          }
          hash.update(chunk);
          storedBytes += chunk.length;
          await write(sink!, chunk);
        }

        if (storedBytes !== expected) {
          throw new ArchiveError(`data for sparse entry ${name} ended after ${storedBytes} bytes, but its extents cover ${expected} bytes`);
        }
        sink!.end(undefined);
        await finished;
      } catch (error) {
        const failure = wrap(error, name);
        this.destroy(failure);
        throw failure;
      }

      return { sha256: hash.digest('hex'), storedBytes };
    });
  }

  /** Writes the end-of-archive marker; resolves when the consumer has read everything. */
  async finalize(): Promise<void> {
    if (this.busy) throw new Error('ArchiveWriter.finalize() called while a file is still being added');

    const ended = new Promise<void>((resolve, reject) => {
      this.stream.once('end', resolve);
      this.stream.once('error', reject);
      this.stream.once('close', () => reject(new ArchiveError('archive stream closed before it was read to the end')));
    });
    this.pack.finalize();
    await ended;
  }

  /** Aborts the archive: fails the pending write and the consumer's stream. */
  destroy(error?: Error): void {
    this.pack.destroy(error);
    this.stream.destroy(error);
  }

  /** Runs one add at a time: tar members cannot interleave, and queuing them would buffer without bound. */
  private async exclusive<T>(name: string, work: () => Promise<T>): Promise<T> {
    if (this.busy) throw new Error(`ArchiveWriter: ${name} added while another file is still being added; await each add`);
    this.busy = true;
    try {
      return await work();
    } finally {
      this.busy = false;
    }
  }
}

/**
 * Returns the bytes a sparse member takes in the tar stream: PAX header block
 * and records, ustar header, map and data, each padded to 512 bytes.
 */
export function sparseEntrySize(name: string, realSize: number, extents: Extent[]): number {
  const stored = planSparseExtents(name, realSize, extents);
  const size = sparseMapBytes(stored) + sumLengths(stored);

  let paxBytes = paxRecordLength('path', sparseMemberPath(name));
  for (const [keyword, value] of Object.entries(sparseRecords(name, realSize, size))) {
    paxBytes += paxRecordLength(keyword, value);
  }
  return BLOCK_SIZE + padToBlock(paxBytes) + BLOCK_SIZE + padToBlock(size);
}

/** Builds the PAX records of a sparse member, in the order they are written. */
function sparseRecords(name: string, realSize: number, size: number): Record<string, string> {
  return {
    'GNU.sparse.major': '1',
    'GNU.sparse.minor': '0',
    'GNU.sparse.name': name,
    'GNU.sparse.realsize': String(realSize),
    // The ustar size field stores at most 8 GiB - 1 in octal, so this record carries the exact size.
    size: String(size),
  };
}

/**
 * Returns the member path that PAX readers without GNU sparse support see:
 * `<dir>/GNUSparseFile.0/<file>`, the GNU tar convention with 0 in place of a
 * process id.
 */
function sparseMemberPath(name: string): string {
  const slash = name.lastIndexOf('/');
  return slash === -1 ? `GNUSparseFile.0/${name}` : `${name.slice(0, slash)}/GNUSparseFile.0/${name.slice(slash + 1)}`;
}

function sumLengths(extents: readonly Extent[]): number {
  return extents.reduce((sum, extent) => sum + extent.length, 0);
}

/** Writes a chunk and waits while the sink is above its buffer limit. */
async function write(sink: EntrySink, chunk: Buffer): Promise<void> {
  if (sink.write(chunk)) return;

  // A sink destroyed before this write emits no further events, so waiting
  // for 'drain' or 'close' would never end.
  if (sink.destroying || sink.destroyed) throw new ArchiveError('archive stream was closed while a member was being written');

  await new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      sink.off('drain', onDrain);
      sink.off('error', onError);
      sink.off('close', onClose);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const onClose = (): void => {
      cleanup();
      reject(new ArchiveError('archive stream was closed while a member was being written'));
    };
    sink.on('drain', onDrain);
    sink.on('error', onError);
    sink.on('close', onClose);
  });
}

function wrap(error: unknown, name: string): ArchiveError {
  if (error instanceof ArchiveError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new ArchiveError(`writing archive member ${name} failed: ${message}`, { cause: error });
}
