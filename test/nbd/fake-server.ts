/**
 * A minimal scripted NBD server for failure cases that real servers do not
 * produce on demand. It completes a fixed newstyle handshake with
 * structured replies and no metadata contexts. Then it hands every
 * transmission request to a test callback, which may reply, stay silent or
 * drop the socket.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';

export interface FakeRequest {
  command: number;
  flags: number;
  cookie: Buffer;
  offset: number;
  length: number;
}

export interface FakeServerOptions {
  exportSize: number;
  /** Called for each request after the handshake; WRITE payloads are not supported. */
  onRequest(request: FakeRequest, socket: Socket): void;
  /** When true, the server accepts connections but never sends the greeting. */
  silent?: boolean;
}

export interface FakeServer {
  socketPath: string;
  close(): Promise<void>;
}

const OPTION_REPLY_MAGIC = Buffer.from('0003e889045565a9', 'hex');

export async function startFakeServer(dir: string, options: FakeServerOptions): Promise<FakeServer> {
  const socketPath = join(dir, `fake-${Math.random().toString(16).slice(2)}.sock`);
  const sockets = new Set<Socket>();

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    if (!options.silent) serveConnection(socket, options);
  });

  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    socketPath,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function serveConnection(socket: Socket, options: FakeServerOptions): void {
  const greeting = Buffer.alloc(18);
  greeting.write('NBDMAGICIHAVEOPT', 0, 'latin1');
  greeting.writeUInt16BE(0b11, 16); // NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES
  socket.write(greeting);

  let buffered = Buffer.alloc(0);
  let phase: 'flags' | 'options' | 'transmission' = 'flags';

  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);

    for (;;) {
      if (phase === 'flags') {
        if (buffered.length < 4) return;
        buffered = buffered.subarray(4);
        phase = 'options';
      } else if (phase === 'options') {
        if (buffered.length < 16) return;
        const length = buffered.readUInt32BE(12);
        if (buffered.length < 16 + length) return;
        const option = buffered.readUInt32BE(8);
        buffered = buffered.subarray(16 + length);
        if (answerOption(socket, option, options.exportSize)) phase = 'transmission';
      } else {
        if (buffered.length < 28) return;
        const request: FakeRequest = {
          flags: buffered.readUInt16BE(4),
          command: buffered.readUInt16BE(6),
          cookie: Buffer.from(buffered.subarray(8, 16)),
          offset: Number(buffered.readBigUInt64BE(16)),
          length: buffered.readUInt32BE(24),
        };
        buffered = buffered.subarray(28);
        options.onRequest(request, socket);
      }
    }
  });
}

/** Sends the reply to one option. Returns true when the server enters transmission. */
function answerOption(socket: Socket, option: number, exportSize: number): boolean {
  if (option === 8) {
    socket.write(optionReply(option, 1, Buffer.alloc(0))); // NBD_OPT_STRUCTURED_REPLY -> NBD_REP_ACK
    return false;
  }
  if (option === 7) {
    const info = Buffer.alloc(12);
    info.writeUInt16BE(0, 0); // NBD_INFO_EXPORT
    info.writeBigUInt64BE(BigInt(exportSize), 2);
    info.writeUInt16BE(0b11, 10); // NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY
    socket.write(optionReply(option, 3, info));
    socket.write(optionReply(option, 1, Buffer.alloc(0)));
    return true;
  }
  socket.write(optionReply(option, 0x80000001, Buffer.alloc(0))); // NBD_REP_ERR_UNSUP
  return false;
}

function optionReply(option: number, type: number, data: Buffer): Buffer {
  const header = Buffer.alloc(20);
  OPTION_REPLY_MAGIC.copy(header, 0);
  header.writeUInt32BE(option, 8);
  header.writeUInt32BE(type, 12);
  header.writeUInt32BE(data.length, 16);
  return Buffer.concat([header, data]);
}

/** Encodes a structured reply chunk header. */
export function chunkHeader(flags: number, type: number, cookie: Buffer, length: number): Buffer {
  const header = Buffer.alloc(20);
  header.writeUInt32BE(0x668e33ef, 0);
  header.writeUInt16BE(flags, 4);
  header.writeUInt16BE(type, 6);
  cookie.copy(header, 8);
  header.writeUInt32BE(length, 16);
  return header;
}

/** Encodes an OFFSET_DATA chunk with the DONE flag. */
export function offsetDataChunk(cookie: Buffer, offset: number, data: Buffer): Buffer {
  const offsetField = Buffer.alloc(8);
  offsetField.writeBigUInt64BE(BigInt(offset));
  return Buffer.concat([chunkHeader(1, 1, cookie, 8 + data.length), offsetField, data]);
}
