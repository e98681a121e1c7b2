/**
 * Writing a segment as a SEIPD v1 message (RFC 4880 section 5.13): PKESK
 * packets, then one encrypted data packet. Its body is the version byte,
 * then the random prefix, the signed inner message and the MDC packet, all
 * encrypted in AES-256-CFB with a zero IV.
 *
 * openpgp.js still makes the PKESK packets (public-key encryption of the
 * session key) and the signed inner message (one-pass signature, literal
 * data, signature). Only the symmetric layer is the project's: openpgp.js's
 * own encryption pipeline copies every slice several times on its way to
 * the cipher. Without it a 2 GiB backup took about 9% less time and 15 MiB
 * less memory (bench/notes.md). CFB encryption itself stays sequential, so
 * Node's aes-256-cfb and the hashes now bound it. The output is an ordinary
 * message that gpg, sqop and openpgp.js read.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import type { ReadableStream } from 'node:stream/web';

import { forEachChunk, GrowingBuffer } from './slices.js';

const BLOCK_BYTES = 16;
const SESSION_KEY_BYTES = 32;

/** Tag 18 in a new-format header, then 0xFF: a four-byte body length follows. */
const HEADER = [0xc0 | 18, 0xff] as const;
const HEADER_BYTES = 6;
const SEIPD_VERSION = 1;

/** The MDC packet's header, tag 19 (0xD3) and length 20, which the SHA-1 follows. */
const MDC_HEADER = Uint8Array.from([0xd3, 0x14]);

/** Returns a new AES-256 session key from the system's random source. */
export function newSessionKey(): Uint8Array {
  return randomBytes(SESSION_KEY_BYTES);
}

/**
 * Writes PKESK packets and the SEIPD v1 packet of `inner` into `output`,
 * growing it when too small. Returns the message bytes and their SHA-256.
 * `sessionKey` must be the AES-256 key that `pkeskPackets` carry.
 */
export async function writeSeipdV1(
  pkeskPackets: Uint8Array,
  inner: ReadableStream<Uint8Array>,
  sessionKey: Uint8Array,
  output: Uint8Array,
): Promise<{ ciphertext: Uint8Array; sha256: string }> {
  if (sessionKey.byteLength !== SESSION_KEY_BYTES) {
    throw new Error(`the session key has ${sessionKey.byteLength} bytes, but AES-256 needs ${SESSION_KEY_BYTES}`);
  }

  const writer = new GrowingBuffer(output);
  writer.write(pkeskPackets);
  const headerOffset = writer.length;
  writer.write(new Uint8Array(HEADER_BYTES));
  writer.write(Uint8Array.of(SEIPD_VERSION));

  const cfb = createCipheriv('aes-256-cfb', sessionKey, Buffer.alloc(BLOCK_BYTES));
  const mdc = createHash('sha1');
  const encrypt = (plaintext: Uint8Array) => {
    mdc.update(plaintext);
    writer.write(cfb.update(plaintext));
  };

  // The prefix: one block of random bytes, then its last two bytes again.
  const random = randomBytes(BLOCK_BYTES);
  encrypt(random);
  encrypt(random.subarray(BLOCK_BYTES - 2));

  await forEachChunk(inner, encrypt);

  // The MDC covers the prefix, the inner packets and its own two header bytes.
  encrypt(MDC_HEADER);
  writer.write(cfb.update(mdc.digest()));
  writer.write(cfb.final());

  const ciphertext = writer.bytes();
  const bodyLength = ciphertext.byteLength - headerOffset - HEADER_BYTES;
  ciphertext.set(HEADER, headerOffset);
  new DataView(ciphertext.buffer, ciphertext.byteOffset + headerOffset + HEADER.length, 4).setUint32(0, bodyLength);

  return { ciphertext, sha256: createHash('sha256').update(ciphertext).digest('hex') };
}
