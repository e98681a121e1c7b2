/**
 * Transmission-phase reply parser: a state machine fed with socket chunks as
 * they arrive. Headers are assembled in one fixed 20-byte buffer, READ data
 * is copied straight from the socket chunk into the destination buffer of
 * its request, and only small chunk payloads (holes, errors, block status
 * descriptors) are buffered. Nothing grows with the amount of data read.
 *
 * A protocol violation throws ReplyProtocolError; the connection cannot be
 * resynchronised after it, so the caller must drop the connection.
 */
import {
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_READ,
  NBD_MAX_BLOCK_STATUS_CHUNK_BYTES,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REPLY_TYPE_ERROR_OFFSET,
  NBD_REPLY_TYPE_FLAG_ERROR,
  NBD_REPLY_TYPE_NONE,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_REPLY_TYPE_OFFSET_HOLE,
  NBD_SIMPLE_REPLY_HEADER_BYTES,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_HEADER_BYTES,
  NBD_STRUCTURED_REPLY_MAGIC,
  commandName,
  readUInt64,
} from './protocol.js';

/** One extent of a block status reply: a byte range and its status flags. */
export interface NbdExtent {
  offset: number;
  length: number;
  flags: number;
}

/** An error the server reported for a request. */
export interface ServerError {
  /** Protocol error number, such as 5 for EIO. */
  error: number;
  message: string;
  /** Export offset the error applies to, from an ERROR_OFFSET chunk. */
  offset?: number;
}

/** A request that was sent and whose final reply has not arrived yet. */
export interface InFlightRequest {
  cookie: number;
  command: number;
  offset: number;
  length: number;
  /** Receives READ data; allocated by the sender, length `length`. */
  destination: Buffer | undefined;
  /** READ bytes received so far as data or holes; chunks must not overlap, so the sum shows full coverage. */
  receivedBytes: number;
  /** BLOCK_STATUS extents by metadata context id. */
  extents: Map<number, NbdExtent[]>;
  /** First error the server reported; later ones are dropped. */
  serverError: ServerError | undefined;
}

export interface ReplyReaderOptions {
  /** Largest READ payload a request may ask for; chunk sizes are checked against it. */
  maxPayloadBytes: number;
  find(cookie: number): InFlightRequest | undefined;
  /** Called once per request when its final reply has been parsed. */
  complete(request: InFlightRequest): void;
}

/** The server sent something the protocol does not allow. */
export class ReplyProtocolError extends Error {}

const enum State {
  Header,
  SimpleData,
  ChunkPayload,
  ChunkData,
}

/** Largest payload of chunk types other than OFFSET_DATA and BLOCK_STATUS: an error chunk with a 4096-byte message and an offset. */
const MAX_SMALL_CHUNK_BYTES = 6 + 4096 + 8;

export class ReplyReader {
  private state = State.Header;
  private readonly header = Buffer.alloc(NBD_STRUCTURED_REPLY_HEADER_BYTES);
  private headerFill = 0;
  /** 4 until the magic is known, then the full header size of the reply kind. */
  private headerTarget = 4;

  private request: InFlightRequest | undefined;
  private chunkFlags = 0;
  private chunkType = 0;
  private chunkLength = 0;

  private payload: Buffer = Buffer.alloc(0);
  private payloadFill = 0;

  private dataTarget: Buffer = Buffer.alloc(0);
  private dataPosition = 0;
  private dataRemaining = 0;

  constructor(private readonly options: ReplyReaderOptions) {}

  /** Describes the reply being parsed, or undefined between replies; used when the connection drops. */
  get partialReply(): string | undefined {
    if (this.state === State.Header && this.headerFill === 0) return undefined;
    if (!this.request) return 'a reply header';
    return `the reply to ${commandName(this.request.command)} at offset ${this.request.offset}`;
  }

  /** Parses one socket chunk; may complete any number of requests. */
  push(chunk: Buffer): void {
    let position = 0;

    while (position < chunk.length) {
      const available = chunk.length - position;

      switch (this.state) {
        case State.Header: {
          const count = Math.min(this.headerTarget - this.headerFill, available);
          chunk.copy(this.header, this.headerFill, position, position + count);
          this.headerFill += count;
          position += count;
          if (this.headerFill === this.headerTarget) this.onHeaderBytes();
          break;
        }

        case State.SimpleData:
        case State.ChunkData: {
          const count = Math.min(this.dataRemaining, available);
          chunk.copy(this.dataTarget, this.dataPosition, position, position + count);
          this.dataPosition += count;
          this.dataRemaining -= count;
          position += count;
          if (this.dataRemaining === 0) this.onDataDone();
          break;
        }

        case State.ChunkPayload: {
          const count = Math.min(this.payload.length - this.payloadFill, available);
          chunk.copy(this.payload, this.payloadFill, position, position + count);
          this.payloadFill += count;
          position += count;
          if (this.payloadFill === this.payload.length) this.onPayload();
          break;
        }
      }
    }
  }

  private onHeaderBytes(): void {
    if (this.headerTarget === 4) {
      const magic = this.header.readUInt32BE(0);
      if (magic === NBD_SIMPLE_REPLY_MAGIC) this.headerTarget = NBD_SIMPLE_REPLY_HEADER_BYTES;
      else if (magic === NBD_STRUCTURED_REPLY_MAGIC) this.headerTarget = NBD_STRUCTURED_REPLY_HEADER_BYTES;
      else throw new ReplyProtocolError(`reply with invalid magic 0x${magic.toString(16)}`);
      return;
    }

    if (this.headerTarget === NBD_SIMPLE_REPLY_HEADER_BYTES) this.onSimpleHeader();
    else this.onStructuredHeader();
  }

  private onSimpleHeader(): void {
    const error = this.header.readUInt32BE(4);
    const request = this.findRequest(this.header.readUInt32BE(8) * 2 ** 32 + this.header.readUInt32BE(12));
    this.request = request;

    // A simple reply carries READ data only on success, and its length is the requested length.
    if (request.command === NBD_CMD_READ && error === 0 && request.length > 0) {
      this.startData(State.SimpleData, request.destination!, 0, request.length);
      return;
    }

    if (error !== 0) request.serverError ??= { error, message: '' };
    this.finishReply();
  }

  private onStructuredHeader(): void {
    this.chunkFlags = this.header.readUInt16BE(4);
    this.chunkType = this.header.readUInt16BE(6);
    this.chunkLength = this.header.readUInt32BE(16);
    const request = this.findRequest(this.header.readUInt32BE(8) * 2 ** 32 + this.header.readUInt32BE(12));
    this.request = request;

    const limit = this.chunkLimit(request);
    if (this.chunkLength > limit) {
      throw new ReplyProtocolError(
        `structured reply chunk of type ${this.chunkType} with ${this.chunkLength} bytes for ${this.describe(request)}, more than the ${limit} allowed`,
      );
    }

    if (this.chunkType === NBD_REPLY_TYPE_OFFSET_DATA) {
      if (this.chunkLength < 9) throw new ReplyProtocolError(`OFFSET_DATA chunk of ${this.chunkLength} bytes for ${this.describe(request)}, expected at least 9`);
      this.startPayload(8);
      return;
    }

    if (this.chunkLength === 0) {
      this.onPayload();
      return;
    }
    this.startPayload(this.chunkLength);
  }

  private chunkLimit(request: InFlightRequest): number {
    if (this.chunkType === NBD_REPLY_TYPE_OFFSET_DATA) return request.command === NBD_CMD_READ ? request.length + 8 : 0;
    if (this.chunkType === NBD_REPLY_TYPE_BLOCK_STATUS) return Math.max(this.options.maxPayloadBytes, NBD_MAX_BLOCK_STATUS_CHUNK_BYTES);
    return MAX_SMALL_CHUNK_BYTES;
  }

  private onPayload(): void {
    const request = this.request!;
    const payload = this.payload.subarray(0, this.payloadFill);

    switch (this.chunkType) {
      case NBD_REPLY_TYPE_NONE:
        if (this.chunkLength !== 0 || (this.chunkFlags & NBD_REPLY_FLAG_DONE) === 0) {
          throw new ReplyProtocolError(`NONE chunk with length ${this.chunkLength} and flags ${this.chunkFlags} for ${this.describe(request)}`);
        }
        break;

      case NBD_REPLY_TYPE_OFFSET_DATA:
        this.onDataOffset(request, payload);
        return;

      case NBD_REPLY_TYPE_OFFSET_HOLE:
        this.onHole(request, payload);
        break;

      case NBD_REPLY_TYPE_BLOCK_STATUS:
        this.onBlockStatus(request, payload);
        break;

      default:
        if ((this.chunkType & NBD_REPLY_TYPE_FLAG_ERROR) === 0) {
          throw new ReplyProtocolError(`unknown structured reply chunk type ${this.chunkType} for ${this.describe(request)}`);
        }
        this.onErrorChunk(request, payload);
    }

    this.finishChunk();
  }

  private onDataOffset(request: InFlightRequest, payload: Buffer): void {
    const offset = readUInt64(payload, 0);
    const dataLength = this.chunkLength - 8;
    const start = offset === undefined ? -1 : offset - request.offset;

    if (start < 0 || start + dataLength > request.length) {
      throw new ReplyProtocolError(`OFFSET_DATA chunk at offset ${offset ?? 'beyond 2^53'} with ${dataLength} bytes lies outside ${this.describe(request)}`);
    }
    this.startData(State.ChunkData, request.destination!, start, dataLength);
  }

  private onHole(request: InFlightRequest, payload: Buffer): void {
    if (request.command !== NBD_CMD_READ || payload.length !== 12) {
      throw new ReplyProtocolError(`OFFSET_HOLE chunk of ${payload.length} bytes for ${this.describe(request)}, expected 12 bytes and a READ`);
    }

    const offset = readUInt64(payload, 0);
    const holeLength = payload.readUInt32BE(8);
    const start = offset === undefined ? -1 : offset - request.offset;
    if (start < 0 || holeLength === 0 || start + holeLength > request.length) {
      throw new ReplyProtocolError(`OFFSET_HOLE chunk at offset ${offset ?? 'beyond 2^53'} with ${holeLength} bytes lies outside ${this.describe(request)}`);
    }

    request.destination!.fill(0, start, start + holeLength);
    request.receivedBytes += holeLength;
  }

  private onBlockStatus(request: InFlightRequest, payload: Buffer): void {
    if (request.command !== NBD_CMD_BLOCK_STATUS || payload.length < 12 || (payload.length - 4) % 8 !== 0) {
      throw new ReplyProtocolError(`BLOCK_STATUS chunk of ${payload.length} bytes for ${this.describe(request)}, expected 4 + 8*N bytes and a BLOCK_STATUS request`);
    }

    const contextId = payload.readUInt32BE(0);
    const extents: NbdExtent[] = [];
    let offset = request.offset;

    for (let position = 4; position < payload.length; position += 8) {
      const length = payload.readUInt32BE(position);
      if (length === 0) throw new ReplyProtocolError(`BLOCK_STATUS extent of length 0 for ${this.describe(request)}`);
      extents.push({ offset, length, flags: payload.readUInt32BE(position + 4) });
      offset += length;
    }
    request.extents.set(contextId, extents);
  }

  private onErrorChunk(request: InFlightRequest, payload: Buffer): void {
    const fixedTail = this.chunkType === NBD_REPLY_TYPE_ERROR_OFFSET ? 8 : 0;
    if (payload.length < 6 + fixedTail) {
      throw new ReplyProtocolError(`error chunk of type ${this.chunkType} with ${payload.length} bytes for ${this.describe(request)}`);
    }

    const messageLength = payload.readUInt16BE(4);
    if (6 + messageLength + fixedTail > payload.length) {
      throw new ReplyProtocolError(`error chunk message of ${messageLength} bytes does not fit its ${payload.length}-byte chunk for ${this.describe(request)}`);
    }

    const serverError: ServerError = {
      error: payload.readUInt32BE(0),
      message: payload.toString('utf8', 6, 6 + messageLength),
    };
    if (this.chunkType === NBD_REPLY_TYPE_ERROR_OFFSET) serverError.offset = readUInt64(payload, 6 + messageLength);
    request.serverError ??= serverError;
  }

  private onDataDone(): void {
    const request = this.request!;
    request.receivedBytes += this.dataPosition - this.dataStart;

    if (this.state === State.SimpleData) this.finishReply();
    else this.finishChunk();
  }

  private dataStart = 0;

  private startData(state: State, target: Buffer, start: number, length: number): void {
    this.state = state;
    this.dataTarget = target;
    this.dataStart = start;
    this.dataPosition = start;
    this.dataRemaining = length;
    if (length === 0) this.onDataDone();
  }

  private startPayload(length: number): void {
    this.state = State.ChunkPayload;
    if (this.payload.length !== length) this.payload = Buffer.allocUnsafe(length);
    this.payloadFill = 0;
  }

  private finishChunk(): void {
    if (this.chunkFlags & NBD_REPLY_FLAG_DONE) this.finishReply();
    else this.resetHeader();
  }

  private finishReply(): void {
    const request = this.request!;
    this.resetHeader();
    this.options.complete(request);
  }

  private resetHeader(): void {
    this.state = State.Header;
    this.headerFill = 0;
    this.headerTarget = 4;
    this.request = undefined;
  }

  private findRequest(cookie: number): InFlightRequest {
    const request = this.options.find(cookie);
    if (!request) throw new ReplyProtocolError(`reply for unknown cookie ${cookie}`);
    return request;
  }

  private describe(request: InFlightRequest): string {
    return `${commandName(request.command)} at offset ${request.offset} length ${request.length}`;
  }
}
