/**
 * Wire constants and encoders of the NBD protocol, as defined in doc/proto.md
 * of the NetworkBlockDevice/nbd repository. All integers on the wire are
 * big-endian. Only the subset that this client uses is listed.
 */

/** 'NBDMAGIC', the first 8 bytes every server sends. */
export const NBD_INIT_MAGIC = 0x4e42444d41474943n;
/** 'IHAVEOPT', sent by a newstyle server after NBD_INIT_MAGIC and before every client option. */
export const NBD_OPTS_MAGIC = 0x49484156454f5054n;
/** Sent by an oldstyle server in place of NBD_OPTS_MAGIC. */
export const NBD_CLISERV_MAGIC = 0x00420281861253n;
/** Magic of every option reply in fixed newstyle negotiation. */
export const NBD_REP_MAGIC = 0x3e889045565a9n;

export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

export const NBD_REQUEST_HEADER_BYTES = 28;
export const NBD_SIMPLE_REPLY_HEADER_BYTES = 16;
export const NBD_STRUCTURED_REPLY_HEADER_BYTES = 20;

// Handshake flags sent by the server, and client flags sent in return.
export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_NO_ZEROES = 1 << 1;
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_C_NO_ZEROES = 1 << 1;

export const NBD_OPT_GO = 7;
export const NBD_OPT_STRUCTURED_REPLY = 8;
export const NBD_OPT_SET_META_CONTEXT = 10;

export const NBD_REP_ACK = 1;
export const NBD_REP_INFO = 3;
export const NBD_REP_META_CONTEXT = 4;
/** Bit 31 marks an option reply type as an error. */
export const NBD_REP_FLAG_ERROR = 0x80000000;

const optionReplyErrorNames: Record<number, string> = {
  1: 'NBD_REP_ERR_UNSUP',
  2: 'NBD_REP_ERR_POLICY',
  3: 'NBD_REP_ERR_INVALID',
  4: 'NBD_REP_ERR_PLATFORM',
  5: 'NBD_REP_ERR_TLS_REQD',
  6: 'NBD_REP_ERR_UNKNOWN',
  7: 'NBD_REP_ERR_SHUTDOWN',
  8: 'NBD_REP_ERR_BLOCK_SIZE_REQD',
  9: 'NBD_REP_ERR_TOO_BIG',
  10: 'NBD_REP_ERR_EXT_HEADER_REQD',
};
export const NBD_REP_ERR_UNSUP = NBD_REP_FLAG_ERROR + 1;
export const NBD_REP_ERR_POLICY = NBD_REP_FLAG_ERROR + 2;
export const NBD_REP_ERR_TLS_REQD = NBD_REP_FLAG_ERROR + 5;
export const NBD_REP_ERR_UNKNOWN = NBD_REP_FLAG_ERROR + 6;

export const NBD_INFO_EXPORT = 0;
export const NBD_INFO_BLOCK_SIZE = 3;

// Transmission flags, sent with the export size.
export const NBD_FLAG_HAS_FLAGS = 1 << 0;
export const NBD_FLAG_READ_ONLY = 1 << 1;
export const NBD_FLAG_SEND_FLUSH = 1 << 2;
export const NBD_FLAG_SEND_FUA = 1 << 3;
export const NBD_FLAG_SEND_TRIM = 1 << 5;
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;

export const NBD_CMD_READ = 0;
export const NBD_CMD_WRITE = 1;
export const NBD_CMD_DISC = 2;
export const NBD_CMD_FLUSH = 3;
export const NBD_CMD_TRIM = 4;
export const NBD_CMD_WRITE_ZEROES = 6;
export const NBD_CMD_BLOCK_STATUS = 7;

const commandNames: Record<number, string> = {
  [NBD_CMD_READ]: 'READ',
  [NBD_CMD_WRITE]: 'WRITE',
  [NBD_CMD_DISC]: 'DISC',
  [NBD_CMD_FLUSH]: 'FLUSH',
  [NBD_CMD_TRIM]: 'TRIM',
  [NBD_CMD_WRITE_ZEROES]: 'WRITE_ZEROES',
  [NBD_CMD_BLOCK_STATUS]: 'BLOCK_STATUS',
};

export const NBD_CMD_FLAG_FUA = 1 << 0;
export const NBD_CMD_FLAG_NO_HOLE = 1 << 1;

export const NBD_REPLY_FLAG_DONE = 1 << 0;

export const NBD_REPLY_TYPE_NONE = 0;
export const NBD_REPLY_TYPE_OFFSET_DATA = 1;
export const NBD_REPLY_TYPE_OFFSET_HOLE = 2;
export const NBD_REPLY_TYPE_BLOCK_STATUS = 5;
/** Bit 15 marks a structured reply chunk type as an error chunk. */
export const NBD_REPLY_TYPE_FLAG_ERROR = 1 << 15;
export const NBD_REPLY_TYPE_ERROR = NBD_REPLY_TYPE_FLAG_ERROR + 1;
export const NBD_REPLY_TYPE_ERROR_OFFSET = NBD_REPLY_TYPE_FLAG_ERROR + 2;

/** Error numbers the protocol defines; they match the Linux errno values. */
const errorNames: Record<number, string> = {
  1: 'EPERM (operation not permitted)',
  5: 'EIO (input/output error)',
  12: 'ENOMEM (cannot allocate memory)',
  22: 'EINVAL (invalid argument)',
  28: 'ENOSPC (no space left on device)',
  75: 'EOVERFLOW (value too large)',
  95: 'ENOTSUP (operation not supported)',
  108: 'ESHUTDOWN (server is shutting down)',
};
export const NBD_EPERM = 1;
export const NBD_EIO = 5;
export const NBD_EINVAL = 22;
export const NBD_ENOSPC = 28;
export const NBD_EOVERFLOW = 75;
export const NBD_ENOTSUP = 95;
export const NBD_ESHUTDOWN = 108;

/** Status flags of the `base:allocation` context. */
export const NBD_STATE_HOLE = 1;
export const NBD_STATE_ZERO = 2;
/** Status flag of a `qemu:dirty-bitmap:<name>` context: the extent changed since the bitmap was created. */
export const NBD_STATE_DIRTY = 1;

/**
 * Largest payload this client sends or accepts in one READ or WRITE. The
 * protocol names 2^25 bytes as the size every server should accept.
 */
export const NBD_MAX_PAYLOAD_BYTES = 32 * 1024 * 1024;

/**
 * Largest effect length of one TRIM, WRITE_ZEROES or BLOCK_STATUS request.
 * The length field has 32 bits, and a power of two stays aligned to every
 * minimum block size a server may advertise (at most 64 KiB).
 */
export const NBD_MAX_EFFECT_BYTES = 2 ** 30;

/**
 * Largest BLOCK_STATUS chunk payload accepted: a context id plus 2^20
 * descriptors. Servers should not send more, per the protocol.
 */
export const NBD_MAX_BLOCK_STATUS_CHUNK_BYTES = 4 + 8 * 2 ** 20;

/** Returns the protocol name of a command, for messages. */
export function commandName(command: number): string {
  return commandNames[command] ?? `command ${command}`;
}

/** Returns the name and meaning of a transmission error number, for messages. */
export function errorName(error: number): string {
  return errorNames[error] ?? `error ${error}`;
}

/** Returns the name of an option reply type that has the error bit set. */
export function optionReplyErrorName(replyType: number): string {
  return optionReplyErrorNames[replyType - NBD_REP_FLAG_ERROR] ?? `option reply error ${replyType - NBD_REP_FLAG_ERROR}`;
}

/**
 * Encodes the 28-byte request header. The cookie is a JS number below 2^53,
 * written as two 32-bit halves so that no BigInt is needed per request.
 */
export function encodeRequest(flags: number, command: number, cookie: number, offset: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(NBD_REQUEST_HEADER_BYTES);
  header.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
  header.writeUInt16BE(flags, 4);
  header.writeUInt16BE(command, 6);
  writeUInt64(header, cookie, 8);
  writeUInt64(header, offset, 16);
  header.writeUInt32BE(length, 24);
  return header;
}

/** Writes a non-negative safe integer as a big-endian 64-bit value. */
export function writeUInt64(target: Buffer, value: number, position: number): void {
  target.writeUInt32BE(Math.floor(value / 2 ** 32), position);
  target.writeUInt32BE(value >>> 0, position + 4);
}

/**
 * Reads a big-endian 64-bit value as a JS number. Returns undefined when the
 * value does not fit in 2^53, so the caller can reject it with context.
 */
export function readUInt64(source: Buffer, position: number): number | undefined {
  const high = source.readUInt32BE(position);
  if (high >= 2 ** 21) return undefined;
  return high * 2 ** 32 + source.readUInt32BE(position + 4);
}
