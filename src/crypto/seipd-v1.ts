/**
 * Decryption of a SEIPD v1 body (RFC 4880 section 5.13, RFC 9580 section
 * 5.13.1): AES in CFB mode with a zero IV, followed by a check of the
 * modification detection code (MDC).
 *
 * Why not openpgp.js: it runs CFB through Node's aes-*-cfb, which OpenSSL
 * computes one block after the other, at about 590 MiB/s here. CFB
 * decryption has no chain, though: plaintext block i is
 * AES(C[i-1]) XOR C[i], with the IV as C[-1]. Two passes that OpenSSL
 * pipelines give exactly that, without any XOR in JavaScript:
 * - AES-ECB encryption turns each ciphertext block into Y[i] = AES(C[i]);
 * - CBC decryption of Y yields AESinv(Y[i]) XOR Y[i-1] = C[i] XOR AES(C[i-1]),
 *   and with AES(IV) as its own IV, block 0 comes out right too.
 * docs/crypto.md records the measurements and the tests that compare the
 * result with Node's CFB.
 *
 * The body is decrypted in place. Nothing here judges the plaintext: the
 * caller must not use any of it unless this function returned normally.
 */
import { createCipheriv, createDecipheriv, createHash, timingSafeEqual } from 'node:crypto';

import { gatherBody, type BodyPiece } from './packet-frames.js';
import { YoungGarbagePacer } from './young-garbage.js';

/** AES variants that SEIPD v1 segments use, by openpgp.js algorithm name. */
const AES_CIPHERS = {
  aes128: { ecb: 'aes-128-ecb', cbc: 'aes-128-cbc', keyBytes: 16 },
  aes192: { ecb: 'aes-192-ecb', cbc: 'aes-192-cbc', keyBytes: 24 },
  aes256: { ecb: 'aes-256-ecb', cbc: 'aes-256-cbc', keyBytes: 32 },
} as const;

export type SeipdCipher = keyof typeof AES_CIPHERS;

const BLOCK_BYTES = 16;

/** Random prefix of a block plus its last two bytes repeated (RFC 4880 section 5.13). */
const PREFIX_BYTES = BLOCK_BYTES + 2;

/** The MDC packet at the end of the plaintext: tag 19 (0xD3), length 20, SHA-1. */
const MDC_HEADER = [0xd3, 0x14] as const;
const MDC_PACKET_BYTES = 22;
const MDC_HASH_BYTES = 20;

/**
 * Bytes decrypted per step. OpenSSL's ECB reached its top speed at 64 KiB
 * inputs; larger ones cost fresh, page-faulted output buffers.
 */
const WINDOW_BYTES = 64 * 1024;

export function isSeipdCipher(algorithm: string): algorithm is SeipdCipher {
  return Object.hasOwn(AES_CIPHERS, algorithm);
}

/**
 * Moves the body pieces of the SEIPD v1 packet (version byte first) to the
 * start of `buffer`, decrypts them there with `sessionKey` and checks the MDC.
 * Returns the bounds of the inner OpenPGP packets (the plaintext without
 * the random prefix and the MDC packet) within `buffer`.
 *
 * `buffer` must be owned by the caller: its contents are overwritten. Raises
 * an Error when the session key has the wrong size or the MDC does not match.
 */
export function openSeipdV1InPlace(buffer: Uint8Array, pieces: BodyPiece[], cipher: SeipdCipher, sessionKey: Uint8Array): { start: number; end: number } {
  const { keyBytes } = AES_CIPHERS[cipher];
  if (sessionKey.byteLength !== keyBytes) {
    throw new Error(`the session key has ${sessionKey.byteLength} bytes, but ${cipher} needs ${keyBytes}`);
  }

  // The body starts with the version byte, which the caller has checked.
  const [first, ...rest] = pieces;
  const length = first === undefined ? 0 : gatherBody(buffer, [{ offset: first.offset + 1, length: first.length - 1 }, ...rest], 0);
  if (length < PREFIX_BYTES + MDC_PACKET_BYTES) {
    throw new Error(`invalid encrypted data: ${length} bytes, fewer than the ${PREFIX_BYTES + MDC_PACKET_BYTES} that its prefix and MDC packet take`);
  }

  const mdc = decryptCfbInPlace(buffer.subarray(0, length), cipher, sessionKey);
  const expected = buffer.subarray(length - MDC_HASH_BYTES, length);
  const header = buffer.subarray(length - MDC_PACKET_BYTES, length - MDC_HASH_BYTES);
  if (header[0] !== MDC_HEADER[0] || header[1] !== MDC_HEADER[1] || !timingSafeEqual(mdc, expected)) {
    throw new Error('modification detected: the MDC does not match the decrypted data');
  }

  return { start: PREFIX_BYTES, end: length - MDC_PACKET_BYTES };
}

/**
 * CFB-decrypts `data` in place with a zero IV, window by window, and returns
 * the SHA-1 of the plaintext without its last 20 bytes (the MDC input).
 * The CBC decipher carries Y[i-1] from one window to the next.
 */
function decryptCfbInPlace(data: Uint8Array, cipher: SeipdCipher, key: Uint8Array): Buffer {
  const names = AES_CIPHERS[cipher];
  const ecb = createCipheriv(names.ecb, key, null);
  ecb.setAutoPadding(false);
  let lastY: Uint8Array = ecb.update(new Uint8Array(BLOCK_BYTES));
  const cbc = createDecipheriv(names.cbc, key, lastY);
  cbc.setAutoPadding(false);

  const sha1 = createHash('sha1');
  const hashedLength = data.byteLength - MDC_HASH_BYTES;
  const hashPlaintext = (start: number, end: number) => {
    if (start < hashedLength) sha1.update(data.subarray(start, Math.min(end, hashedLength)));
  };

  // Both ciphers return a new buffer per window. Collected while young, they
  // stay out of the worker's malloc arena, which otherwise grew by tens of MiB.
  const garbage = new YoungGarbagePacer();
  const wholeBlocksLength = data.byteLength - (data.byteLength % BLOCK_BYTES);
  for (let start = 0; start < wholeBlocksLength; start += WINDOW_BYTES) {
    const end = Math.min(start + WINDOW_BYTES, wholeBlocksLength);
    const y = ecb.update(data.subarray(start, end));
    data.set(cbc.update(y), start);
    lastY = y.subarray(y.byteLength - BLOCK_BYTES);
    hashPlaintext(start, end);
    garbage.add(2 * (end - start));
  }

  // A last, partial block: CFB XORs it with the start of AES(last whole ciphertext block).
  for (let index = wholeBlocksLength; index < data.byteLength; index++) data[index] ^= lastY[index - wholeBlocksLength];
  hashPlaintext(wholeBlocksLength, data.byteLength);

  ecb.final();
  cbc.final();
  return sha1.digest();
}
