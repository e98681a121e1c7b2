import { readFileSync } from 'node:fs';

import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SegmentDecryptor, SegmentEncryptor } from '../../src/crypto/index.js';
import { CryptoError, VerificationError } from '../../src/errors.js';
import { available } from '../support/components.js';
import { flipBit, GnupgHome, makeAdminKey, makeHostKey, patternBytes, sameBytes, type TestKey } from './fixtures.js';

let host: TestKey;
let stranger: TestKey;
let alice: TestKey;
let bob: TestKey;
let segment: Uint8Array;
const plaintext = patternBytes(120_000, 11);
// Larger than three of the 1 MiB slices that openpgp.js works on.
const largePlaintext = patternBytes(3 * 1024 * 1024 + 500_000, 13);
let largeSegment: Uint8Array;

beforeAll(async () => {
  host = await makeHostKey();
  stranger = await makeHostKey('stranger.example');
  alice = await makeAdminKey('alice');
  bob = await makeAdminKey('bob');

  const encryptor = await SegmentEncryptor.create({ recipients: [alice.publicKey], signingKey: host.privateKey, workers: 0 });
  segment = (await encryptor.encrypt(plaintext)).ciphertext;
  largeSegment = (await encryptor.encrypt(largePlaintext)).ciphertext;
  await encryptor.close();
});

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the promise to reject');
}

describe.each([0, 1])('SegmentDecryptor with %i workers', (workers) => {
  let decryptor: SegmentDecryptor;

  beforeAll(async () => {
    decryptor = await SegmentDecryptor.create({ decryptionKeys: [alice.privateKey], verificationKeys: [host.publicKey], workers });
  });

  afterAll(() => decryptor.close());

  it('rejects flipped bit in ciphertext', async () => {
    // Offsets in the encrypted data packet, past the PKESK packet.
    for (const offset of [segment.length - 30, Math.floor(segment.length / 2), 200]) {
      const error = await rejection(decryptor.decrypt(flipBit(segment, offset), 'segment-flipped'));
      expect(error, `bit flipped at offset ${offset}`).toBeInstanceOf(CryptoError);
      expect(error.message, `bit flipped at offset ${offset}`).toContain('segment-flipped');
    }
  });

  it('round trip of multi-slice segment', async () => {
    const result = await decryptor.decrypt(largeSegment, 'segment-large');
    expect(sameBytes(result.plaintext, largePlaintext)).toBe(true);
  });

  it('rejects flipped bit in any slice', async () => {
    // The MDC at the end must catch a change in an early slice, after later slices were decrypted.
    for (const offset of [1024 * 1024 + 7, 2 * 1024 * 1024 + 7, largeSegment.length - 30]) {
      const error = await rejection(decryptor.decrypt(flipBit(largeSegment, offset), 'segment-large-flipped'));
      expect(error, `bit flipped at offset ${offset}`).toBeInstanceOf(CryptoError);
    }
  });

  it('rejects truncated ciphertext', async () => {
    const error = await rejection(decryptor.decrypt(segment.subarray(0, segment.length - 100), 'segment-truncated'));
    expect(error).toBeInstanceOf(CryptoError);
  });

  it('rejects segment by unknown signer', async () => {
    const forged = await openpgp.encrypt({
      message: await openpgp.createMessage({ binary: plaintext }),
      encryptionKeys: alice.publicKey,
      signingKeys: stranger.privateKey,
      format: 'binary',
    });
    const error = await rejection(decryptor.decrypt(forged, 'segment-forged'));
    expect(error).toBeInstanceOf(VerificationError);
    expect((error as VerificationError).check).toBe('segment-signature');
    expect((error as VerificationError).object).toBe('segment-forged');
    expect(error.message).toContain('not one of the trusted host keys');
  });

  it('rejects unsigned segment', async () => {
    const unsigned = await openpgp.encrypt({
      message: await openpgp.createMessage({ binary: plaintext }),
      encryptionKeys: alice.publicKey,
      format: 'binary',
    });
    const error = await rejection(decryptor.decrypt(unsigned, 'segment-unsigned'));
    expect(error).toBeInstanceOf(VerificationError);
    expect((error as VerificationError).check).toBe('segment-signature');
    expect(error.message).toContain('no signature');
  });

  it('rejects segment for other admin', async () => {
    const forBob = await openpgp.encrypt({
      message: await openpgp.createMessage({ binary: plaintext }),
      encryptionKeys: bob.publicKey,
      signingKeys: host.privateKey,
      format: 'binary',
    });
    const bobKeyId = bob.publicKey.getSubkeys()[0].getKeyID().toHex().toUpperCase();
    const error = await rejection(decryptor.decrypt(forBob, 'segment-bob'));
    expect(error).toBeInstanceOf(CryptoError);
    expect(error.message).toContain('not encrypted to any of your keys');
    expect(error.message).toContain(bobKeyId);
  });

  it('rejects bytes that are no message', async () => {
    const error = await rejection(decryptor.decrypt(patternBytes(500, 12), 'segment-noise'));
    expect(error).toBeInstanceOf(CryptoError);
    expect(error.message).toContain('segment-noise');
  });

  it('decrypts intact segment after failures', async () => {
    const result = await decryptor.decrypt(segment, 'segment-good');
    expect(sameBytes(result.plaintext, plaintext)).toBe(true);
  });
});

describe('SegmentDecryptor.create', () => {
  it('rejects missing decryption keys', async () => {
    const error = await rejection(SegmentDecryptor.create({ verificationKeys: [host.publicKey], workers: 0 }));
    expect(error).toBeInstanceOf(CryptoError);
  });

  it('rejects empty verification keys', async () => {
    const error = await rejection(SegmentDecryptor.create({ decryptionKeys: [alice.privateKey], verificationKeys: [], workers: 0 }));
    expect(error).toBeInstanceOf(CryptoError);
  });
});

describe.skipIf(!available('gpg'))('SegmentDecryptor reading gpg output', () => {
  let gnupg: GnupgHome;

  beforeAll(() => {
    gnupg = new GnupgHome();
    gnupg.importKey(host.armored.privateKey);
    gnupg.importKey(alice.armored.publicKey);
  });

  afterAll(() => gnupg.remove());

  it('decrypts gpg encrypt and sign', async () => {
    const input = gnupg.writeFile('plain.bin', plaintext);
    const output = `${input}.gpg`;
    const made = gnupg.gpg([
      '--trust-model', 'always',
      '--local-user', host.armored.fingerprint,
      '--recipient', alice.armored.fingerprint,
      '--output', output,
      '--encrypt', '--sign', input,
    ]);
    expect(made.status, made.stderr).toBe(0);

    const decryptor = await SegmentDecryptor.create({ decryptionKeys: [alice.privateKey], verificationKeys: [host.publicKey], workers: 1 });
    const result = await decryptor.decrypt(readFileSync(output), 'segment-from-gpg');
    await decryptor.close();

    expect(sameBytes(result.plaintext, plaintext)).toBe(true);
    expect(result.signerFingerprint).toBe(host.armored.fingerprint);
  });
});
