/**
 * Writing a segment as a SEIPD v1 message (RFC 4880 section 5.13), in place
 * in the segment's own buffer: PKESK packets, then one encrypted data packet.
 * Its body is the version byte, then the random prefix, the signed inner
 * message and the MDC packet, all encrypted in AES-256-CFB with a zero IV.
 *
 * The segment buffer keeps free room before and after the plaintext. The
 * packets that go before the literal content are written into the room
 * before it, the signature and the MDC into the room after it, and CFB
 * encrypts the whole span where it lies. So a segment needs one buffer
 * instead of a plaintext and a ciphertext buffer: with two workers and one
 * upload, the backup needs four segment buffers instead of seven.
 *
 * openpgp.js still makes the PKESK packets (public-key encryption of the
 * session key) and the signature. This file only lays out packets and runs
 * the symmetric layer. The output is an ordinary message that gpg, sqop and
 * openpgp.js read.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';

import { LONG_HEADER_BYTES, longPacketHeader, PacketTag } from './packet-frames.js';
import { YoungGarbagePacer } from './young-garbage.js';

const BLOCK_BYTES = 16;
const SESSION_KEY_BYTES = 32;

/** Room a segment buffer keeps before its plaintext: PKESK packets, packet headers, prefix, one-pass signature. */
export const SEGMENT_HEADROOM_BYTES = 64 * 1024;

/** Room a segment buffer keeps after its plaintext: the signature packets and the MDC packet. */
export const SEGMENT_TAILROOM_BYTES = 16 * 1024;

const SEIPD_VERSION = 1;
const SEIPD_VERSION_BYTES = 1;

/** Binary format, an empty file name, then the four date bytes. */
const LITERAL_PREAMBLE_BYTES = 6;
const BINARY_FORMAT = 0x62;

/** The random prefix: one block, then its last two bytes again. */
const PREFIX_BYTES = BLOCK_BYTES + 2;

/** The MDC packet's header, tag 19 (0xD3) and length 20, which the SHA-1 follows. */
const MDC_HEADER = Uint8Array.from([0xd3, 0x14]);
const MDC_BYTES = MDC_HEADER.byteLength + 20;

/** Bytes encrypted per CFB call. Each call returns a new buffer of this size. */
const CFB_STEP_BYTES = 64 * 1024;

/** The parts of a message that openpgp.js made for one segment. */
export interface SealParts {
  /** PKESK packets that carry `sessionKey` to every recipient. */
  pkeskPackets: Uint8Array;
  /** The one-pass signature packets, header included, in message order. */
  onePassSignatures: Uint8Array;
  /** The signature packets over the plaintext, header included. */
  signatures: Uint8Array;
  /** The AES-256 session key. */
  sessionKey: Uint8Array;
  /** The literal packet's date, in seconds since 1970. */
  date: number;
}

/** Returns a new AES-256 session key from the system's random source. */
export function newSessionKey(): Uint8Array {
  return randomBytes(SESSION_KEY_BYTES);
}

/**
 * Returns whether `plaintext` has enough room around it in its ArrayBuffer
 * for sealSeipdV1InPlace with `parts`. It also needs at least
 * SEGMENT_HEADROOM_BYTES before it, even when the packets would fit in
 * less: a small Buffer inside Node's shared 8 KiB pool then never counts
 * as having room, so its neighbours are never written over.
 */
export function hasRoomToSeal(plaintext: Uint8Array, parts: Omit<SealParts, 'sessionKey' | 'date'>): boolean {
  const { before, after } = roomNeeded(parts);
  const roomAfter = plaintext.buffer.byteLength - plaintext.byteOffset - plaintext.byteLength;
  return plaintext.byteOffset >= Math.max(before, SEGMENT_HEADROOM_BYTES) && roomAfter >= after;
}

/**
 * Returns `plaintext` copied into a new buffer with the standard room around
 * it, as a view of that buffer.
 */
export function copyWithRoom(plaintext: Uint8Array): Uint8Array {
  const buffer = new Uint8Array(SEGMENT_HEADROOM_BYTES + plaintext.byteLength + SEGMENT_TAILROOM_BYTES);
  buffer.set(plaintext, SEGMENT_HEADROOM_BYTES);
  return buffer.subarray(SEGMENT_HEADROOM_BYTES, SEGMENT_HEADROOM_BYTES + plaintext.byteLength);
}

/**
 * Encrypts `plaintext` into a SEIPD v1 message where it lies, using the
 * room around it (hasRoomToSeal must be true). The plaintext is
 * overwritten. Returns the message, a view of the same ArrayBuffer that
 * starts before and ends after the plaintext, and its SHA-256.
 */
export function sealSeipdV1InPlace(plaintext: Uint8Array, parts: SealParts): { ciphertext: Uint8Array; sha256: string } {
  if (parts.sessionKey.byteLength !== SESSION_KEY_BYTES) {
    throw new Error(`the session key has ${parts.sessionKey.byteLength} bytes, but AES-256 needs ${SESSION_KEY_BYTES}`);
  }
  if (!hasRoomToSeal(plaintext, parts)) {
    throw new Error(`the ${plaintext.byteLength}-byte plaintext has too little room around it in its buffer; copy it with copyWithRoom first`);
  }

  const buffer = new Uint8Array(plaintext.buffer, 0, plaintext.buffer.byteLength);
  const { before, after } = roomNeeded(parts);
  const start = plaintext.byteOffset - before;
  const end = plaintext.byteOffset + plaintext.byteLength + after;

  // The packets around the content: PKESK packets, the SEIPD header and,
  // still in plaintext, the prefix, one-pass signatures and literal header
  // before it, then the signatures and the MDC header after it.
  let offset = start;
  const put = (bytes: Uint8Array) => {
    buffer.set(bytes, offset);
    offset += bytes.byteLength;
  };
  put(parts.pkeskPackets);
  const seipdHeader = offset;
  put(longPacketHeader(PacketTag.symEncryptedIntegrityProtectedData, end - seipdHeader - LONG_HEADER_BYTES));
  put(Uint8Array.of(SEIPD_VERSION));
  const encryptedStart = offset;
  const random = randomBytes(BLOCK_BYTES);
  put(random);
  put(random.subarray(BLOCK_BYTES - 2));
  put(parts.onePassSignatures);
  put(longPacketHeader(PacketTag.literalData, LITERAL_PREAMBLE_BYTES + plaintext.byteLength));
  put(literalPreamble(parts.date));

  offset += plaintext.byteLength;
  put(parts.signatures);
  put(MDC_HEADER);
  const digestOffset = offset;

  // The MDC's SHA-1 covers everything from the prefix to its own header.
  const cfb = createCipheriv('aes-256-cfb', parts.sessionKey, Buffer.alloc(BLOCK_BYTES));
  const mdc = createHash('sha1');
  const encryptHere = (at: number, length: number) => {
    const span = buffer.subarray(at, at + length);
    const encrypted = cfb.update(span);
    if (encrypted.byteLength !== length) throw new Error(`AES-256-CFB returned ${encrypted.byteLength} bytes for ${length}`);
    span.set(encrypted);
  };

  // Each CFB call returns a new buffer, collected while it is young.
  const garbage = new YoungGarbagePacer();
  for (let at = encryptedStart; at < digestOffset; at += CFB_STEP_BYTES) {
    const length = Math.min(CFB_STEP_BYTES, digestOffset - at);
    mdc.update(buffer.subarray(at, at + length));
    encryptHere(at, length);
    garbage.add(length);
  }
  buffer.set(mdc.digest(), digestOffset);
  encryptHere(digestOffset, end - digestOffset);
  cfb.final();

  const ciphertext = buffer.subarray(start, end);
  return { ciphertext, sha256: createHash('sha256').update(ciphertext).digest('hex') };
}

/** Bytes that go before and after the literal content in the sealed message. */
function roomNeeded(parts: Omit<SealParts, 'sessionKey' | 'date'>): { before: number; after: number } {
  const before =
    parts.pkeskPackets.byteLength +
    LONG_HEADER_BYTES +
    SEIPD_VERSION_BYTES +
    PREFIX_BYTES +
    parts.onePassSignatures.byteLength +
    LONG_HEADER_BYTES +
    LITERAL_PREAMBLE_BYTES;
  return { before, after: parts.signatures.byteLength + MDC_BYTES };
}

function literalPreamble(date: number): Uint8Array {
  const preamble = new Uint8Array(LITERAL_PREAMBLE_BYTES);
  preamble[0] = BINARY_FORMAT;
  preamble[1] = 0; // no file name
  new DataView(preamble.buffer).setUint32(2, date);
  return preamble;
}
