import { describe, expect, it } from 'vitest';

import { BufferPool } from '../../src/segment/buffer-pool.js';

describe('BufferPool', () => {
  it('pool hands out whole buffers of its size', async () => {
    const pool = new BufferPool(4096, 2);
    const buffer = await pool.take();

    expect(buffer.length).toBe(4096);
    expect(buffer.byteOffset).toBe(0);
    expect(buffer.buffer.byteLength).toBe(4096);
    expect(pool.inUse).toBe(1);
  });

  it('pool reuses given back memory', async () => {
    const pool = new BufferPool(1024, 1);
    const first = await pool.take();
    first[0] = 42;
    pool.give(first.subarray(0, 10));

    const second = await pool.take();
    expect(second.buffer).toBe(first.buffer);
    expect(second.length).toBe(1024);
  });

  it('pool take waits until a buffer comes back', async () => {
    const pool = new BufferPool(64, 1);
    const lentBuffer = await pool.take();
    let received: Buffer | undefined;
    const waiting = pool.take().then((buffer) => (received = buffer));

    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(received).toBeUndefined();

    pool.give(lentBuffer);
    await waiting;
    expect(received?.buffer).toBe(lentBuffer.buffer);
    expect(pool.inUse).toBe(1);
  });

  it('pool accepts memory that came back as a new object', async () => {
    const pool = new BufferPool(256, 1);
    const lentBuffer = await pool.take();
    // A worker thread hands back the same memory as a new Uint8Array.
    const moved = structuredClone(lentBuffer, { transfer: [lentBuffer.buffer as ArrayBuffer] });
    pool.give(moved);

    expect(pool.inUse).toBe(0);
    expect((await pool.take()).length).toBe(256);
  });

  it('pool drops a smaller copy and frees its slot', async () => {
    const pool = new BufferPool(512, 1);
    await pool.take();
    pool.give(new Uint8Array(100));

    expect(pool.inUse).toBe(0);
    const next = await pool.take();
    expect(next.length).toBe(512);
  });

  it('pool drop wakes a waiter with a new buffer', async () => {
    const pool = new BufferPool(128, 1);
    await pool.take();
    const waiting = pool.take();
    pool.drop();

    expect((await waiting).length).toBe(128);
    expect(pool.inUse).toBe(1);
  });

  it('pool take ends on abort', async () => {
    const pool = new BufferPool(128, 1);
    await pool.take();
    const controller = new AbortController();
    const waiting = pool.take(controller.signal);
    controller.abort(new Error('backup cancelled'));

    await expect(waiting).rejects.toThrow('backup cancelled');
    pool.drop();
    expect(pool.inUse).toBe(0);
  });

  it('pool rejects a size of zero', () => {
    expect(() => new BufferPool(0, 1)).toThrow(/positive whole number of bytes, got 0/);
    expect(() => new BufferPool(16, 0)).toThrow(/count must be a positive whole number, got 0/);
  });
});
