/**
 * NBD client for reading disks from libvirt pull-mode backup exports and
 * qemu-nbd, and for writing restored images through qemu-nbd.
 *
 * Public methods check ranges and alignment, split work into requests the
 * server accepts, and send the pieces of one call all at once, so that the
 * server can work on them in parallel. Several calls may run at once on one
 * client. Limits: no TLS, no extended headers (64-bit lengths), and no
 * per-request timeout, so a server that stops replying blocks a call until
 * the caller aborts the signal.
 */
import { connect as connectSocket, type Socket } from 'node:net';
import { NbdError } from '../errors.js';
import { NbdConnection, describeRequest, type RequestSpec } from './connection.js';
import { appendMerged, clipExtents } from './extents.js';
import { negotiate, type NbdBlockSize, type NegotiatedExport } from './handshake.js';
import {
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_FLAG_HAS_FLAGS,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
  NBD_MAX_EFFECT_BYTES,
  NBD_MAX_PAYLOAD_BYTES,
} from './protocol.js';
import type { NbdExtent } from './reply-reader.js';
import { SocketReader } from './socket-reader.js';

export { NBD_STATE_DIRTY, NBD_STATE_HOLE, NBD_STATE_ZERO } from './protocol.js';
export type { NbdExtent } from './reply-reader.js';
export type { NbdBlockSize } from './handshake.js';

export interface NbdConnectOptions {
  /** Unix socket of the server; use either this or host and port. */
  socketPath?: string;
  host?: string;
  /** TCP port; defaults to 10809, the port registered for NBD. */
  port?: number;
  /** Export to open; '' selects the default export. */
  exportName: string;
  /** Metadata contexts to negotiate, such as 'base:allocation' or 'qemu:dirty-bitmap:backup-vda'. Each must be offered by the server. */
  metaContexts?: string[];
  /** Limit for connecting and the handshake together, in milliseconds; default 30000. */
  connectTimeoutMs?: number;
  /** Aborting closes the socket and rejects pending requests. */
  signal?: AbortSignal;
}

const DEFAULT_PORT = 10809;
const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
/** How many zero-filled WRITE requests the fallback for WRITE_ZEROES keeps in flight. */
const ZERO_WRITE_WINDOW = 4;

export class NbdClient {
  readonly exportName: string;
  /** Export size in bytes. */
  readonly size: number;
  readonly readOnly: boolean;
  /** Server size constraints in bytes; protocol defaults when the server sent none. */
  readonly blockSize: NbdBlockSize;
  /** Largest READ or WRITE payload sent in one request: the server maximum, at most 32 MiB, rounded down to the minimum block size. */
  readonly maxRequestBytes: number;

  private readonly transmissionFlags: number;
  private readonly metaContextIds: Map<string, number>;

  private constructor(
    private readonly connection: NbdConnection,
    negotiated: NegotiatedExport,
    exportName: string,
    maxRequestBytes: number,
  ) {
    this.exportName = exportName;
    this.size = negotiated.size;
    // Without NBD_FLAG_HAS_FLAGS the other transmission flags carry no meaning.
    this.transmissionFlags = negotiated.transmissionFlags & NBD_FLAG_HAS_FLAGS ? negotiated.transmissionFlags : 0;
    this.readOnly = (this.transmissionFlags & NBD_FLAG_READ_ONLY) !== 0;
    this.blockSize = { ...negotiated.blockSize };
    this.maxRequestBytes = maxRequestBytes;
    this.metaContextIds = negotiated.metaContextIds;
  }

  /** Connects, negotiates the export and returns a client in the transmission phase. */
  static async connect(options: NbdConnectOptions): Promise<NbdClient> {
    const server = describeServer(options);
    const exportName = options.exportName;
    const fail = (fault: string, action: string, cause?: unknown) =>
      new NbdError(`connecting to NBD server ${server} for export '${exportName}' ${fault}; ${action}`, cause === undefined ? undefined : { cause });

    if (options.signal?.aborted) throw fail('was aborted before it started', 'the caller cancelled the operation', options.signal.reason);

    const socket = openSocket(options);
    const reader = new SocketReader(socket);
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;

    const timer = setTimeout(() => {
      reader.fail(fail(`timed out after ${timeoutMs} ms`, 'check that the server is running and answers NBD handshakes'));
      socket.destroy();
    }, timeoutMs);
    const onAbort = () => {
      reader.fail(fail('was aborted', 'the caller cancelled the operation', options.signal?.reason));
      socket.destroy();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });

    let negotiated: NegotiatedExport;
    try {
      negotiated = await negotiate(socket, reader, { exportName, metaContexts: options.metaContexts ?? [], server });
    } catch (error) {
      socket.destroy();
      if (error instanceof NbdError) throw error;
      throw fail(`failed: ${(error as Error).message}`, 'check that the server is running and the socket path or address is right', error);
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    }

    const leftover = reader.detach();
    const { minimum, maximum } = negotiated.blockSize;
    const maxRequestBytes = Math.floor(Math.min(maximum, NBD_MAX_PAYLOAD_BYTES) / minimum) * minimum;

    const connection = new NbdConnection(socket, server, exportName, maxRequestBytes, options.signal, leftover);
    return new NbdClient(connection, negotiated, exportName, maxRequestBytes);
  }

  /** Returns true when the metadata context was negotiated and can be queried. */
  hasMetaContext(name: string): boolean {
    return this.metaContextIds.has(name);
  }

  /**
   * Sends one BLOCK_STATUS request and returns the extents of `context`,
   * clipped to the requested range. The server may describe less than the
   * whole range, and lengths above 1 GiB are shortened to 1 GiB.
   */
  async blockStatus(context: string, offset: number, length: number): Promise<NbdExtent[]> {
    const contextId = this.metaContextIds.get(context);
    if (contextId === undefined) {
      const negotiated = [...this.metaContextIds.keys()].join(', ') || 'none';
      throw this.error(`metadata context '${context}' was not negotiated (negotiated: ${negotiated})`, 'pass it in metaContexts when connecting');
    }

    this.checkRange(NBD_CMD_BLOCK_STATUS, offset, length);
    if (length === 0) return [];
    const requestLength = Math.min(length, NBD_MAX_EFFECT_BYTES);

    const reply = await this.connection.send({ command: NBD_CMD_BLOCK_STATUS, flags: 0, offset, length: requestLength });
    const extents = reply.extents.get(contextId);
    if (!extents) {
      throw this.error(`server sent no extents for context '${context}' in reply to ${describeRequest(reply)}`, 'report this server bug');
    }
    return clipExtents(extents, offset, offset + requestLength);
  }

  /**
   * Returns extents that cover [offset, offset + length) completely, sending
   * as many BLOCK_STATUS requests as needed, one after another. Adjacent
   * extents with equal flags are merged.
   */
  async mapExtents(context: string, offset = 0, length = this.size - offset): Promise<NbdExtent[]> {
    this.checkRange(NBD_CMD_BLOCK_STATUS, offset, length);
    const end = offset + length;
    const map: NbdExtent[] = [];
    let cursor = offset;

    while (cursor < end) {
      const extents = await this.blockStatus(context, cursor, end - cursor);
      const last = extents[extents.length - 1];
      // blockStatus returns clipped, contiguous extents, so an empty list or a gap means the server broke the protocol.
      if (!last || extents[0]!.offset !== cursor) {
        throw this.error(`server described no extent at offset ${cursor} for context '${context}'`, 'report this server bug');
      }
      appendMerged(map, extents);
      cursor = last.offset + last.length;
    }
    return map;
  }

  /**
   * Reads `length` bytes at `offset` into `into` (at least `length` bytes,
   * by default a new buffer) and returns the filled view of it. Holes come
   * back as zeros.
   */
  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    this.checkRange(NBD_CMD_READ, offset, length);
    if (into !== undefined && into.byteLength < length) {
      throw new RangeError(`NBD read of ${length} bytes does not fit its ${into.byteLength}-byte buffer`);
    }
    const destination = into === undefined ? Buffer.allocUnsafe(length) : into.subarray(0, length);

    const pieces = splitRange(offset, length, this.maxRequestBytes).map(([start, pieceLength]) =>
      this.connection.send({
        command: NBD_CMD_READ,
        flags: 0,
        offset: start,
        length: pieceLength,
        destination: destination.subarray(start - offset, start - offset + pieceLength),
      }),
    );
    await Promise.all(pieces);
    return destination;
  }

  /**
   * Writes `data` at `offset`. With `fua`, the call resolves only after the
   * data is on stable storage; a server without FUA support gets a FLUSH.
   */
  async write(offset: number, data: Buffer, options: { fua?: boolean } = {}): Promise<void> {
    this.checkWritable(NBD_CMD_WRITE, offset, data.length);
    const serverFua = options.fua === true && (this.transmissionFlags & NBD_FLAG_SEND_FUA) !== 0;
    const flags = serverFua ? NBD_CMD_FLAG_FUA : 0;

    const pieces = splitRange(offset, data.length, this.maxRequestBytes).map(([start, pieceLength]) =>
      this.connection.send({
        command: NBD_CMD_WRITE,
        flags,
        offset: start,
        length: pieceLength,
        payload: data.subarray(start - offset, start - offset + pieceLength),
      }),
    );
    await Promise.all(pieces);

    if (options.fua && !serverFua) await this.flush();
  }

  /**
   * Writes zeros over [offset, offset + length). With `noHole`, the server
   * must allocate the range instead of punching a hole. A server without
   * WRITE_ZEROES gets WRITE requests with zero-filled buffers.
   */
  async writeZeroes(offset: number, length: number, options: { noHole?: boolean } = {}): Promise<void> {
    this.checkWritable(NBD_CMD_WRITE_ZEROES, offset, length);
    if (length === 0) return;

    if ((this.transmissionFlags & NBD_FLAG_SEND_WRITE_ZEROES) === 0) {
      await this.writeZeroBuffers(offset, length);
      return;
    }

    const flags = options.noHole ? NBD_CMD_FLAG_NO_HOLE : 0;
    await this.sendEffectRequests(NBD_CMD_WRITE_ZEROES, flags, offset, length);
  }

  /**
   * Tells the server that [offset, offset + length) is no longer needed.
   * The range may then read back as anything, so callers that need zeros
   * use writeZeroes. A server without TRIM support makes this a no-op.
   */
  async trim(offset: number, length: number): Promise<void> {
    this.checkWritable(NBD_CMD_TRIM, offset, length);
    if (length === 0 || (this.transmissionFlags & NBD_FLAG_SEND_TRIM) === 0) return;
    await this.sendEffectRequests(NBD_CMD_TRIM, 0, offset, length);
  }

  /**
   * Asks the server to write completed writes to stable storage. A server
   * that does not advertise FLUSH has no write cache to flush, so this is a
   * no-op there.
   */
  async flush(): Promise<void> {
    if ((this.transmissionFlags & NBD_FLAG_SEND_FLUSH) === 0) return;
    await this.connection.send({ command: NBD_CMD_FLUSH, flags: 0, offset: 0, length: 0 });
  }

  /** Waits for pending requests, sends NBD_CMD_DISC and closes the socket. Safe to call more than once. */
  close(): Promise<void> {
    return this.connection.close();
  }

  private async sendEffectRequests(command: number, flags: number, offset: number, length: number): Promise<void> {
    const requests: RequestSpec[] = splitRange(offset, length, NBD_MAX_EFFECT_BYTES).map(([start, pieceLength]) => ({
      command,
      flags,
      offset: start,
      length: pieceLength,
    }));
    await Promise.all(requests.map((request) => this.connection.send(request)));
  }

  private async writeZeroBuffers(offset: number, length: number): Promise<void> {
    const zeros = Buffer.alloc(Math.min(length, this.maxRequestBytes));
    const pieces = splitRange(offset, length, zeros.length);

    // A few requests at a time, so that zeroing a large range does not queue gigabytes of socket writes.
    for (let index = 0; index < pieces.length; index += ZERO_WRITE_WINDOW) {
      const window = pieces.slice(index, index + ZERO_WRITE_WINDOW);
      await Promise.all(
        window.map(([start, pieceLength]) =>
          this.connection.send({ command: NBD_CMD_WRITE, flags: 0, offset: start, length: pieceLength, payload: zeros.subarray(0, pieceLength) }),
        ),
      );
    }
  }

  private checkWritable(command: number, offset: number, length: number): void {
    if (this.readOnly) {
      throw this.error(`${describeRequest({ command, offset, length })} rejected because the export is read-only`, 'connect to a writable export (qemu-nbd without -r)');
    }
    this.checkRange(command, offset, length);
  }

  /**
   * Checks that the range is made of safe integers, lies inside the export and
   * honours the minimum block size, which a client that requested
   * NBD_INFO_BLOCK_SIZE must obey. A range may end unaligned at the export end.
   */
  private checkRange(command: number, offset: number, length: number): void {
    const request = describeRequest({ command, offset, length });

    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw this.error(`${request} has an invalid range`, 'pass non-negative integer offsets and lengths');
    }
    if (offset + length > this.size) {
      throw this.error(`${request} ends beyond the export size of ${this.size} bytes`, 'keep requests inside the export');
    }

    const minimum = this.blockSize.minimum;
    const endAligned = (offset + length) % minimum === 0 || offset + length === this.size;
    if (offset % minimum !== 0 || !endAligned) {
      throw this.error(`${request} is not aligned to the minimum block size of ${minimum} bytes`, `align offsets and lengths to ${minimum} bytes`);
    }
  }

  private error(fault: string, action: string): NbdError {
    return new NbdError(`NBD export '${this.exportName}': ${fault}; ${action}`);
  }
}

/** Bytes one socket read can deliver, the size of the buffer that every read reuses. */
const SOCKET_READ_BYTES = 256 * 1024;

/**
 * Opens the socket. Every read lands in one reused buffer, and its 'data'
 * events carry views of that buffer, valid only while the listeners run:
 * SocketReader and the reply parser copy what they keep. Node's default of
 * a new buffer per read left tens of MiB for V8 to collect and cost a 1 GiB
 * backup about 14% more CPU time (docs/benchmarks.md).
 */
function openSocket(options: NbdConnectOptions): Socket {
  if (options.socketPath !== undefined && options.host !== undefined) {
    throw new NbdError(`NBD connect options name both socketPath '${options.socketPath}' and host '${options.host}'; pass only one of them`);
  }

  let socket: Socket | undefined;
  const onread = {
    buffer: Buffer.allocUnsafeSlow(SOCKET_READ_BYTES),
    callback: (bytes: number, buffer: Uint8Array) => {
      socket?.emit('data', Buffer.from(buffer.buffer, buffer.byteOffset, bytes));
      return true;
    },
  };

  if (options.socketPath !== undefined) socket = connectSocket({ path: options.socketPath, onread });
  else if (options.host !== undefined) socket = connectSocket({ host: options.host, port: options.port ?? DEFAULT_PORT, onread });
  else throw new NbdError(`NBD connect options for export '${options.exportName}' name no server; pass socketPath, or host and port`);
  return socket;
}

function describeServer(options: NbdConnectOptions): string {
  if (options.socketPath !== undefined) return `unix:${options.socketPath}`;
  return `${options.host}:${options.port ?? DEFAULT_PORT}`;
}

/** Splits [offset, offset + length) into [start, length] pieces of at most `pieceBytes`. */
function splitRange(offset: number, length: number, pieceBytes: number): Array<[number, number]> {
  const pieces: Array<[number, number]> = [];
  for (let start = offset; start < offset + length; start += pieceBytes) {
    pieces.push([start, Math.min(pieceBytes, offset + length - start)]);
  }
  return pieces;
}
