import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';

import { describe, expect, it } from 'vitest';

import { SocketReader } from '../../src/nbd/socket-reader.js';

/** Emits `parts` as 'data' events, each a view of one buffer that is overwritten after the event. */
function emitReused(socket: EventEmitter, parts: string[]): void {
  const reused = Buffer.alloc(64);
  for (const part of parts) {
    const length = reused.write(part);
    socket.emit('data', reused.subarray(0, length));
    reused.fill(0x2a);
  }
}

describe('SocketReader', () => {
  it('reused read buffer keeps received bytes', async () => {
    const socket = new EventEmitter();
    const reader = new SocketReader(socket as unknown as Socket);

    emitReused(socket, ['NBDM', 'AGIC', 'xyz']);
    const first = await reader.readExact(8);
    const rest = reader.detach();

    expect(first.toString()).toBe('NBDMAGIC');
    expect(rest.toString()).toBe('xyz');
  });

  it('read waits for later chunks', async () => {
    const socket = new EventEmitter();
    const reader = new SocketReader(socket as unknown as Socket);

    const reading = reader.readExact(6);
    emitReused(socket, ['abc', 'def']);

    expect((await reading).toString()).toBe('abcdef');
  });
});
