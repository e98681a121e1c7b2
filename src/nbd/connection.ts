/**
 * One NBD connection in the transmission phase: sends requests with unique
 * cookies, lets any number of them be in flight, and settles each when the
 * reply parser completes it. Any transport failure, protocol violation or
 * abort rejects every pending request with one NbdError and closes the
 * socket. Socket errors are always caught, so none escapes as an unhandled
 * 'error' event.
 */
import type { Socket } from 'node:net';
import { NbdError } from '../errors.js';
import {
  NBD_CMD_DISC,
  NBD_CMD_READ,
  NBD_EINVAL,
  NBD_ENOSPC,
  NBD_ENOTSUP,
  NBD_EOVERFLOW,
  NBD_EPERM,
  NBD_ESHUTDOWN,
  commandName,
  encodeRequest,
  errorName,
} from './protocol.js';
import { ReplyProtocolError, ReplyReader, type InFlightRequest } from './reply-reader.js';

export interface RequestSpec {
  command: number;
  flags: number;
  offset: number;
  length: number;
  /** WRITE data; its length must equal `length`. */
  payload?: Buffer;
  /** READ destination; its length must equal `length`. */
  destination?: Buffer;
}

interface PendingRequest extends InFlightRequest {
  resolve: (request: InFlightRequest) => void;
  reject: (error: NbdError) => void;
}

/** How long close() waits for the server to close its end after NBD_CMD_DISC. */
const DISCONNECT_TIMEOUT_MS = 5000;

/** How many pending requests a connection-loss message lists by name. */
const LISTED_PENDING_REQUESTS = 3;

export class NbdConnection {
  private readonly pending = new Map<number, PendingRequest>();
  private readonly reader: ReplyReader;
  private nextCookie = 1;
  /** Set once the connection is unusable; later requests reject with it. */
  private failure: NbdError | undefined;
  private socketError: Error | undefined;
  private closing: Promise<void> | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly socket: Socket,
    private readonly server: string,
    private readonly exportName: string,
    private readonly maxPayloadBytes: number,
    private readonly signal: AbortSignal | undefined,
    /** Bytes that arrived with the last handshake reply; normally empty. */
    leftover: Buffer,
  ) {
    this.reader = new ReplyReader({
      maxPayloadBytes,
      find: (cookie) => this.pending.get(cookie),
      complete: (request) => this.complete(request as PendingRequest),
    });

    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    signal?.addEventListener('abort', this.onAbort, { once: true });

    if (leftover.length > 0) this.onData(leftover);
    if (signal?.aborted) this.onAbort();
  }

  /** Sends one request and resolves with its parsed reply once the server completes it. */
  send(spec: RequestSpec): Promise<InFlightRequest> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(this.error(`${describeRequest(spec)} was requested after close()`, 'open a new connection'));

    const cookie = this.nextCookie;
    this.nextCookie += 1;

    return new Promise<InFlightRequest>((resolve, reject) => {
      this.pending.set(cookie, {
        cookie,
        command: spec.command,
        offset: spec.offset,
        length: spec.length,
        destination: spec.destination,
        receivedBytes: 0,
        extents: new Map(),
        serverError: undefined,
        resolve,
        reject,
      });

      // Corking joins header and payload into one writev call.
      this.socket.cork();
      this.socket.write(encodeRequest(spec.flags, spec.command, cookie, spec.offset, spec.length));
      if (spec.payload) this.socket.write(spec.payload);
      this.socket.uncork();
    });
  }

  /**
   * Waits for pending requests, sends NBD_CMD_DISC and ends the socket.
   * Never rejects, and returns the same promise when called again.
   */
  close(): Promise<void> {
    this.closing ??= this.disconnect();
    return this.closing;
  }

  private async disconnect(): Promise<void> {
    await this.waitIdle();

    if (!this.failure) {
      this.socket.write(encodeRequest(0, NBD_CMD_DISC, 0, 0, 0));
      this.socket.end();
      this.failure = this.error('connection was closed by close()', 'open a new connection');
    }

    if (!this.socket.destroyed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => this.socket.destroy(), DISCONNECT_TIMEOUT_MS);
        this.socket.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.signal?.removeEventListener('abort', this.onAbort);
  }

  private waitIdle(): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.failure && this.pending.size === 0) return;

    try {
      this.reader.push(chunk);
    } catch (error) {
      const fault = error instanceof ReplyProtocolError ? `server violated the protocol: ${error.message}` : `parsing a reply failed: ${String(error)}`;
      this.fail(this.error(fault, 'report this bug; the connection was dropped', error));
    }
  };

  private readonly onError = (error: Error): void => {
    this.socketError ??= error;
  };

  private readonly onClose = (): void => {
    if (this.pending.size === 0) {
      this.failure ??= this.error('connection was closed by the server', 'check that the server is still running and reconnect', this.socketError);
      return;
    }

    const count = this.pending.size;
    const listed = [...this.pending.values()].slice(0, LISTED_PENDING_REQUESTS).map(describeRequest).join(', ');
    const more = count > LISTED_PENDING_REQUESTS ? `, and ${count - LISTED_PENDING_REQUESTS} more` : '';
    const partial = this.reader.partialReply ? ` in the middle of ${this.reader.partialReply}` : '';
    this.fail(
      new NbdError(
        `connection to NBD server ${this.server} for export '${this.exportName}' closed${partial} while ${count} ` +
          `${count === 1 ? 'request was' : 'requests were'} pending (${listed}${more}); ` +
          'check that the server is still running (qemu-nbd, or the libvirt backup job) and retry',
        this.socketError ? { cause: this.socketError } : undefined,
      ),
    );
  };

  private readonly onAbort = (): void => {
    this.fail(this.error(`aborted with ${this.pending.size} pending requests`, 'the caller cancelled the operation', this.signal?.reason));
  };

  /** Marks the connection failed, destroys the socket and rejects every pending request. */
  private fail(error: NbdError): void {
    this.failure ??= error;
    this.socket.destroy();

    const requests = [...this.pending.values()];
    this.pending.clear();
    for (const request of requests) request.reject(error);
    this.notifyIdle();
  }

  private complete(request: PendingRequest): void {
    this.pending.delete(request.cookie);

    if (request.serverError) {
      request.reject(this.serverError(request));
      if (request.serverError.error === NBD_ESHUTDOWN) void this.close();
    } else if (request.command === NBD_CMD_READ && request.receivedBytes !== request.length) {
      request.reject(
        this.error(`server reply to ${describeRequest(request)} covered ${request.receivedBytes} of ${request.length} bytes`, 'report this server bug; the data was not returned'),
      );
    } else {
      request.resolve(request);
    }

    if (this.pending.size === 0) this.notifyIdle();
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const waiter of waiters) waiter();
  }

  private serverError(request: InFlightRequest): NbdError {
    const { error, message, offset } = request.serverError!;
    const detail = message ? `: ${message}` : '';
    const at = offset === undefined ? '' : ` at offset ${offset}`;
    return this.error(`${describeRequest(request)} failed${at} with ${errorName(error)}${detail}`, adviceFor(error));
  }

  private error(fault: string, action: string, cause?: unknown): NbdError {
    return new NbdError(`NBD export '${this.exportName}' on ${this.server}: ${fault}; ${action}`, cause === undefined ? undefined : { cause });
  }
}

/** Formats a request for messages, such as "READ at offset 0 length 4096". */
export function describeRequest(request: { command: number; offset: number; length: number }): string {
  return `${commandName(request.command)} at offset ${request.offset} length ${request.length}`;
}

function adviceFor(error: number): string {
  switch (error) {
    case NBD_ENOSPC:
      return 'free space on the storage behind the export, or restore to a larger target';
    case NBD_EPERM:
      return 'the export is read-only or access was denied; check how the server was started';
    case NBD_EINVAL:
    case NBD_EOVERFLOW:
      return 'the request does not fit the export size or block size constraints; report this as a bug in hvbackup';
    case NBD_ENOTSUP:
      return 'the server does not support this operation on this export';
    case NBD_ESHUTDOWN:
      return 'the server is shutting down; retry once it runs again';
    default:
      return 'check the server log and the storage behind the export';
  }
}
