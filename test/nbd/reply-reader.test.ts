import { describe, expect, test } from 'vitest';
import { NBD_CMD_BLOCK_STATUS, NBD_CMD_READ } from '../../src/nbd/protocol.js';
import { ReplyProtocolError, ReplyReader, type InFlightRequest } from '../../src/nbd/reply-reader.js';
import { chunkHeader, offsetDataChunk } from './fake-server.js';

function cookieBytes(cookie: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeUInt32BE(cookie, 4);
  return bytes;
}

function readRequest(cookie: number, offset: number, length: number): InFlightRequest {
  return { cookie, command: NBD_CMD_READ, offset, length, destination: Buffer.alloc(length, 0xff), receivedBytes: 0, extents: new Map(), serverError: undefined };
}

/**
 * Feeds `stream` to a reader `step` bytes at a time and returns the completed
 * requests in order. As the NBD socket does, each piece is a view of one
 * reused buffer that is overwritten after the push, so a reader that kept a
 * view instead of copying would see the wrong bytes.
 */
function parse(requests: InFlightRequest[], stream: Buffer, step: number): InFlightRequest[] {
  const completed: InFlightRequest[] = [];
  const reader = new ReplyReader({
    maxPayloadBytes: 1024 * 1024,
    find: (cookie) => requests.find((request) => request.cookie === cookie),
    complete: (request) => completed.push(request),
  });
  const reused = Buffer.alloc(step);
  for (let position = 0; position < stream.length; position += step) {
    const length = stream.copy(reused, 0, position, position + step);
    reader.push(reused.subarray(0, length));
    reused.fill(0xee);
  }
  return completed;
}

function holeChunk(cookie: Buffer, offset: number, length: number, done: boolean): Buffer {
  const payload = Buffer.alloc(12);
  payload.writeBigUInt64BE(BigInt(offset));
  payload.writeUInt32BE(length, 8);
  return Buffer.concat([chunkHeader(done ? 1 : 0, 2, cookie, 12), payload]);
}

describe('ReplyReader', () => {
  test('byte-at-a-time stream parses interleaved reads', () => {
    const first = readRequest(1, 0, 8);
    const second = readRequest(2, 100, 4);
    const data = offsetDataChunk(cookieBytes(1), 4, Buffer.from([1, 2, 3, 4]));
    const stream = Buffer.concat([holeChunk(cookieBytes(1), 0, 4, false), offsetDataChunk(cookieBytes(2), 100, Buffer.from([9, 9, 9, 9])), data]);

    const completed = parse([first, second], stream, 1);

    expect(completed.map((request) => request.cookie)).toEqual([2, 1]);
    expect([...first.destination!]).toEqual([0, 0, 0, 0, 1, 2, 3, 4]);
    expect(first.receivedBytes).toBe(8);
    expect([...second.destination!]).toEqual([9, 9, 9, 9]);
  });

  test('simple reply copies read data', () => {
    const request = readRequest(3, 0, 6);
    const header = Buffer.alloc(16);
    header.writeUInt32BE(0x67446698, 0);
    cookieBytes(3).copy(header, 8);

    parse([request], Buffer.concat([header, Buffer.from('abcdef')]), 5);

    expect(request.destination!.toString()).toBe('abcdef');
  });

  test('error chunk records server error', () => {
    const request = readRequest(4, 0, 512);
    const message = Buffer.from('disk gone');
    const payload = Buffer.alloc(6 + message.length);
    payload.writeUInt32BE(5, 0);
    payload.writeUInt16BE(message.length, 4);
    message.copy(payload, 6);

    const completed = parse([request], Buffer.concat([chunkHeader(1, 0x8001, cookieBytes(4), payload.length), payload]), 7);

    expect(completed).toHaveLength(1);
    expect(request.serverError).toEqual({ error: 5, message: 'disk gone' });
  });

  test('block status chunk yields extents', () => {
    const request: InFlightRequest = { ...readRequest(5, 4096, 8192), command: NBD_CMD_BLOCK_STATUS, destination: undefined };
    const payload = Buffer.alloc(4 + 16);
    payload.writeUInt32BE(7, 0);
    payload.writeUInt32BE(4096, 4);
    payload.writeUInt32BE(3, 8);
    payload.writeUInt32BE(8192, 12);
    payload.writeUInt32BE(0, 16);

    parse([request], Buffer.concat([chunkHeader(1, 5, cookieBytes(5), payload.length), payload]), 3);

    expect(request.extents.get(7)).toEqual([
      { offset: 4096, length: 4096, flags: 3 },
      { offset: 8192, length: 8192, flags: 0 },
    ]);
  });

  test('hole outside request throws', () => {
    const request = readRequest(6, 0, 4096);
    expect(() => parse([request], holeChunk(cookieBytes(6), 4096, 512, true), 64)).toThrow(ReplyProtocolError);
  });

  test('invalid magic throws', () => {
    expect(() => parse([], Buffer.alloc(20, 0x41), 20)).toThrow(/reply with invalid magic 0x41414141/);
  });
});
