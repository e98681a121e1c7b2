/**
 * Fixed newstyle negotiation: greeting, client flags, then the options
 * STRUCTURED_REPLY, SET_META_CONTEXT and GO, in that order, each waiting for
 * its final reply as the protocol requires. Oldstyle servers, servers
 * without fixed newstyle and servers without NBD_OPT_GO are rejected,
 * because every server this tool talks to (qemu-nbd, QEMU's built-in NBD
 * server used by libvirt, nbdkit) supports all three.
 */
import type { Socket } from 'node:net';
import { NbdError } from '../errors.js';
import {
  NBD_CLISERV_MAGIC,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_EXPORT,
  NBD_INIT_MAGIC,
  NBD_MAX_PAYLOAD_BYTES,
  NBD_OPT_GO,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_OPTS_MAGIC,
  NBD_REP_ACK,
  NBD_REP_ERR_POLICY,
  NBD_REP_ERR_TLS_REQD,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_FLAG_ERROR,
  NBD_REP_INFO,
  NBD_REP_MAGIC,
  NBD_REP_META_CONTEXT,
  optionReplyErrorName,
  readUInt64,
} from './protocol.js';
import type { SocketReader } from './socket-reader.js';

/** Size constraints of an export, in bytes. */
export interface NbdBlockSize {
  minimum: number;
  preferred: number;
  maximum: number;
}

/** Export parameters agreed on in the handshake. */
export interface NegotiatedExport {
  size: number;
  transmissionFlags: number;
  structuredReplies: boolean;
  /** Context id the server assigned to each requested metadata context name. */
  metaContextIds: Map<string, number>;
  blockSize: NbdBlockSize;
}

export interface HandshakeOptions {
  exportName: string;
  metaContexts: string[];
  /** Server address for messages, such as unix:/path or host:port. */
  server: string;
}

interface OptionReply {
  type: number;
  data: Buffer;
}

/** Option replies carry at most a few strings of up to 4096 bytes each. */
const MAX_OPTION_REPLY_BYTES = 64 * 1024;
/** The protocol limits strings, such as export and context names, to 4096 bytes. */
const MAX_STRING_BYTES = 4096;

/** Runs the handshake on a connected socket and returns the negotiated export. */
export async function negotiate(socket: Socket, reader: SocketReader, options: HandshakeOptions): Promise<NegotiatedExport> {
  const session = new Handshake(socket, reader, options);
  return session.run();
}

class Handshake {
  constructor(
    private readonly socket: Socket,
    private readonly reader: SocketReader,
    private readonly options: HandshakeOptions,
  ) {}

  async run(): Promise<NegotiatedExport> {
    this.checkString('export name', this.options.exportName);
    for (const context of this.options.metaContexts) this.checkString('metadata context name', context);

    await this.greet();

    const structuredReplies = await this.requestStructuredReplies();

    let metaContextIds = new Map<string, number>();
    if (this.options.metaContexts.length > 0) {
      if (!structuredReplies) {
        throw this.error(
          `server does not support structured replies, which block status queries (${this.options.metaContexts.join(', ')}) need`,
          'use a server with structured replies (qemu-nbd or nbdkit without --no-sr), or connect without metaContexts',
        );
      }
      metaContextIds = await this.setMetaContexts();
    }

    const exportInfo = await this.go();
    return { ...exportInfo, structuredReplies, metaContextIds };
  }

  private async greet(): Promise<void> {
    const greeting = await this.reader.readExact(18);
    const initMagic = greeting.readBigUInt64BE(0);
    const optsMagic = greeting.readBigUInt64BE(8);

    if (initMagic !== NBD_INIT_MAGIC) {
      throw this.error('peer did not send the NBD greeting (NBDMAGIC)', 'check that the socket or port belongs to an NBD server');
    }
    if (optsMagic === NBD_CLISERV_MAGIC) {
      throw this.error('server uses oldstyle negotiation, which cannot select exports or negotiate options', 'run the server in newstyle mode (nbdkit -n; qemu-nbd uses newstyle by default)');
    }
    if (optsMagic !== NBD_OPTS_MAGIC) {
      throw this.error(`server sent unknown handshake magic 0x${optsMagic.toString(16)}`, 'check that the socket or port belongs to an NBD server');
    }

    const serverFlags = greeting.readUInt16BE(16);
    if ((serverFlags & NBD_FLAG_FIXED_NEWSTYLE) === 0) {
      throw this.error('server does not support fixed newstyle negotiation (NBD_FLAG_FIXED_NEWSTYLE is clear)', 'use a server that supports fixed newstyle, such as qemu-nbd or nbdkit');
    }

    let clientFlags = NBD_FLAG_C_FIXED_NEWSTYLE;
    if (serverFlags & NBD_FLAG_NO_ZEROES) clientFlags |= NBD_FLAG_C_NO_ZEROES;
    const reply = Buffer.alloc(4);
    reply.writeUInt32BE(clientFlags, 0);
    this.socket.write(reply);
  }

  private async requestStructuredReplies(): Promise<boolean> {
    this.sendOption(NBD_OPT_STRUCTURED_REPLY, Buffer.alloc(0));
    const reply = await this.readOptionReply(NBD_OPT_STRUCTURED_REPLY);

    if (reply.type === NBD_REP_ACK) return true;
    if (reply.type & NBD_REP_FLAG_ERROR) return false;
    throw this.unexpectedReply('NBD_OPT_STRUCTURED_REPLY', reply.type);
  }

  private async setMetaContexts(): Promise<Map<string, number>> {
    const requested = this.options.metaContexts;
    const exportName = Buffer.from(this.options.exportName, 'utf8');
    const queries = requested.map((name) => Buffer.from(name, 'utf8'));

    const parts: Buffer[] = [uint32(exportName.length), exportName, uint32(queries.length)];
    for (const query of queries) parts.push(uint32(query.length), query);
    this.sendOption(NBD_OPT_SET_META_CONTEXT, Buffer.concat(parts));

    const ids = new Map<string, number>();
    for (;;) {
      const reply = await this.readOptionReply(NBD_OPT_SET_META_CONTEXT);
      if (reply.type === NBD_REP_ACK) break;

      if (reply.type & NBD_REP_FLAG_ERROR) {
        throw this.error(
          `server rejected metadata contexts ${requested.join(', ')}: ${this.describeOptionError(reply)}`,
          'check the context names; a qemu dirty bitmap must exist and be exported (qemu-nbd -B NAME, or a libvirt backup job with incremental set)',
        );
      }
      if (reply.type !== NBD_REP_META_CONTEXT || reply.data.length < 4) {
        throw this.unexpectedReply('NBD_OPT_SET_META_CONTEXT', reply.type);
      }
      ids.set(reply.data.subarray(4).toString('utf8'), reply.data.readUInt32BE(0));
    }

    const missing = requested.filter((name) => !ids.has(name));
    if (missing.length > 0) {
      throw this.error(
        `server does not offer metadata context ${missing.join(', ')}`,
        'a qemu dirty bitmap context needs the bitmap exported (qemu-nbd -B NAME, or a libvirt backup job with incremental set); base:allocation needs a server with block status support',
      );
    }
    return ids;
  }

  private async go(): Promise<Pick<NegotiatedExport, 'size' | 'transmissionFlags' | 'blockSize'>> {
    const exportName = Buffer.from(this.options.exportName, 'utf8');
    const infoRequests = Buffer.alloc(4);
    infoRequests.writeUInt16BE(1, 0);
    infoRequests.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 2);
    this.sendOption(NBD_OPT_GO, Buffer.concat([uint32(exportName.length), exportName, infoRequests]));

    let size: number | undefined;
    let transmissionFlags = 0;
    // Defaults the protocol sets for a server that sends no NBD_INFO_BLOCK_SIZE.
    const blockSize: NbdBlockSize = { minimum: 1, preferred: 4096, maximum: NBD_MAX_PAYLOAD_BYTES };

    for (;;) {
      const reply = await this.readOptionReply(NBD_OPT_GO);
      if (reply.type === NBD_REP_ACK) break;
      if (reply.type & NBD_REP_FLAG_ERROR) throw this.goError(reply);
      if (reply.type !== NBD_REP_INFO || reply.data.length < 2) throw this.unexpectedReply('NBD_OPT_GO', reply.type);

      const infoType = reply.data.readUInt16BE(0);
      if (infoType === NBD_INFO_EXPORT) {
        this.expectLength('NBD_INFO_EXPORT', reply.data, 12);
        size = readUInt64(reply.data, 2);
        if (size === undefined) {
          throw this.error('export is larger than 2^53 bytes, which this client cannot address', 'export a smaller disk');
        }
        transmissionFlags = reply.data.readUInt16BE(10);
      } else if (infoType === NBD_INFO_BLOCK_SIZE) {
        this.expectLength('NBD_INFO_BLOCK_SIZE', reply.data, 14);
        blockSize.minimum = reply.data.readUInt32BE(2);
        blockSize.preferred = reply.data.readUInt32BE(6);
        blockSize.maximum = reply.data.readUInt32BE(10);
        this.checkBlockSize(blockSize);
      }
      // Other information types are ignored, as the protocol requires.
    }

    if (size === undefined) {
      throw this.error('server accepted NBD_OPT_GO without sending NBD_INFO_EXPORT', 'report this server bug; the client cannot learn the export size');
    }
    return { size, transmissionFlags, blockSize };
  }

  private goError(reply: OptionReply): NbdError {
    const reason = this.describeOptionError(reply);
    switch (reply.type) {
      case NBD_REP_ERR_UNKNOWN:
        return this.error(`export not found: ${reason}`, 'check the export name (for libvirt, the disk target such as vda; for qemu-nbd, the -x name or the empty name)');
      case NBD_REP_ERR_TLS_REQD:
        return this.error(`server requires TLS: ${reason}`, 'this client does not support TLS; export over a unix socket without TLS');
      case NBD_REP_ERR_POLICY:
        return this.error(`server rejected the export by policy: ${reason}`, 'check the server access settings');
      case NBD_REP_ERR_UNSUP:
        return this.error(`server does not support NBD_OPT_GO: ${reason}`, 'upgrade the NBD server; this client needs NBD_OPT_GO');
      default:
        return this.error(`server rejected NBD_OPT_GO: ${reason}`, 'check the export name and the server log');
    }
  }

  private sendOption(option: number, data: Buffer): void {
    const header = Buffer.allocUnsafe(16);
    header.writeBigUInt64BE(NBD_OPTS_MAGIC, 0);
    header.writeUInt32BE(option, 8);
    header.writeUInt32BE(data.length, 12);
    this.socket.write(data.length > 0 ? Buffer.concat([header, data]) : header);
  }

  private async readOptionReply(option: number): Promise<OptionReply> {
    const header = await this.reader.readExact(20);
    if (header.readBigUInt64BE(0) !== NBD_REP_MAGIC) {
      throw this.error(`server sent an option reply with invalid magic 0x${header.readBigUInt64BE(0).toString(16)}`, 'report this server bug');
    }
    const repliedOption = header.readUInt32BE(8);
    if (repliedOption !== option) {
      throw this.error(`server replied to option ${repliedOption} while option ${option} was pending`, 'report this server bug');
    }

    const type = header.readUInt32BE(12);
    const length = header.readUInt32BE(16);
    if (length > MAX_OPTION_REPLY_BYTES) {
      throw this.error(`server sent an option reply of ${length} bytes, more than the ${MAX_OPTION_REPLY_BYTES} accepted`, 'report this server bug');
    }
    const data = length > 0 ? await this.reader.readExact(length) : Buffer.alloc(0);
    return { type, data };
  }

  private describeOptionError(reply: OptionReply): string {
    const name = optionReplyErrorName(reply.type);
    const message = reply.data.toString('utf8');
    return message ? `${name} (${message})` : name;
  }

  private checkBlockSize(blockSize: NbdBlockSize): void {
    const { minimum, preferred, maximum } = blockSize;
    const powerOfTwo = (value: number) => value > 0 && (value & (value - 1)) === 0;

    if (!powerOfTwo(minimum) || minimum > 65536 || maximum < minimum || preferred < minimum) {
      throw this.error(
        `server sent invalid block size constraints (minimum ${minimum}, preferred ${preferred}, maximum ${maximum})`,
        'the minimum must be a power of two up to 65536 and no larger than the preferred and maximum sizes; report this server bug',
      );
    }
  }

  private checkString(field: string, value: string): void {
    if (Buffer.byteLength(value, 'utf8') > MAX_STRING_BYTES) {
      throw this.error(`${field} is longer than the ${MAX_STRING_BYTES} bytes the protocol allows`, `shorten the ${field}`);
    }
  }

  private expectLength(info: string, data: Buffer, length: number): void {
    if (data.length !== length) {
      throw this.error(`server sent ${info} of ${data.length} bytes, expected ${length}`, 'report this server bug');
    }
  }

  private unexpectedReply(option: string, type: number): NbdError {
    return this.error(`server sent unexpected reply type ${type} to ${option}`, 'report this server bug');
  }

  private error(fault: string, action: string): NbdError {
    return new NbdError(`NBD handshake with ${this.options.server} for export '${this.options.exportName}' failed: ${fault}; ${action}`);
  }
}

function uint32(value: number): Buffer {
  const bytes = Buffer.allocUnsafe(4);
  bytes.writeUInt32BE(value, 0);
  return bytes;
}
