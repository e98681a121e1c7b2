import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { NBD_STATE_HOLE, NbdClient } from '../../src/nbd/client.js';
import { available } from '../support/components.js';
import { makeTempDir, removeTempDir, startNbdkit, type RunningServer } from './servers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe.skipIf(!available('nbdkit'))('NbdClient on nbdkit', () => {
  let dir: string;
  const servers: RunningServer[] = [];

  async function serve(args: string[], options: string[] = []): Promise<RunningServer> {
    const server = await startNbdkit(dir, args, options);
    servers.push(server);
    return server;
  }

  beforeAll(() => {
    dir = makeTempDir('nbd-nbdkit');
  });

  afterAll(async () => {
    for (const server of servers) await server.stop();
    removeTempDir(dir);
  });

  test('memory plugin round-trips writes', async () => {
    const server = await serve(['memory', '64M']);
    const client = await NbdClient.connect({ socketPath: server.socketPath, exportName: '', metaContexts: ['base:allocation'] });

    await Promise.all(Array.from({ length: 8 }, (_, index) => client.write(index * MiB, Buffer.alloc(512 * KiB, index + 1))));
    await client.flush();
    const reads = await Promise.all(Array.from({ length: 8 }, (_, index) => client.read(index * MiB, 1 * MiB)));
    const map = await client.mapExtents('base:allocation', 0, 1 * MiB);
    await client.close();

    reads.forEach((data, index) => {
      const expected = Buffer.concat([Buffer.alloc(512 * KiB, index + 1), Buffer.alloc(512 * KiB)]);
      expect(data.equals(expected), `range ${index}`).toBe(true);
    });
    expect(map[0]).toEqual({ offset: 0, length: 512 * KiB, flags: 0 });
    expect(map[1]!.flags & NBD_STATE_HOLE).toBe(NBD_STATE_HOLE);
  });

  test('read into a given buffer', async () => {
    const server = await serve(['memory', '8M']);
    const client = await NbdClient.connect({ socketPath: server.socketPath, exportName: '' });
    await client.write(1 * MiB, Buffer.alloc(256 * KiB, 0x5a));
    const into = Buffer.alloc(1 * MiB, 0xee);

    const data = await client.read(1 * MiB, 512 * KiB, into);
    const tooSmall = client.read(0, 2 * MiB, into);
    await expect(tooSmall).rejects.toThrow('NBD read of 2097152 bytes does not fit its 1048576-byte buffer');
    await client.close();

    expect(data.buffer).toBe(into.buffer);
    expect(data.byteOffset).toBe(into.byteOffset);
    expect(data.equals(Buffer.concat([Buffer.alloc(256 * KiB, 0x5a), Buffer.alloc(256 * KiB)]))).toBe(true);
    expect(into.subarray(512 * KiB).equals(Buffer.alloc(512 * KiB, 0xee))).toBe(true);
  });

  test('memory plugin writeZeroes and trim', async () => {
    const server = await serve(['memory', '8M']);
    const client = await NbdClient.connect({ socketPath: server.socketPath, exportName: '' });

    await client.write(0, Buffer.alloc(2 * MiB, 0x42));
    await client.writeZeroes(0, 1 * MiB);
    await client.trim(1 * MiB, 1 * MiB);
    const zeroed = await client.read(0, 1 * MiB);
    await client.close();

    expect(zeroed.equals(Buffer.alloc(1 * MiB))).toBe(true);
  });

  test('simple replies without structured replies', async () => {
    const server = await serve(['memory', '8M'], ['--no-sr']);
    const client = await NbdClient.connect({ socketPath: server.socketPath, exportName: '' });

    await client.write(4 * MiB, Buffer.alloc(64 * KiB, 0x99));
    const reads = await Promise.all([client.read(4 * MiB, 64 * KiB), client.read(4 * MiB + 64 * KiB, 64 * KiB)]);
    await client.close();

    expect(reads[0]!.equals(Buffer.alloc(64 * KiB, 0x99))).toBe(true);
    expect(reads[1]!.equals(Buffer.alloc(64 * KiB))).toBe(true);
  });

  test('meta context without structured replies rejects', async () => {
    const server = await serve(['memory', '1M'], ['--no-sr']);
    const attempt = NbdClient.connect({ socketPath: server.socketPath, exportName: '', metaContexts: ['base:allocation'] });
    await expect(attempt).rejects.toThrow(/server does not support structured replies, which block status queries \(base:allocation\) need/);
  });

  test('server without fixed newstyle rejects', async () => {
    const server = await serve(['memory', '1M'], ['--mask-handshake=0']);
    const attempt = NbdClient.connect({ socketPath: server.socketPath, exportName: '' });
    await expect(attempt).rejects.toThrow(/does not support fixed newstyle negotiation/);
  });

  test('full plugin write reports ENOSPC', async () => {
    const server = await serve(['full', '1M']);
    const client = await NbdClient.connect({ socketPath: server.socketPath, exportName: '' });
    const attempt = client.write(64 * KiB, Buffer.alloc(4 * KiB, 1));
    await expect(attempt).rejects.toThrow(/WRITE at offset 65536 length 4096 failed.* with ENOSPC \(no space left on device\)/);
    await expect(attempt).rejects.toThrow(/free space on the storage behind the export/);
    await client.close();
  });

  test('error filter read reports EIO', async () => {
    const server = await serve(['memory', '1M', 'error-pread=EIO', 'error-pread-rate=100%'], ['--filter=error']);
    const client = await NbdClient.connect({ socketPath: server.socketPath, exportName: 'disk0' });
    const attempt = client.read(0, 4 * KiB);
    await expect(attempt).rejects.toThrow(/NBD export 'disk0' on unix:.*: READ at offset 0 length 4096 failed.* with EIO/);
    // The failed request leaves the connection usable.
    await expect(client.write(0, Buffer.alloc(512))).resolves.toBeUndefined();
    await client.close();
  });

  test('writeZeroes falls back to writes', async () => {
    const server = await serve(['memory', '4M', 'zeromode=none'], ['--filter=nozero']);
    const client = await NbdClient.connect({ socketPath: server.socketPath, exportName: '' });

    await client.write(0, Buffer.alloc(3 * MiB, 0x17));
    await client.writeZeroes(512 * KiB, 2 * MiB);
    const data = await client.read(0, 3 * MiB);
    await client.close();

    const expected = Buffer.concat([Buffer.alloc(512 * KiB, 0x17), Buffer.alloc(2 * MiB), Buffer.alloc(512 * KiB, 0x17)]);
    expect(data.equals(expected)).toBe(true);
  });

  test('block size constraints split requests', async () => {
    const policy = ['blocksize-minimum=4096', 'blocksize-preferred=4096', 'blocksize-maximum=65536', 'blocksize-error-policy=error'];
    const server = await serve(['memory', '4M', ...policy], ['--filter=blocksize-policy']);
    const client = await NbdClient.connect({ socketPath: server.socketPath, exportName: '' });

    const data = Buffer.alloc(1 * MiB);
    for (let offset = 0; offset < data.length; offset += 4 * KiB) data.fill(offset / (4 * KiB) + 1, offset, offset + 4 * KiB);
    await client.write(1 * MiB, data);
    const back = await client.read(1 * MiB, 1 * MiB);
    await expect(client.read(100, 4 * KiB)).rejects.toThrow(/READ at offset 100 length 4096 is not aligned to the minimum block size of 4096 bytes/);
    await client.close();

    expect(client.blockSize).toEqual({ minimum: 4096, preferred: 4096, maximum: 65536 });
    expect(client.maxRequestBytes).toBe(65536);
    expect(back.equals(data)).toBe(true);
  });
});
