import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { readArchive } from '../../src/archive/reader.js';
import type { Extent } from '../../src/archive/writer.js';
import { ArchiveError } from '../../src/errors.js';
import { splitIntoSegments } from '../../src/segment/splitter.js';
import { available } from '../support/components.js';
import { buildArchive, chunked, extentContents, readAll, slices, temporaryDirectory } from './support.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function expectedImage(realSize: number, extents: readonly Extent[], contents: readonly Buffer[]): Buffer {
  const image = Buffer.alloc(realSize);
  extents.forEach((extent, index) => contents[index]!.copy(image, extent.offset));
  return image;
}

describe.skipIf(!available('tar'))('readArchive with GNU tar archives', () => {
  let directory: ReturnType<typeof temporaryDirectory>;

  beforeEach(() => {
    directory = temporaryDirectory();
  });
  afterEach(() => {
    directory.remove();
  });

  /** Makes a sparse file with truncate and dd, then archives it with GNU tar. */
  function gnuSparseArchive(realSize: string, writes: Array<{ offset: number; bytes: number; seed: number }>): Buffer {
    const run = (command: string, args: string[]): void => {
      execFileSync(command, args, { cwd: directory.path, stdio: 'ignore' });
    };
    run('truncate', ['-s', realSize, 'disk.img']);
    for (const write of writes) {
      run('dd', ['if=/dev/urandom', 'of=disk.img', 'bs=1', `count=${write.bytes}`, `seek=${write.offset}`, 'conv=notrunc', 'status=none']);
    }
    run('tar', ['--format=pax', '--sparse', '--sparse-version=1.0', '-cf', 'disk.tar', 'disk.img']);
    return readFileSync(join(directory.path, 'disk.tar'));
  }

  it('reader rebuilds GNU tar sparse file', async () => {
    const archive = gnuSparseArchive('40M', [
      { offset: 0, bytes: 5000, seed: 1 },
      { offset: 3 * MiB + 100, bytes: 70_000, seed: 2 },
      { offset: 40 * MiB - 3000, bytes: 3000, seed: 3 },
    ]);

    const { images } = await readAll(readArchive(slices(archive, [4096, 777, 65536])));

    expect([...images.keys()]).toEqual(['disk.img']);
    expect(images.get('disk.img')!.equals(readFileSync(join(directory.path, 'disk.img')))).toBe(true);
  });

  it('reader rebuilds GNU tar trailing hole', async () => {
    const archive = gnuSparseArchive('9M', [{ offset: MiB, bytes: 4096, seed: 4 }]);

    const { images } = await readAll(readArchive(slices(archive, [10240])));

    expect(images.get('disk.img')!.length).toBe(9 * MiB);
    expect(images.get('disk.img')!.equals(readFileSync(join(directory.path, 'disk.img')))).toBe(true);
  });

  it('reader reads GNU tar 16 GiB file', async () => {
    gnuSparseArchive('16G', [{ offset: 16 * GiB - 8192, bytes: 8192, seed: 5 }]);
    const archive = readFileSync(join(directory.path, 'disk.tar'));
    const entries = [];

    for await (const entry of readArchive(slices(archive, [65536]))) {
      if (entry.kind !== 'sparse') throw new Error(`expected a sparse entry, got ${entry.kind}`);
      const data = [];
      for await (const chunk of entry.chunks()) data.push(chunk);
      entries.push({ realSize: entry.realSize, extents: entry.extents, bytes: data.reduce((sum, chunk) => sum + chunk.data.length, 0) });
    }

    expect(entries).toHaveLength(1);
    expect(entries[0]!.realSize).toBe(16 * GiB);
    expect(entries[0]!.extents.at(-1)).toEqual({ offset: 16 * GiB - 8192, length: 8192 });
    expect(entries[0]!.bytes).toBe(8192);
  });
});

describe('readArchive round trip', () => {
  const realSize = 6 * MiB;
  const extents: Extent[] = [
    { offset: 0, length: 512 * 3 },
    { offset: MiB, length: 2 * MiB },
    { offset: 5 * MiB, length: 4097 },
  ];
  const contents = extentContents(extents);
  const metadata = Buffer.from(JSON.stringify({ format: 1 }));

  function archive(): Promise<Buffer> {
    return buildArchive(async (writer) => {
      await writer.addFile('hvbackup.json', metadata);
      await writer.addFile('nvram/VARS.fd', Buffer.alloc(128 * 1024, 0x5a));
      await writer.addSparseFile('disks/vda.img', { realSize, extents, data: chunked(contents, 100_000) });
      await writer.addSparseFile('disks/vdb.img', { realSize: 10 * GiB, extents: [], data: chunked([], 1) });
      await writer.addFile('checksums.json', Buffer.from('{"disks/vda.img":"x"}'));
    });
  }

  it.each([MiB, MiB + 7])('round trip through %d-byte segments', async (segmentSize) => {
    const segments: Buffer[] = [];
    for await (const segment of splitIntoSegments(slices(await archive(), [65536]), segmentSize)) segments.push(segment);

    const { files, images, realSizes } = await readAll(readArchive(slices(Buffer.concat(segments), [segmentSize])));

    expect([...files.keys()]).toEqual(['hvbackup.json', 'nvram/VARS.fd', 'checksums.json']);
    expect(files.get('hvbackup.json')!.equals(metadata)).toBe(true);
    expect(images.get('disks/vda.img')!.equals(expectedImage(realSize, extents, contents))).toBe(true);
    expect(realSizes.get('disks/vdb.img')).toBe(10 * GiB);
  });

  it('reader reports extents and realSize', async () => {
    const seen: Array<{ name: string; realSize: number; extents: Extent[] }> = [];
    for await (const entry of readArchive(slices(await archive(), [65536]))) {
      if (entry.kind === 'sparse') seen.push({ name: entry.name, realSize: entry.realSize, extents: entry.extents });
    }

    expect(seen).toEqual([
      { name: 'disks/vda.img', realSize, extents },
      { name: 'disks/vdb.img', realSize: 10 * GiB, extents: [] },
    ]);
  });

  it('reader skips unread entries', async () => {
    const names: string[] = [];
    let checksums = '';
    for await (const entry of readArchive(slices(await archive(), [1000]))) {
      names.push(entry.name);
      if (entry.name === 'checksums.json' && entry.kind === 'file') checksums = (await entry.read()).toString();
    }

    expect(names).toHaveLength(5);
    expect(checksums).toBe('{"disks/vda.img":"x"}');
  });

  it('reader skips partly read chunks', async () => {
    let last = '';
    for await (const entry of readArchive(slices(await archive(), [65536]))) {
      if (entry.kind === 'sparse') {
        for await (const chunk of entry.chunks()) {
          if (chunk.offset >= 0) break;
        }
      }
      if (entry.kind === 'file' && entry.name === 'checksums.json') last = (await entry.read()).toString();
    }

    expect(last).toBe('{"disks/vda.img":"x"}');
  });

  it('reader rejects read after skip', async () => {
    const iterator = readArchive(slices(await archive(), [65536]))[Symbol.asyncIterator]();
    const first = (await iterator.next()).value!;
    await iterator.next();

    await expect(first.kind === 'file' ? first.read() : Promise.resolve()).rejects.toThrow(/already skipped/);
    await iterator.return(undefined);
  });

  it('reader enforces maxFileBytes', async () => {
    const read = async (): Promise<void> => {
      for await (const entry of readArchive(slices(await archive(), [65536]), { maxFileBytes: 64 * 1024 })) {
        if (entry.kind === 'file') await entry.read();
      }
    };

    await expect(read()).rejects.toThrow(/nvram\/VARS\.fd is 131072 bytes, more than the limit of 65536/);
  });

  it('reader enforces maxRealSize', async () => {
    const read = async (): Promise<void> => {
      for await (const entry of readArchive(slices(await archive(), [65536]), { maxRealSize: 8 * GiB })) void entry;
    };

    await expect(read()).rejects.toThrow(/disks\/vdb\.img declares realSize 10737418240/);
  });

  it('reader enforces maxExtents', async () => {
    const read = async (): Promise<void> => {
      for await (const entry of readArchive(slices(await archive(), [65536]), { maxExtents: 2 })) void entry;
    };

    await expect(read()).rejects.toThrow(ArchiveError);
  });
});
