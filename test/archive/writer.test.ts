import { readFileSync, statSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { ArchiveError } from '../../src/errors.js';
import { ArchiveWriter, sparseEntrySize, type Extent } from '../../src/archive/writer.js';
import { available } from '../support/components.js';
import { buildArchive, chunked, collect, extentContents, run, temporaryDirectory } from './support.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Reads `length` bytes at `offset` of a file without loading the whole file. */
function readRange(path: string, offset: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  const descriptor = openSync(path, 'r');
  try {
    readSync(descriptor, buffer, 0, length, offset);
  } finally {
    closeSync(descriptor);
  }
  return buffer;
}

/** The full expected content of a sparse file, holes as zeros. */
function expectedImage(realSize: number, extents: readonly Extent[], contents: readonly Buffer[]): Buffer {
  const image = Buffer.alloc(realSize);
  extents.forEach((extent, index) => contents[index]!.copy(image, extent.offset));
  return image;
}

describe.skipIf(!available('tar'))('ArchiveWriter with GNU tar', () => {
  let directory: ReturnType<typeof temporaryDirectory>;

  beforeEach(() => {
    directory = temporaryDirectory();
  });
  afterEach(() => {
    directory.remove();
  });

  const realSize = 64 * MiB;
  const extents: Extent[] = [
    { offset: 0, length: 4096 },
    { offset: MiB, length: MiB + 3 * 512 },
    { offset: realSize - 8192, length: 8000 },
  ];
  const contents = extentContents(extents);
  const metadata = Buffer.from(JSON.stringify({ format: 1, domain: 'test' }));

  async function writeReferenceArchive(): Promise<string> {
    const archive = await buildArchive(async (writer) => {
      await writer.addFile('hvbackup.json', metadata);
      await writer.addSparseFile('disks/vda.img', { realSize, extents, data: chunked(contents, 65_537) });
      await writer.addSparseFile('disks/vdb.img', { realSize: 8 * MiB, extents: [], data: chunked([], 1) });
      await writer.addSparseFile('disks/vdc.img', { realSize: 4 * MiB, extents: [{ offset: 4096, length: 512 }], data: chunked([Buffer.alloc(512, 7)], 100) });
      await writer.addFile('checksums.json', Buffer.from('{}'));
    });
    const path = join(directory.path, 'backup.tar');
    writeFileSync(path, archive);
    return path;
  }

  it('writer sparse entry extracts bytewise', async () => {
    const archive = await writeReferenceArchive();
    run('tar', ['-xf', archive], directory.path);

    const extracted = readFileSync(join(directory.path, 'disks/vda.img'));
    expect(extracted.equals(expectedImage(realSize, extents, contents))).toBe(true);
  });

  it('writer sparse entry extracts sparse', async () => {
    const archive = await writeReferenceArchive();
    run('tar', ['-xf', archive], directory.path);

    const stat = statSync(join(directory.path, 'disks/vda.img'));
    expect(stat.size).toBe(realSize);
    expect(stat.blocks * 512).toBeLessThan(8 * MiB);
  });

  it('writer all-hole entry keeps size', async () => {
    const archive = await writeReferenceArchive();
    run('tar', ['-xf', archive], directory.path);

    const path = join(directory.path, 'disks/vdb.img');
    expect(statSync(path).size).toBe(8 * MiB);
    expect(readFileSync(path).every((byte) => byte === 0)).toBe(true);
  });

  it('writer trailing hole keeps size', async () => {
    const archive = await writeReferenceArchive();
    run('tar', ['-xf', archive], directory.path);

    const path = join(directory.path, 'disks/vdc.img');
    const expected = expectedImage(4 * MiB, [{ offset: 4096, length: 512 }], [Buffer.alloc(512, 7)]);
    expect(statSync(path).size).toBe(4 * MiB);
    expect(readFileSync(path).equals(expected)).toBe(true);
  });

  it('writer regular files extract unchanged', async () => {
    const archive = await writeReferenceArchive();
    run('tar', ['-xf', archive], directory.path);

    expect(readFileSync(join(directory.path, 'hvbackup.json')).equals(metadata)).toBe(true);
    expect(readFileSync(join(directory.path, 'checksums.json'), 'utf8')).toBe('{}');
  });

  it('writer listing shows real names', async () => {
    const archive = await writeReferenceArchive();
    const listing = run('tar', ['-tf', archive], directory.path).trim().split('\n');

    expect(listing).toEqual(['hvbackup.json', 'disks/vda.img', 'disks/vdb.img', 'disks/vdc.img', 'checksums.json']);
  });

  it('writer verbose listing shows real sizes', async () => {
    const archive = await writeReferenceArchive();
    const listing = run('tar', ['-tvf', archive], directory.path);

    expect(listing).toMatch(new RegExp(`\\s${realSize}\\s.*disks/vda\\.img`));
  });

  it('writer 16 GiB entry extracts at end', async () => {
    const bigSize = 16 * GiB;
    const bigExtents: Extent[] = [
      { offset: bigSize - 3 * MiB, length: 4096 },
      { offset: bigSize - 4096, length: 4096 },
    ];
    const bigContents = extentContents(bigExtents);
    const archive = await buildArchive(async (writer) => {
      await writer.addSparseFile('disks/big.img', { realSize: bigSize, extents: bigExtents, data: chunked(bigContents, 3000) });
    });
    writeFileSync(join(directory.path, 'big.tar'), archive);
    run('tar', ['-xf', 'big.tar'], directory.path);

    const path = join(directory.path, 'disks/big.img');
    expect(statSync(path).size).toBe(bigSize);
    expect(readRange(path, bigExtents[0]!.offset, 4096).equals(bigContents[0]!)).toBe(true);
    expect(readRange(path, bigExtents[1]!.offset, 4096).equals(bigContents[1]!)).toBe(true);
    expect(readRange(path, bigSize - 2 * MiB, 4096).every((byte) => byte === 0)).toBe(true);
  });
});

describe('ArchiveWriter contract', () => {
  it('addSparseFile returns hash and count', async () => {
    const extents: Extent[] = [{ offset: 512, length: 1024 }, { offset: 4096, length: 24 }];
    const contents = extentContents(extents);
    let result: { sha256: string; storedBytes: number } | undefined;

    await buildArchive(async (writer) => {
      result = await writer.addSparseFile('disks/vda.img', { realSize: 8192, extents, data: chunked(contents, 7) });
    });

    expect(result?.storedBytes).toBe(1048);
    expect(result?.sha256).toBe(createHash('sha256').update(Buffer.concat(contents)).digest('hex'));
  });

  it('sparseEntrySize matches written bytes', async () => {
    const extents: Extent[] = [{ offset: 0, length: 1024 }, { offset: 10_000, length: 5000 }];
    const contents = extentContents(extents);
    const archive = await buildArchive(async (writer) => {
      await writer.addSparseFile('disks/a-rather-long-directory-name/vda.img', { realSize: 20 * GiB, extents, data: chunked(contents, 4096) });
    });

    expect(sparseEntrySize('disks/a-rather-long-directory-name/vda.img', 20 * GiB, extents)).toBe(archive.length - 1024);
  });

  it('addSparseFile rejects short data', async () => {
    const writer = new ArchiveWriter();
    const output = collect(writer.stream).catch((error: unknown) => error);
    const extents: Extent[] = [{ offset: 0, length: 100 }];

    await expect(writer.addSparseFile('disks/vda.img', { realSize: 1000, extents, data: chunked([Buffer.alloc(99)], 10) })).rejects.toThrow(ArchiveError);
    expect(await output).toBeInstanceOf(Error);
  });

  it('addSparseFile rejects long data', async () => {
    const writer = new ArchiveWriter();
    void collect(writer.stream).catch(() => undefined);
    const extents: Extent[] = [{ offset: 0, length: 100 }];

    await expect(writer.addSparseFile('disks/vda.img', { realSize: 1000, extents, data: chunked([Buffer.alloc(101)], 10) })).rejects.toThrow(/longer than its extents/);
  });

  it('addSparseFile rejects overlapping extents', async () => {
    const writer = new ArchiveWriter();
    const extents: Extent[] = [{ offset: 0, length: 100 }, { offset: 50, length: 10 }];

    await expect(writer.addSparseFile('disks/vda.img', { realSize: 1000, extents, data: chunked([], 1) })).rejects.toThrow(/starts before the previous extent/);
  });

  it('addSparseFile rejects unaligned inner extent', async () => {
    const writer = new ArchiveWriter();
    const extents: Extent[] = [{ offset: 0, length: 100 }, { offset: 512, length: 10 }];

    await expect(writer.addSparseFile('disks/vda.img', { realSize: 1000, extents, data: chunked([], 1) })).rejects.toThrow(/not a multiple of 512/);
  });

  it('addSparseFile rejects extent past realSize', async () => {
    const writer = new ArchiveWriter();
    const extents: Extent[] = [{ offset: 900, length: 101 }];

    await expect(writer.addSparseFile('disks/vda.img', { realSize: 1000, extents, data: chunked([], 1) })).rejects.toThrow(/ends past realSize/);
  });

  it('addFile rejects parent segment', async () => {
    const writer = new ArchiveWriter();

    await expect(writer.addFile('disks/../etc/passwd', Buffer.alloc(1))).rejects.toThrow(ArchiveError);
  });

  it('writer stream applies backpressure', async () => {
    const writer = new ArchiveWriter();
    const extents: Extent[] = [{ offset: 0, length: 8 * MiB }];
    let produced = 0;
    async function* data(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 8; i += 1) {
        produced += MiB;
        yield Buffer.alloc(MiB, i);
      }
    }

    const adding = writer.addSparseFile('disks/vda.img', { realSize: 8 * MiB, extents, data: data() });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(produced).toBeLessThan(8 * MiB);

    const output = collect(writer.stream);
    await adding;
    await writer.finalize();
    expect((await output).length).toBeGreaterThan(8 * MiB);
  });

  it('consumer failure ends sparse member', async () => {
    const writer = new ArchiveWriter();
    const chunks = 64;
    const extents: Extent[] = [{ offset: 0, length: chunks * 4 * MiB }];
    async function* data(): AsyncGenerator<Buffer> {
      for (let i = 0; i < chunks; i += 1) yield Buffer.alloc(4 * MiB, i);
    }
    const adding = writer.addSparseFile('disks/vda.img', { realSize: chunks * 4 * MiB, extents, data: data() });
    adding.catch(() => undefined);

    // The consumer fails after two chunks, as an upload failure ends the
    // backup's segment pipeline. Leaving the loop destroys the stream
    // while the member's writer waits for room.
    let read = 0;
    const failure = new Error('upload failed');
    try {
      for await (const piece of writer.stream) {
        read += (piece as Buffer).length;
        if (read > 8 * MiB) throw failure;
      }
    } catch (error) {
      writer.destroy(error as Error);
    }

    const outcome = await Promise.race([
      adding.then(
        () => 'resolved',
        (error: unknown) => error,
      ),
      new Promise((resolve) => setTimeout(() => resolve('still pending after 5 s'), 5000)),
    ]);
    expect(outcome).toBeInstanceOf(ArchiveError);
    expect((outcome as ArchiveError).message).toMatch(/closed while a member was being written/);
  });
});
