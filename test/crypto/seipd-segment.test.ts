import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SegmentEncryptor } from '../../src/crypto/index.js';
import { PacketTag, readPacketFrames } from '../../src/crypto/packet-frames.js';
import { openSeipdSegmentInPlace, planInPlaceDecryption } from '../../src/crypto/seipd-segment.js';
import { decryptSegment, type DecryptKeys } from '../../src/crypto/segment-operations.js';
import { openSeipdV1InPlace } from '../../src/crypto/seipd-v1.js';
import { VerificationError } from '../../src/errors.js';
import { available } from '../support/components.js';
import { GnupgHome, makeAdminKey, makeHostKey, patternBytes, runCommand, sameBytes, type TestKey } from './fixtures.js';

let host: TestKey;
let alice: TestKey;
let keys: DecryptKeys;

async function encrypted(plaintext: Uint8Array): Promise<Uint8Array> {
  const encryptor = await SegmentEncryptor.create({ recipients: [alice.publicKey], signingKey: host.privateKey, workers: 0 });
  const { ciphertext } = await encryptor.encrypt(plaintext);
  await encryptor.close();
  return ciphertext;
}

/** Wraps `inner` packets in a new SEIPD v1 message to alice, with a fresh session key: what anyone holding her public key can make. */
async function sealedForAlice(inner: Uint8Array): Promise<Uint8Array> {
  const sessionKey = randomBytes(32);
  const pkesk = await openpgp.encryptSessionKey({ data: sessionKey, algorithm: 'aes256', encryptionKeys: alice.publicKey, format: 'binary' });
  const random = randomBytes(16);
  const hashed = Buffer.concat([random, random.subarray(14), inner, Buffer.from([0xd3, 0x14])]);
  const cfb = createCipheriv('aes-256-cfb', sessionKey, Buffer.alloc(16));
  const body = Buffer.concat([Buffer.from([1]), cfb.update(Buffer.concat([hashed, createHash('sha1').update(hashed).digest()])), cfb.final()]);
  const header = Buffer.from([0xc0 | 18, 0xff, 0, 0, 0, 0]);
  header.writeUInt32BE(body.length, 2);
  return Uint8Array.from(Buffer.concat([pkesk as Uint8Array, header, body]));
}

beforeAll(async () => {
  host = await makeHostKey();
  alice = await makeAdminKey('alice');
  keys = { decryptionKeys: [alice.privateKey], verificationKeys: [host.publicKey] };
});

describe('in-place decryption of hvbackup segments', () => {
  it.each([0, 1, 5000, 1_048_576 + 13, 3 * 1_048_576 + 500_000])('decrypts %i bytes in place', async (length) => {
    const plaintext = patternBytes(length, length % 97);
    const ciphertext = await encrypted(plaintext);

    const plan = await planInPlaceDecryption(ciphertext, 'segment', keys, undefined);
    expect(plan, 'a segment of SEIPD v1 with AES-256 must take the fast path').toBeDefined();
    expect(plan?.cipher).toBe('aes256');

    const opened = await openSeipdSegmentInPlace(ciphertext, plan!, keys, undefined);
    // The content is a view of the segment buffer: the signed-literal reader gathered it there without a copy.
    expect(opened.plaintext.buffer).toBe(ciphertext.buffer);
    expect(sameBytes(opened.plaintext, plaintext)).toBe(true);
    const outcomes = await Promise.all(opened.signatures.map((signature) => signature.verified));
    expect(outcomes).toEqual([true]);
  });

  it('decrypts with given session key', async () => {
    const plaintext = patternBytes(70_000, 3);
    const ciphertext = await encrypted(plaintext);
    const message = await openpgp.readMessage({ binaryMessage: ciphertext.slice() });
    const [sessionKey] = await openpgp.decryptSessionKeys({ message, decryptionKeys: alice.privateKey });

    const keysWithoutSecret = { decryptionKeys: [], verificationKeys: [host.publicKey] };
    const plan = await planInPlaceDecryption(ciphertext, 'segment', keysWithoutSecret, { data: sessionKey.data, algorithm: 'aes256' });
    expect(plan).toBeDefined();
    const result = await decryptSegment(ciphertext, 'segment', keysWithoutSecret, { data: sessionKey.data, algorithm: 'aes256' });
    expect(sameBytes(result.plaintext, plaintext)).toBe(true);
    expect(result.signerFingerprint).toBe(host.armored.fingerprint);
  });

  it('rejects resealed changed content', async () => {
    const plaintext = patternBytes(100_000, 4);
    const ciphertext = await encrypted(plaintext);
    const plan = await planInPlaceDecryption(ciphertext, 'segment', keys, undefined);
    const bounds = openSeipdV1InPlace(ciphertext, plan!.encryptedData.body, plan!.cipher, plan!.sessionKey);
    const inner = ciphertext.slice(bounds.start, bounds.end);

    // Change one content byte near the middle of the literal packet. The one-pass and signature packets stay the host's.
    const literal = readPacketFrames(inner).find((frame) => frame.tag === PacketTag.literalData)!;
    inner[literal.body[0].offset + 5000] ^= 0x01;
    const forged = await sealedForAlice(inner);

    expect(await planInPlaceDecryption(forged, 'segment-forged', keys, undefined)).toBeDefined();
    const error = await decryptSegment(forged, 'segment-forged', keys).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(VerificationError);
    expect((error as Error).message).toMatch(/invalid/);
  });

  it('reads resealed unchanged content', async () => {
    // The control for the test above: resealing alone must not break the signature.
    const plaintext = patternBytes(100_000, 5);
    const ciphertext = await encrypted(plaintext);
    const plan = await planInPlaceDecryption(ciphertext, 'segment', keys, undefined);
    const bounds = openSeipdV1InPlace(ciphertext, plan!.encryptedData.body, plan!.cipher, plan!.sessionKey);

    const resealed = await sealedForAlice(ciphertext.slice(bounds.start, bounds.end));
    const result = await decryptSegment(resealed, 'segment-resealed', keys);
    expect(sameBytes(result.plaintext, plaintext)).toBe(true);
  });
});

describe.skipIf(!available('gpg', 'sqop'))('in-place decryption of messages made by gpg and sqop', () => {
  let gnupg: GnupgHome;
  const plaintext = patternBytes(2 * 1_048_576 + 77, 6);

  beforeAll(() => {
    gnupg = new GnupgHome();
    gnupg.importKey(host.armored.privateKey);
    gnupg.importKey(alice.armored.publicKey);
  });

  afterAll(() => gnupg.remove());

  it('reads gpg output (compressed)', async () => {
    const input = gnupg.writeFile('plain.bin', plaintext);
    const encryption = gnupg.gpg(['--trust-model', 'always', '--local-user', host.armored.fingerprint, '--recipient', alice.armored.fingerprint, '--output', `${input}.gpg`, '--encrypt', '--sign', input]);
    expect(encryption.status, encryption.stderr).toBe(0);
    const ciphertext = Uint8Array.from(readFileSync(`${input}.gpg`));

    expect(await planInPlaceDecryption(ciphertext, 'segment-gpg', keys, undefined)).toBeDefined();
    const result = await decryptSegment(ciphertext, 'segment-gpg', keys);
    expect(sameBytes(result.plaintext, plaintext)).toBe(true);
    expect(result.signerFingerprint).toBe(host.armored.fingerprint);
  });

  it('reads sqop output', async () => {
    const hostKey = gnupg.writeFile('host.key', host.armored.privateKey);
    const aliceCert = gnupg.writeFile('alice.cert', alice.armored.publicKey);
    const encryption = runCommand('sqop', ['encrypt', '--as=binary', '--no-armor', `--sign-with=${hostKey}`, aliceCert], plaintext);
    expect(encryption.status, encryption.stderr).toBe(0);
    const ciphertext = Uint8Array.from(encryption.stdout);

    const result = await decryptSegment(ciphertext, 'segment-sqop', keys);
    expect(sameBytes(result.plaintext, plaintext)).toBe(true);
    expect(result.signerFingerprint).toBe(host.armored.fingerprint);
  });
});

