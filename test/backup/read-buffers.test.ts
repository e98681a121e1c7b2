import { setTimeout as sleep } from 'node:timers/promises';

import { describe, expect, it } from 'vitest';

import { ArchiveWriter } from '../../src/archive/writer.js';
import { ReadBuffers } from '../../src/backup/read-buffers.js';
import { splitIntoSegments } from '../../src/segment/splitter.js';
import { patternBytes } from '../archive/support.js';

const KiB = 1024;

/** Reports whether `promise` settles within 20 ms. */
async function settlesSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await sleep(20);
  return settled;
}

/** Yields the given chunks in order. */
async function* fromList(chunks: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield chunk;
}

describe('ReadBuffers', () => {
  it('buffer returns after next request', async () => {
    // One read in flight: four buffers in all.
    const buffers = new ReadBuffers(64 * KiB, 1);
    const lent = await Promise.all([0, 1, 2, 3].map(() => buffers.take(64 * KiB)));
    const waiting = buffers.take(64 * KiB);
    const stream = buffers.returning(fromList(lent));

    await stream.next();
    const stillWaiting = !(await settlesSoon(waiting));
    await stream.next();

    expect(stillWaiting).toBe(true);
    expect((await waiting).buffer).toBe(lent[0]!.buffer);
  });

  it('split buffer returns after all views', async () => {
    const buffers = new ReadBuffers(64 * KiB, 1);
    const first = await buffers.take(48 * KiB);
    await Promise.all([1, 2, 3].map(() => buffers.take(64 * KiB)));
    const waiting = buffers.take(64 * KiB);
    const stream = buffers.returning(fromList([first.subarray(0, 16 * KiB), first.subarray(16 * KiB, 48 * KiB), Buffer.alloc(1)]));

    await stream.next();
    await stream.next();
    const afterFirstView = await settlesSoon(waiting);
    await stream.next();

    expect(afterFirstView).toBe(false);
    expect((await waiting).buffer).toBe(first.buffer);
  });

  it('foreign chunks pass and free nothing', async () => {
    const buffers = new ReadBuffers(64 * KiB, 1);
    await Promise.all([0, 1, 2, 3].map(() => buffers.take(64 * KiB)));
    const foreign = [Buffer.alloc(512, 1), Buffer.alloc(128 * KiB, 2)];
    const waiting = buffers.take(64 * KiB);

    const passed: Uint8Array[] = [];
    for await (const chunk of buffers.returning(fromList(foreign))) passed.push(chunk);

    expect(passed).toEqual(foreign);
    expect(passed[0]).toBe(foreign[0]);
    expect(await settlesSoon(waiting)).toBe(false);
  });

  it('take rejects a read larger than a buffer', async () => {
    const buffers = new ReadBuffers(64 * KiB, 1);

    await expect(buffers.take(64 * KiB + 1)).rejects.toThrow('a read of 65537 bytes does not fit the 65536-byte read buffers');
  });

  it('abort ends a wait for a buffer', async () => {
    const buffers = new ReadBuffers(4 * KiB, 1);
    await Promise.all([0, 1, 2, 3].map(() => buffers.take(4 * KiB)));
    const failed = new AbortController();
    const waiting = buffers.take(4 * KiB, failed.signal);

    failed.abort(new Error('upload failed'));

    await expect(waiting).rejects.toThrow('upload failed');
  });

  // The reads reuse each buffer as soon as it is back. If one came back while
  // the tar writer or the splitter still held a view of it, the segments
  // would contain the bytes of a later read instead.
  it('reused buffers keep archive bytes intact', async () => {
    const chunkBytes = 8 * KiB;
    const chunkCount = 64;
    const data = patternBytes(7, chunkBytes * chunkCount);
    const extents = [{ offset: 0, length: data.length }];
    const mtime = new Date('2024-01-02T03:04:05Z');

    const expected = await archiveOf(mtime, extents, data, async function* () {
      for (let index = 0; index < chunkCount; index += 1) yield data.subarray(index * chunkBytes, (index + 1) * chunkBytes);
    });

    const buffers = new ReadBuffers(chunkBytes, 1);
    const pooled = async function* () {
      for (let index = 0; index < chunkCount; index += 1) {
        const buffer = await buffers.take(chunkBytes);
        data.copy(buffer, 0, index * chunkBytes, (index + 1) * chunkBytes);
        yield buffer;
      }
    };
    const writer = new ArchiveWriter({ mtime });
    // A slow segment allocator makes the splitter hold a chunk across awaits.
    const allocate = async () => {
      await sleep(1);
      return Buffer.alloc(5000);
    };
    const segments: Buffer[] = [];
    const consuming = (async () => {
      for await (const segment of splitIntoSegments(buffers.returning(writer.stream), 5000, allocate)) segments.push(segment);
    })();
    await writer.addSparseFile('disks/vda.img', { realSize: data.length, extents, data: pooled() });
    await writer.finalize();
    await consuming;

    expect(Buffer.concat(segments).equals(expected)).toBe(true);
  });
});

async function archiveOf(
  mtime: Date,
  extents: { offset: number; length: number }[],
  data: Buffer,
  chunks: () => AsyncGenerator<Buffer>,
): Promise<Buffer> {
  const writer = new ArchiveWriter({ mtime });
  const parts: Buffer[] = [];
  const consuming = (async () => {
    for await (const chunk of writer.stream) parts.push(Buffer.from(chunk));
  })();
  await writer.addSparseFile('disks/vda.img', { realSize: data.length, extents, data: chunks() });
  await writer.finalize();
  await consuming;
  return Buffer.concat(parts);
}
