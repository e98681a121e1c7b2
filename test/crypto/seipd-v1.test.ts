import { createCipheriv, createHash, randomBytes } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import type { BodyPiece } from '../../src/crypto/packet-frames.js';
import { openSeipdV1InPlace, type SeipdCipher } from '../../src/crypto/seipd-v1.js';
import { patternBytes, sameBytes } from './fixtures.js';

const KEY_BYTES: Record<SeipdCipher, number> = { aes128: 16, aes192: 24, aes256: 32 };

/**
 * Builds a SEIPD v1 body the way RFC 4880 section 5.13 describes it, with
 * Node's own CFB mode as the reference: random prefix, its last two bytes
 * again, the inner packets, the MDC packet, all encrypted with a zero IV.
 */
function sealedBody(inner: Uint8Array, cipher: SeipdCipher, key: Uint8Array): Uint8Array {
  const random = randomBytes(16);
  const prefix = Buffer.concat([random, random.subarray(14)]);
  const hashed = Buffer.concat([prefix, inner, Buffer.from([0xd3, 0x14])]);
  const plaintext = Buffer.concat([hashed, createHash('sha1').update(hashed).digest()]);
  const cfb = createCipheriv(cipher.replace(/^aes(\d+)$/, 'aes-$1-cfb'), key, Buffer.alloc(16));
  return Buffer.concat([Buffer.from([1]), cfb.update(plaintext), cfb.final()]);
}

/**
 * Lays `body` out in pieces of `pieceBytes` with `gapBytes` of unrelated bytes
 * before each, as partial-length headers sit between the pieces of a packet.
 */
function scattered(body: Uint8Array, pieceBytes: number, gapBytes: number): { buffer: Uint8Array; pieces: BodyPiece[] } {
  const pieces: BodyPiece[] = [];
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (let start = 0; start < body.length; start += pieceBytes) {
    const piece = body.subarray(start, start + pieceBytes);
    parts.push(new Uint8Array(gapBytes).fill(0xee), piece);
    pieces.push({ offset: offset + gapBytes, length: piece.length });
    offset += gapBytes + piece.length;
  }
  return { buffer: Uint8Array.from(Buffer.concat(parts)), pieces };
}

function open(inner: Uint8Array, cipher: SeipdCipher = 'aes256', layout = { pieceBytes: 1 << 20, gapBytes: 0 }): Uint8Array {
  const key = randomBytes(KEY_BYTES[cipher]);
  const { buffer, pieces } = scattered(sealedBody(inner, cipher, key), layout.pieceBytes, layout.gapBytes);
  const bounds = openSeipdV1InPlace(buffer, pieces, cipher, key);
  return buffer.subarray(bounds.start, bounds.end);
}

describe('openSeipdV1InPlace', () => {
  // Sizes around the 16-byte block and the 64 KiB window, where the
  // keystream of one step comes from the last block of the step before.
  const sizes = [0, 1, 15, 16, 17, 65_536 - 40, 65_536 - 41, 65_536 - 39, 65_536, 131_072 + 7, 1_000_003];

  it.each(sizes)('matches CFB of Node for %i inner bytes', (length) => {
    const inner = patternBytes(length, length % 251);
    expect(sameBytes(open(inner), inner)).toBe(true);
  });

  it.each(['aes128', 'aes192'] as const)('decrypts %s body', (cipher) => {
    const inner = patternBytes(200_000, 3);
    expect(sameBytes(open(inner, cipher), inner)).toBe(true);
  });

  it('gathers scattered body pieces', () => {
    const inner = patternBytes(300_000, 4);
    expect(sameBytes(open(inner, 'aes256', { pieceBytes: 8192, gapBytes: 1 }), inner)).toBe(true);
    expect(sameBytes(open(inner, 'aes256', { pieceBytes: 512, gapBytes: 5 }), inner)).toBe(true);
  });

  it('detects flipped bit anywhere', () => {
    const key = randomBytes(32);
    const body = sealedBody(patternBytes(150_000, 5), 'aes256', key);
    // Prefix, its repeated bytes, first window, a later window, MDC header, MDC hash.
    for (const offset of [1, 17, 18, 1000, 140_000, body.length - 22, body.length - 21, body.length - 1]) {
      const tampered = Uint8Array.from(body);
      tampered[offset] ^= 0x10;
      expect(() => openSeipdV1InPlace(tampered, [{ offset: 0, length: tampered.length }], 'aes256', key), `bit flipped at ${offset}`).toThrow(
        /modification detected/,
      );
    }
  });

  it('rejects wrong session key', () => {
    const body = sealedBody(patternBytes(1000, 6), 'aes256', randomBytes(32));
    expect(() => openSeipdV1InPlace(body, [{ offset: 0, length: body.length }], 'aes256', randomBytes(32))).toThrow(/modification detected/);
  });

  it('rejects wrong key size', () => {
    const body = sealedBody(patternBytes(1000, 7), 'aes256', randomBytes(32));
    expect(() => openSeipdV1InPlace(body, [{ offset: 0, length: body.length }], 'aes256', randomBytes(16))).toThrow(/16 bytes, but aes256 needs 32/);
  });

  it('rejects too short body', () => {
    const body = Uint8Array.from([1, ...patternBytes(39, 8)]);
    expect(() => openSeipdV1InPlace(body, [{ offset: 0, length: body.length }], 'aes256', randomBytes(32))).toThrow(/fewer than the 40 that its prefix/);
  });
});
