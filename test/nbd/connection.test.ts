import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { NbdError } from '../../src/errors.js';
import { NbdClient } from '../../src/nbd/client.js';
import { chunkHeader, offsetDataChunk, startFakeServer, type FakeServer } from './fake-server.js';
import { makeTempDir, removeTempDir } from './servers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('NbdConnection failure handling', () => {
  let dir: string;
  let server: FakeServer | undefined;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeAll(() => {
    dir = makeTempDir('nbd-fake');
    process.on('unhandledRejection', onUnhandled);
  });

  afterAll(() => {
    process.off('unhandledRejection', onUnhandled);
    removeTempDir(dir);
  });

  beforeEach(() => {
    unhandled.length = 0;
  });

  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  /** Lets pending rejections surface as unhandled before checking. */
  const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

  test('server closing mid-reply rejects pending', async () => {
    let requests = 0;
    server = await startFakeServer(dir, {
      exportSize: 4 * MiB,
      onRequest(request, socket) {
        requests += 1;
        // Wait for the second READ, then send half of the first reply and drop the connection.
        if (requests < 2) return;
        const full = offsetDataChunk(request.cookie, request.offset, Buffer.alloc(request.length, 7));
        socket.write(full.subarray(0, 20 + 8 + request.length / 2), () => socket.destroy());
      },
    });
    const client = await NbdClient.connect({ socketPath: server.socketPath, exportName: 'vda' });

    const first = client.read(0, 64 * KiB);
    const second = client.read(1 * MiB, 64 * KiB);
    const results = await Promise.allSettled([first, second]);
    await settle();

    const [firstResult, secondResult] = results;
    expect(firstResult.status).toBe('rejected');
    expect(secondResult.status).toBe('rejected');
    const error = (firstResult as PromiseRejectedResult).reason as Error;
    expect(error).toBeInstanceOf(NbdError);
    expect(error.message).toMatch(
      /connection to NBD server unix:.* for export 'vda' closed in the middle of the reply to READ at offset 1048576 while 2 requests were pending \(READ at offset 0 length 65536, READ at offset 1048576 length 65536\)/,
    );
    expect((secondResult as PromiseRejectedResult).reason).toBe(error);
    await expect(client.read(0, 512)).rejects.toBe(error);
    expect(unhandled).toEqual([]);
    await client.close();
  });

  test('abort signal rejects pending requests', async () => {
    server = await startFakeServer(dir, { exportSize: 4 * MiB, onRequest: () => undefined });
    const controller = new AbortController();
    const client = await NbdClient.connect({ socketPath: server.socketPath, exportName: '', signal: controller.signal });

    const pending = client.read(0, 4 * KiB);
    controller.abort(new Error('stop requested'));

    await expect(pending).rejects.toThrow(/NBD export '' on unix:.*: aborted with 1 pending requests/);
    await expect(client.read(0, 4 * KiB)).rejects.toThrow(/aborted/);
    await settle();
    expect(unhandled).toEqual([]);
    await client.close();
  });

  test('abort during handshake rejects connect', async () => {
    server = await startFakeServer(dir, { exportSize: 4 * MiB, onRequest: () => undefined, silent: true });
    const controller = new AbortController();
    const attempt = NbdClient.connect({ socketPath: server.socketPath, exportName: '', signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await expect(attempt).rejects.toThrow(/for export '' was aborted/);
  });

  test('handshake timeout rejects connect', async () => {
    server = await startFakeServer(dir, { exportSize: 4 * MiB, onRequest: () => undefined, silent: true });
    const attempt = NbdClient.connect({ socketPath: server.socketPath, exportName: '', connectTimeoutMs: 100 });
    await expect(attempt).rejects.toThrow(/timed out after 100 ms/);
  });

  test('reply longer than requested rejects', async () => {
    server = await startFakeServer(dir, {
      exportSize: 4 * MiB,
      onRequest(request, socket) {
        socket.write(offsetDataChunk(request.cookie, request.offset, Buffer.alloc(request.length + 512)));
      },
    });
    const client = await NbdClient.connect({ socketPath: server.socketPath, exportName: '' });

    await expect(client.read(0, 4 * KiB)).rejects.toThrow(/server violated the protocol: structured reply chunk of type 1 with 4616 bytes for READ at offset 0 length 4096, more than the 4104 allowed/);
    await client.close();
  });

  test('reply for unknown cookie rejects', async () => {
    server = await startFakeServer(dir, {
      exportSize: 4 * MiB,
      onRequest(request, socket) {
        socket.write(chunkHeader(1, 0, Buffer.alloc(8, 0xee), 0));
      },
    });
    const client = await NbdClient.connect({ socketPath: server.socketPath, exportName: '' });

    await expect(client.read(0, 4 * KiB)).rejects.toThrow(/reply for unknown cookie/);
    await client.close();
  });

  test('reply missing data rejects', async () => {
    server = await startFakeServer(dir, {
      exportSize: 4 * MiB,
      onRequest(request, socket) {
        socket.write(offsetDataChunk(request.cookie, request.offset, Buffer.alloc(request.length / 2, 1)));
      },
    });
    const client = await NbdClient.connect({ socketPath: server.socketPath, exportName: '' });

    await expect(client.read(0, 4 * KiB)).rejects.toThrow(/server reply to READ at offset 0 length 4096 covered 2048 of 4096 bytes/);
    await client.close();
  });

  test('size above 2^53 rejects connect', async () => {
    server = await startFakeServer(dir, { exportSize: 2 ** 60, onRequest: () => undefined });
    const attempt = NbdClient.connect({ socketPath: server.socketPath, exportName: '' });
    await expect(attempt).rejects.toThrow(/export is larger than 2\^53 bytes/);
  });
});
