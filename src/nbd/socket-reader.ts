/**
 * Reads exact byte counts from a socket during the handshake, where messages
 * are small and strictly request/response. The transmission phase uses the
 * reply parser instead, which never buffers whole payloads.
 */
import type { Socket } from 'node:net';

interface PendingRead {
  length: number;
  resolve: (bytes: Buffer) => void;
  reject: (error: Error) => void;
}

export class SocketReader {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private pending: PendingRead | undefined;
  private failure: Error | undefined;

  // The chunk is a view of the socket's reused read buffer, so it is copied.
  private readonly onData = (chunk: Buffer): void => {
    this.chunks.push(Buffer.from(chunk));
    this.buffered += chunk.length;
    this.serve();
  };

  private readonly onEnd = (): void => {
    this.fail(new Error('server closed the connection'));
  };

  private readonly onError = (error: Error): void => {
    this.fail(error);
  };

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  /** Resolves with exactly `length` bytes, or rejects when the socket ends or fails first. */
  readExact(length: number): Promise<Buffer> {
    if (this.pending) throw new Error('SocketReader allows one read at a time');

    return new Promise((resolve, reject) => {
      this.pending = { length, resolve, reject };
      this.serve();
    });
  }

  /** Rejects the current and every later read with `error`. */
  fail(error: Error): void {
    this.failure ??= error;
    const pending = this.pending;
    if (pending && this.buffered < pending.length) {
      this.pending = undefined;
      pending.reject(this.failure);
    }
  }

  /** Stops listening and returns any bytes received beyond the last read. */
  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    return Buffer.concat(this.chunks, this.buffered);
  }

  private serve(): void {
    const pending = this.pending;
    if (!pending) return;

    if (this.buffered < pending.length) {
      if (this.failure) {
        this.pending = undefined;
        pending.reject(this.failure);
      }
      return;
    }

    this.pending = undefined;
    pending.resolve(this.take(pending.length));
  }

  private take(length: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    this.chunks.length = 0;
    const rest = all.subarray(length);
    if (rest.length > 0) this.chunks.push(rest);
    this.buffered = rest.length;
    return all.subarray(0, length);
  }
}
