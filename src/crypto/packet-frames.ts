/**
 * Locating the packets of a binary OpenPGP message by their headers
 * (RFC 4880 and RFC 9580, section 4.2), without parsing their bodies.
 * Segment decryption uses this to find the PKESK packets and the body of the
 * encrypted data packet inside one segment buffer.
 */

/** Packet tags of RFC 9580 section 5 that segment decryption looks for. */
export const PacketTag = {
  publicKeyEncryptedSessionKey: 1,
  signature: 2,
  onePassSignature: 4,
  literalData: 11,
  symEncryptedIntegrityProtectedData: 18,
} as const;

/** Bytes of a new-format header with a five-byte length: tag byte, 0xFF, four length bytes. */
export const LONG_HEADER_BYTES = 6;

/**
 * Returns a new-format packet header with a five-byte length, which RFC 9580
 * section 4.2.1 allows for any body length below 2^32.
 */
export function longPacketHeader(tag: number, bodyLength: number): Uint8Array {
  if (!Number.isInteger(bodyLength) || bodyLength < 0 || bodyLength > 0xffff_ffff) {
    throw new RangeError(`a packet body of ${bodyLength} bytes does not fit a five-byte length`);
  }
  const header = new Uint8Array(LONG_HEADER_BYTES);
  header[0] = 0xc0 | tag;
  header[1] = 0xff;
  new DataView(header.buffer).setUint32(2, bodyLength);
  return header;
}

/** One run of body bytes; a body with partial lengths has several. */
export interface BodyPiece {
  offset: number;
  length: number;
}

/** One packet: where its header starts, where it ends, and where its body bytes lie. */
export interface PacketFrame {
  tag: number;
  /** Offset of the first header byte. */
  start: number;
  /** Offset just past the last body byte. */
  end: number;
  body: BodyPiece[];
  bodyLength: number;
}

/** Returns the packets of `bytes` as readPacketFrames does, or undefined when their framing is broken. */
export function tryReadPacketFrames(bytes: Uint8Array): PacketFrame[] | undefined {
  try {
    return readPacketFrames(bytes);
  } catch (error) {
    if (error instanceof PacketFramingError) return undefined;
    throw error;
  }
}

/**
 * Moves the body pieces of a packet together, in order, starting at
 * `destination`, and returns the body's length. `destination` must not lie
 * after the first piece: then every piece moves towards the start, and
 * copyWithin never overwrites bytes that a later piece still needs.
 */
export function gatherBody(bytes: Uint8Array, pieces: BodyPiece[], destination: number): number {
  let length = 0;
  for (const piece of pieces) {
    bytes.copyWithin(destination + length, piece.offset, piece.offset + piece.length);
    length += piece.length;
  }
  return length;
}

/** Raised for bytes whose packet headers do not describe a complete message. */
export class PacketFramingError extends Error {}

/**
 * Returns the packets of `bytes` in order. Raises PacketFramingError when a
 * header is malformed or a length runs past the end of the input.
 */
export function readPacketFrames(bytes: Uint8Array): PacketFrame[] {
  const frames: PacketFrame[] = [];
  let offset = 0;
  while (offset < bytes.byteLength) {
    const frame = readFrame(bytes, offset);
    frames.push(frame);
    offset = frame.end;
  }
  return frames;
}

function readFrame(bytes: Uint8Array, start: number): PacketFrame {
  const first = bytes[start];
  if ((first & 0x80) === 0) throw new PacketFramingError(`byte ${start} is not a packet header (0x${first.toString(16)})`);

  if ((first & 0x40) === 0) return readOldFormatFrame(bytes, start, first);

  const tag = first & 0x3f;
  const body: BodyPiece[] = [];
  let bodyLength = 0;
  let offset = start + 1;

  // A new-format body is a chain of partial lengths ended by one ordinary length.
  for (;;) {
    const octet = byteAt(bytes, offset);
    let length: number;
    let partial = false;
    if (octet < 192) {
      length = octet;
      offset += 1;
    } else if (octet < 224) {
      length = ((octet - 192) << 8) + byteAt(bytes, offset + 1) + 192;
      offset += 2;
    } else if (octet < 255) {
      length = 2 ** (octet & 0x1f);
      partial = true;
      offset += 1;
    } else {
      length = readUint32(bytes, offset + 1);
      offset += 5;
    }

    requireBytes(bytes, offset, length);
    body.push({ offset, length });
    bodyLength += length;
    offset += length;
    if (!partial) return { tag, start, end: offset, body, bodyLength };
  }
}

function readOldFormatFrame(bytes: Uint8Array, start: number, first: number): PacketFrame {
  const tag = (first >> 2) & 0x0f;
  const lengthType = first & 0x03;
  let offset = start + 1;
  let length: number;

  if (lengthType === 0) {
    length = byteAt(bytes, offset);
    offset += 1;
  } else if (lengthType === 1) {
    length = (byteAt(bytes, offset) << 8) | byteAt(bytes, offset + 1);
    offset += 2;
  } else if (lengthType === 2) {
    length = readUint32(bytes, offset);
    offset += 4;
  } else {
    // Indeterminate length: the packet runs to the end of the input.
    length = bytes.byteLength - offset;
  }

  requireBytes(bytes, offset, length);
  return { tag, start, end: offset + length, body: [{ offset, length }], bodyLength: length };
}

function byteAt(bytes: Uint8Array, offset: number): number {
  if (offset >= bytes.byteLength) throw new PacketFramingError(`packet header cut off at byte ${offset} of ${bytes.byteLength}`);
  return bytes[offset];
}

function readUint32(bytes: Uint8Array, offset: number): number {
  requireBytes(bytes, offset, 4);
  return ((bytes[offset] << 24) >>> 0) + (bytes[offset + 1] << 16) + (bytes[offset + 2] << 8) + bytes[offset + 3];
}

function requireBytes(bytes: Uint8Array, offset: number, length: number): void {
  if (offset + length > bytes.byteLength) {
    throw new PacketFramingError(`packet body of ${length} bytes at byte ${offset} runs past the end of the ${bytes.byteLength}-byte message`);
  }
}
