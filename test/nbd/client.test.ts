import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { NbdError } from '../../src/errors.js';
import { NBD_STATE_DIRTY, NBD_STATE_HOLE, NBD_STATE_ZERO, NbdClient, type NbdExtent } from '../../src/nbd/client.js';
import { available } from '../support/components.js';
import { createQcow2, hasPattern, makeTempDir, qemuIo, removeTempDir, run, startNbdkit, startQemuNbd, type RunningServer } from './servers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const HOLE = NBD_STATE_HOLE | NBD_STATE_ZERO;

/** Builds the expected base:allocation map of an image with data at the given [offset, length] ranges. */
function expectedMap(size: number, dataRanges: Array<[number, number]>): NbdExtent[] {
  const extents: NbdExtent[] = [];
  let cursor = 0;
  for (const [offset, length] of dataRanges) {
    if (offset > cursor) extents.push({ offset: cursor, length: offset - cursor, flags: HOLE });
    extents.push({ offset, length, flags: 0 });
    cursor = offset + length;
  }
  if (cursor < size) extents.push({ offset: cursor, length: size - cursor, flags: HOLE });
  return extents;
}

describe.skipIf(!available('qemu-img', 'qemu-nbd'))('NbdClient on read-only qemu-nbd', () => {
  let dir: string;
  let image: string;
  let server: RunningServer;
  let client: NbdClient;
  const dataRanges: Array<[number, number, number]> = [
    [1 * MiB, 64 * KiB, 0xab],
    [10 * MiB, 128 * KiB, 0xcd],
    [63 * MiB, 1 * MiB, 0x11],
  ];

  beforeAll(async () => {
    dir = makeTempDir('nbd-read');
    image = join(dir, 'read.qcow2');
    createQcow2(image, '64M');
    qemuIo(image, dataRanges.map(([offset, length, pattern]) => `write -P ${pattern} ${offset} ${length}`));
    // Sixteen 64 KiB blocks with distinct patterns for the pipelining test.
    qemuIo(image, Array.from({ length: 16 }, (_, index) => `write -P ${index + 1} ${20 * MiB + index * 64 * KiB} 64k`));
    server = await startQemuNbd(dir, image, ['-r']);
    client = await NbdClient.connect({ socketPath: server.socketPath, exportName: '', metaContexts: ['base:allocation'] });
  });

  afterAll(async () => {
    await client?.close();
    await server?.stop();
    removeTempDir(dir);
  });

  test('connect reports export properties', () => {
    expect(client.size).toBe(64 * MiB);
    expect(client.readOnly).toBe(true);
    expect(client.hasMetaContext('base:allocation')).toBe(true);
    expect(client.maxRequestBytes).toBeLessThanOrEqual(32 * MiB);
    expect(client.maxRequestBytes).toBeGreaterThanOrEqual(client.blockSize.preferred);
  });

  test('mapExtents finds data ranges exactly', async () => {
    const map = await client.mapExtents('base:allocation');
    const ranges: Array<[number, number]> = [
      [1 * MiB, 64 * KiB],
      [10 * MiB, 128 * KiB],
      [20 * MiB, 1 * MiB],
      [63 * MiB, 1 * MiB],
    ];
    expect(map).toEqual(expectedMap(64 * MiB, ranges));
  });

  test('mapExtents of a subrange is clipped', async () => {
    const map = await client.mapExtents('base:allocation', 1 * MiB - 4 * KiB, 8 * KiB);
    expect(map).toEqual([
      { offset: 1 * MiB - 4 * KiB, length: 4 * KiB, flags: HOLE },
      { offset: 1 * MiB, length: 4 * KiB, flags: 0 },
    ]);
  });

  test('read returns written pattern', async () => {
    const data = await client.read(1 * MiB, 64 * KiB);
    expect(data.equals(Buffer.alloc(64 * KiB, 0xab))).toBe(true);
  });

  test('read across hole and data', async () => {
    const data = await client.read(1 * MiB - 64 * KiB, 192 * KiB);
    const expected = Buffer.concat([Buffer.alloc(64 * KiB), Buffer.alloc(64 * KiB, 0xab), Buffer.alloc(64 * KiB)]);
    expect(data.equals(expected)).toBe(true);
  });

  test('read of whole disk splits requests', async () => {
    const data = await client.read(0, client.size);
    const expected = Buffer.alloc(64 * MiB);
    for (const [offset, length, pattern] of dataRanges) expected.fill(pattern, offset, offset + length);
    for (let index = 0; index < 16; index += 1) expected.fill(index + 1, 20 * MiB + index * 64 * KiB, 20 * MiB + (index + 1) * 64 * KiB);
    expect(data.length).toBeGreaterThan(client.maxRequestBytes);
    expect(data.equals(expected)).toBe(true);
  });

  test('pipelined reads return own data', async () => {
    const reads = Array.from({ length: 16 }, (_, index) => client.read(20 * MiB + index * 64 * KiB, 64 * KiB));
    const results = await Promise.all(reads);
    results.forEach((data, index) => {
      expect(data.equals(Buffer.alloc(64 * KiB, index + 1)), `block ${index}`).toBe(true);
    });
  });

  test('read of zero bytes returns empty', async () => {
    expect((await client.read(0, 0)).length).toBe(0);
  });

  test('read beyond export rejects', async () => {
    await expect(client.read(64 * MiB - 512, 1024)).rejects.toThrow(/READ at offset 67108352 length 1024 ends beyond the export size/);
  });

  test('write on read-only export rejects', async () => {
    await expect(client.write(0, Buffer.alloc(512))).rejects.toThrow(/export is read-only/);
  });

  test('blockStatus of unnegotiated context rejects', async () => {
    await expect(client.blockStatus('qemu:dirty-bitmap:none', 0, 512)).rejects.toThrow(/'qemu:dirty-bitmap:none' was not negotiated/);
  });

  test('connect to unknown export rejects', async () => {
    const attempt = NbdClient.connect({ socketPath: server.socketPath, exportName: 'no-such-export' });
    await expect(attempt).rejects.toThrow(/export 'no-such-export' failed: export not found: NBD_REP_ERR_UNKNOWN/);
  });

  test('connect with missing context rejects', async () => {
    const attempt = NbdClient.connect({ socketPath: server.socketPath, exportName: '', metaContexts: ['qemu:dirty-bitmap:missing'] });
    await expect(attempt).rejects.toThrow(/does not offer metadata context qemu:dirty-bitmap:missing/);
  });

  test('connect to missing socket rejects', async () => {
    const attempt = NbdClient.connect({ socketPath: join(dir, 'absent.sock'), exportName: '' });
    await expect(attempt).rejects.toBeInstanceOf(NbdError);
    await expect(attempt).rejects.toThrow(/absent\.sock for export '' failed: .*ENOENT/);
  });

  test('close twice resolves', async () => {
    const second = await NbdClient.connect({ socketPath: server.socketPath, exportName: '' });
    await second.close();
    await expect(second.close()).resolves.toBeUndefined();
    await expect(second.read(0, 512)).rejects.toThrow(/closed by close\(\)/);
  });
});

describe.skipIf(!available('qemu-img', 'qemu-nbd'))('NbdClient on writable qemu-nbd', () => {
  let dir: string;
  let image: string;
  let server: RunningServer;
  let client: NbdClient;

  beforeAll(async () => {
    dir = makeTempDir('nbd-write');
    image = join(dir, 'write.qcow2');
    createQcow2(image, '80M');
    server = await startQemuNbd(dir, image, ['--discard=unmap', '--cache=none', '--aio=threads']);
    client = await NbdClient.connect({ socketPath: server.socketPath, exportName: '', metaContexts: ['base:allocation'] });
  });

  afterAll(async () => {
    await client?.close();
    await server?.stop();
    removeTempDir(dir);
  });

  const imageHasPattern = (pattern: number, offset: number, length: number) => hasPattern(image, pattern, offset, length);

  test('connect reports writable export', () => {
    expect(client.readOnly).toBe(false);
  });

  test('write with fua reaches image', async () => {
    await client.write(2 * MiB, Buffer.alloc(3 * MiB, 0x5a), { fua: true });
    await client.flush();
    expect(imageHasPattern(0x5a, 2 * MiB, 3 * MiB)).toBe(true);
  });

  test('write larger than maxRequestBytes round-trips', async () => {
    const data = Buffer.alloc(client.maxRequestBytes + 64 * KiB);
    for (let offset = 0; offset < data.length; offset += 4 * KiB) data.fill((offset / (4 * KiB)) % 251, offset, offset + 4 * KiB);
    await client.write(40 * MiB, data);
    await client.flush();
    expect((await client.read(40 * MiB, data.length)).equals(data)).toBe(true);
    expect(imageHasPattern(((data.length - 4 * KiB) / (4 * KiB)) % 251, 40 * MiB + data.length - 4 * KiB, 4 * KiB)).toBe(true);
  });

  test('writeZeroes clears written data', async () => {
    await client.write(8 * MiB, Buffer.alloc(1 * MiB, 0x77));
    await client.writeZeroes(8 * MiB, 1 * MiB);
    await client.flush();
    expect((await client.read(8 * MiB, 1 * MiB)).equals(Buffer.alloc(1 * MiB))).toBe(true);
    expect(imageHasPattern(0, 8 * MiB, 1 * MiB)).toBe(true);
  });

  test('writeZeroes with noHole reads zeros', async () => {
    await client.write(12 * MiB, Buffer.alloc(1 * MiB, 0x66));
    await client.writeZeroes(12 * MiB, 1 * MiB, { noHole: true });
    await client.flush();
    expect(imageHasPattern(0, 12 * MiB, 1 * MiB)).toBe(true);
  });

  test('trim deallocates written range', async () => {
    await client.write(16 * MiB, Buffer.alloc(1 * MiB, 0x33));
    const before = await client.mapExtents('base:allocation', 16 * MiB, 1 * MiB);
    await client.trim(16 * MiB, 1 * MiB);
    await client.flush();
    const after = await client.mapExtents('base:allocation', 16 * MiB, 1 * MiB);
    expect(before).toEqual([{ offset: 16 * MiB, length: 1 * MiB, flags: 0 }]);
    expect(after[0]!.flags & NBD_STATE_HOLE).toBe(NBD_STATE_HOLE);
  });

  test('concurrent writes land at own offsets', async () => {
    await Promise.all(Array.from({ length: 8 }, (_, index) => client.write(20 * MiB + index * 256 * KiB, Buffer.alloc(256 * KiB, 0x80 + index))));
    await client.flush();
    for (let index = 0; index < 8; index += 1) {
      expect(imageHasPattern(0x80 + index, 20 * MiB + index * 256 * KiB, 256 * KiB), `block ${index}`).toBe(true);
    }
  });
});

describe.skipIf(!available('qemu-img', 'qemu-nbd'))('NbdClient dirty bitmap on qemu-nbd', () => {
  let dir: string;
  let server: RunningServer;
  let client: NbdClient;

  beforeAll(async () => {
    dir = makeTempDir('nbd-bitmap');
    const image = join(dir, 'bitmap.qcow2');
    createQcow2(image, '16M');
    qemuIo(image, ['write -P 0x01 0 1M']);
    run('qemu-img', ['bitmap', '--add', image, 'bm0']);
    qemuIo(image, ['write -P 0x02 5M 256k', 'write -P 0x03 9M 64k']);
    server = await startQemuNbd(dir, image, ['-r', '-B', 'bm0']);
    client = await NbdClient.connect({
      socketPath: server.socketPath,
      exportName: '',
      metaContexts: ['base:allocation', 'qemu:dirty-bitmap:bm0'],
    });
  });

  afterAll(async () => {
    await client?.close();
    await server?.stop();
    removeTempDir(dir);
  });

  test('mapExtents reports dirty ranges only', async () => {
    const map = await client.mapExtents('qemu:dirty-bitmap:bm0');
    expect(map).toEqual([
      { offset: 0, length: 5 * MiB, flags: 0 },
      { offset: 5 * MiB, length: 256 * KiB, flags: NBD_STATE_DIRTY },
      { offset: 5 * MiB + 256 * KiB, length: 4 * MiB - 256 * KiB, flags: 0 },
      { offset: 9 * MiB, length: 64 * KiB, flags: NBD_STATE_DIRTY },
      { offset: 9 * MiB + 64 * KiB, length: 7 * MiB - 64 * KiB, flags: 0 },
    ]);
  });

  test('base:allocation still includes clean data', async () => {
    const map = await client.mapExtents('base:allocation', 0, 1 * MiB);
    expect(map).toEqual([{ offset: 0, length: 1 * MiB, flags: 0 }]);
  });
});

describe.skipIf(!available('qemu-img', 'qemu-nbd', 'nbdkit'))('NbdClient on 1 GiB sparse image', () => {
  let dir: string;
  let qemuServer: RunningServer;
  let nbdkitServer: RunningServer;
  const ranges: Array<[number, number]> = Array.from({ length: 100 }, (_, index) => [index * 10 * MiB + 3 * MiB + (index % 7) * 64 * KiB, 64 * KiB]);

  beforeAll(async () => {
    dir = makeTempDir('nbd-sparse');
    const qcow2 = join(dir, 'sparse.qcow2');
    createQcow2(qcow2, '1G');
    qemuIo(qcow2, ranges.map(([offset], index) => `write -P ${index + 1} ${offset} 64k`));
    qemuServer = await startQemuNbd(dir, qcow2, ['-r']);

    // The same layout as a raw file behind nbdkit, whose blocksize filter caps each BLOCK_STATUS reply at 64 MiB.
    const raw = join(dir, 'sparse.raw');
    // Written with plain file calls, because qemu-img create allocates the first block of a raw file.
    const file = openSync(raw, 'w');
    ftruncateSync(file, 1024 * MiB);
    ranges.forEach(([offset, length], index) => writeSync(file, Buffer.alloc(length, index + 1), 0, length, offset));
    closeSync(file);
    nbdkitServer = await startNbdkit(dir, ['file', raw, 'maxlen=64M'], ['-r', '--filter=blocksize']);
  });

  afterAll(async () => {
    await qemuServer?.stop();
    await nbdkitServer?.stop();
    removeTempDir(dir);
  });

  test('qemu-nbd map matches scattered data', async () => {
    const client = await NbdClient.connect({ socketPath: qemuServer.socketPath, exportName: '', metaContexts: ['base:allocation'] });
    const map = await client.mapExtents('base:allocation');
    await client.close();
    expect(map).toEqual(expectedMap(1024 * MiB, ranges));
  });

  test('nbdkit short replies need several requests', async () => {
    const client = await NbdClient.connect({ socketPath: nbdkitServer.socketPath, exportName: '', metaContexts: ['base:allocation'] });
    const single = await client.blockStatus('base:allocation', 0, client.size);
    const map = await client.mapExtents('base:allocation');
    await client.close();

    const covered = single.reduce((sum, extent) => sum + extent.length, 0);
    expect(covered).toBeLessThan(1024 * MiB);
    expect(map).toEqual(expectedMap(1024 * MiB, ranges));
  });

  test('read of scattered block returns pattern', async () => {
    const client = await NbdClient.connect({ socketPath: qemuServer.socketPath, exportName: '' });
    const [offset] = ranges[57]!;
    const data = await client.read(offset - 4 * KiB, 72 * KiB);
    await client.close();
    const expected = Buffer.concat([Buffer.alloc(4 * KiB), Buffer.alloc(64 * KiB, 58), Buffer.alloc(4 * KiB)]);
    expect(data.equals(expected)).toBe(true);
  });
});
