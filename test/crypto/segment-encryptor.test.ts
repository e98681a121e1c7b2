import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SEGMENT_HEADROOM_BYTES, SEGMENT_TAILROOM_BYTES, SegmentDecryptor, SegmentEncryptor, encryptionRecipients } from '../../src/crypto/index.js';
import { CryptoError } from '../../src/errors.js';
import { available } from '../support/components.js';
import { GnupgHome, makeAdminKey, makeHostKey, patternBytes, runCommand, sameBytes, type TestKey } from './fixtures.js';

let host: TestKey;
let alice: TestKey;
let bob: TestKey;

beforeAll(async () => {
  host = await makeHostKey();
  alice = await makeAdminKey('alice');
  bob = await makeAdminKey('bob');
});

describe.each([0, 2])('SegmentEncryptor with %i workers', (workers) => {
  let encryptor: SegmentEncryptor;

  beforeAll(async () => {
    encryptor = await SegmentEncryptor.create({ recipients: [alice.publicKey, bob.publicKey], signingKey: host.privateKey, workers });
  });

  afterAll(() => encryptor.close());

  it('round trip for either admin', async () => {
    const plaintext = patternBytes(300_000, workers);
    const ciphertext = (await encryptor.encrypt(plaintext)).ciphertext;

    for (const admin of [alice, bob]) {
      const decryptor = await SegmentDecryptor.create({ decryptionKeys: [admin.privateKey], verificationKeys: [host.publicKey], workers });
      const result = await decryptor.decrypt(ciphertext, 'segment-000000');
      await decryptor.close();
      expect(sameBytes(result.plaintext, plaintext)).toBe(true);
      expect(result.signerFingerprint).toBe(host.armored.fingerprint);
    }
  });

  it('encrypts to both admin subkeys', async () => {
    const ciphertext = (await encryptor.encrypt(patternBytes(100, 1))).ciphertext;
    const expected = [alice, bob].map((admin) => admin.publicKey.getSubkeys()[0].getKeyID().toHex().toUpperCase());
    expect((await encryptionRecipients(ciphertext)).sort()).toEqual(expected.sort());
  });

  it('round trip of empty segment', async () => {
    const ciphertext = (await encryptor.encrypt(new Uint8Array(0))).ciphertext;
    const decryptor = await SegmentDecryptor.create({ decryptionKeys: [alice.privateKey], verificationKeys: [host.publicKey], workers });
    const result = await decryptor.decrypt(ciphertext, 'segment-empty');
    await decryptor.close();
    expect(result.plaintext.byteLength).toBe(0);
  });

  it('keeps plaintext without transfer', async () => {
    const plaintext = patternBytes(4096, 2);
    await encryptor.encrypt(plaintext);
    expect(plaintext.byteLength).toBe(4096);
  });

  it('reports SEIPD v1 cipher suite', () => {
    expect(encryptor.cipherSuite).toEqual({ seipdVersion: 1, symmetric: 'aes256' });
  });
});

describe('SegmentEncryptor in place', () => {
  async function decrypted(ciphertext: Uint8Array): Promise<Uint8Array> {
    const decryptor = await SegmentDecryptor.create({ decryptionKeys: [alice.privateKey], verificationKeys: [host.publicKey], workers: 0 });
    const result = await decryptor.decrypt(ciphertext.slice(), 'segment-in-place');
    await decryptor.close();
    return result.plaintext;
  }

  /** Returns a plaintext of `length` bytes in a buffer with the room a segment pool gives it. */
  function withRoom(length: number, seed: number): { buffer: Uint8Array; plaintext: Uint8Array } {
    const buffer = new Uint8Array(SEGMENT_HEADROOM_BYTES + length + SEGMENT_TAILROOM_BYTES);
    const plaintext = buffer.subarray(SEGMENT_HEADROOM_BYTES, SEGMENT_HEADROOM_BYTES + length);
    plaintext.set(patternBytes(length, seed));
    return { buffer, plaintext };
  }

  it('encrypts in place on calling thread', async () => {
    const encryptor = await SegmentEncryptor.create({ recipients: [alice.publicKey], signingKey: host.privateKey, workers: 0 });
    const { buffer, plaintext } = withRoom(200_000, 9);
    const expected = plaintext.slice();
    const encrypted = await encryptor.encrypt(plaintext, { transfer: true });
    await encryptor.close();

    expect(encrypted.ciphertext.buffer).toBe(buffer.buffer);
    expect(encrypted.ciphertext.byteOffset).toBeLessThan(SEGMENT_HEADROOM_BYTES);
    expect(encrypted.ciphertext.byteOffset + encrypted.ciphertext.byteLength).toBeGreaterThan(SEGMENT_HEADROOM_BYTES + 200_000);
    expect(encrypted.buffer.buffer).toBe(buffer.buffer);
    expect(encrypted.sha256).toBe(createHash('sha256').update(encrypted.ciphertext).digest('hex'));
    expect(sameBytes(await decrypted(encrypted.ciphertext), expected)).toBe(true);
  });

  it('moves buffer to worker and back', async () => {
    const encryptor = await SegmentEncryptor.create({ recipients: [alice.publicKey], signingKey: host.privateKey, workers: 1 });
    const length = 2 * 1024 * 1024 + 3;
    const { buffer, plaintext } = withRoom(length, 10);
    const expected = plaintext.slice();
    const encrypted = await encryptor.encrypt(plaintext, { transfer: true });
    await encryptor.close();

    expect(buffer.byteLength).toBe(0);
    expect(encrypted.ciphertext.buffer).toBe(encrypted.buffer.buffer);
    expect(encrypted.ciphertext.buffer.byteLength).toBe(SEGMENT_HEADROOM_BYTES + length + SEGMENT_TAILROOM_BYTES);
    expect(encrypted.sha256).toBe(createHash('sha256').update(encrypted.ciphertext).digest('hex'));
    expect(sameBytes(await decrypted(encrypted.ciphertext), expected)).toBe(true);
  });

  it.each([0, 1])('keeps plaintext without transfer, %i workers', async (workers) => {
    const encryptor = await SegmentEncryptor.create({ recipients: [alice.publicKey], signingKey: host.privateKey, workers });
    const { buffer, plaintext } = withRoom(100_000, 11);
    const before = buffer.slice();
    const encrypted = await encryptor.encrypt(plaintext);
    await encryptor.close();

    expect(sameBytes(buffer, before)).toBe(true);
    expect(encrypted.ciphertext.buffer).not.toBe(buffer.buffer);
    expect(sameBytes(await decrypted(encrypted.ciphertext), plaintext)).toBe(true);
  });

  it('copies plaintext without room', async () => {
    const encryptor = await SegmentEncryptor.create({ recipients: [alice.publicKey], signingKey: host.privateKey, workers: 0 });
    const plaintext = patternBytes(70_000, 12);
    const expected = plaintext.slice();
    const encrypted = await encryptor.encrypt(plaintext, { transfer: true });
    await encryptor.close();

    expect(sameBytes(plaintext, expected)).toBe(true);
    expect(sameBytes(await decrypted(encrypted.ciphertext), expected)).toBe(true);
  });
});

describe('SegmentEncryptor transfer option', () => {
  it('detaches whole buffer with workers', async () => {
    const encryptor = await SegmentEncryptor.create({ recipients: [alice.publicKey], signingKey: host.privateKey, workers: 1 });
    const plaintext = patternBytes(65_536, 3);
    const ciphertext = (await encryptor.encrypt(plaintext, { transfer: true })).ciphertext;
    await encryptor.close();
    expect(plaintext.byteLength).toBe(0);
    expect(ciphertext.byteLength).toBeGreaterThan(65_536);
  });

  it('moves the whole buffer behind a partial view', async () => {
    const encryptor = await SegmentEncryptor.create({ recipients: [alice.publicKey], signingKey: host.privateKey, workers: 1 });
    const backing = patternBytes(8192, 4);
    const view = backing.subarray(1024, 5120);
    await encryptor.encrypt(view, { transfer: true });
    await encryptor.close();
    expect(backing.byteLength).toBe(0);
    expect(view.byteLength).toBe(0);
  });
});

describe('SegmentEncryptor watchdog', () => {
  it('times out slow segment with CryptoError', async () => {
    const encryptor = await SegmentEncryptor.create({ recipients: [alice.publicKey], signingKey: host.privateKey, workers: 1, timeoutMs: 1 });
    const error = await encryptor.encrypt(patternBytes(4 * 1024 * 1024, 5)).catch((caught: unknown) => caught);
    await encryptor.close();
    expect(error).toBeInstanceOf(CryptoError);
    expect((error as Error).message).toContain('timed out');
  });
});

describe.skipIf(!available('gpg'))('SegmentEncryptor output read by gpg', () => {
  let gnupg: GnupgHome;

  beforeAll(() => {
    gnupg = new GnupgHome();
    gnupg.importKey(alice.armored.privateKey);
    gnupg.importKey(host.armored.publicKey);
  });

  afterAll(() => gnupg.remove());

  it('gpg decrypts and verifies segment', async () => {
    const encryptor = await SegmentEncryptor.create({ recipients: [alice.publicKey, bob.publicKey], signingKey: host.privateKey, workers: 1 });
    const plaintext = patternBytes(200_000, 6);
    const segment = gnupg.writeFile('segment.pgp', (await encryptor.encrypt(plaintext)).ciphertext);
    await encryptor.close();

    const output = gnupg.writeFile('segment.out', '');
    const result = gnupg.gpg(['--status-fd', '2', '--trust-model', 'always', '--yes', '-o', output, '-d', segment]);

    expect(result.status).toBe(0);
    expect(sameBytes(readFileSync(output), plaintext)).toBe(true);
    expect(result.stderr).toMatch(/\[GNUPG:\] GOODSIG [0-9A-F]{16} /);
    expect(result.stderr).toMatch(new RegExp(`\\[GNUPG:\\] VALIDSIG [0-9A-F]{40} .* ${host.armored.fingerprint}\\n`));
  });

  it('gpg prints segment session key', async () => {
    const encryptor = await SegmentEncryptor.create({ recipients: [alice.publicKey], signingKey: host.privateKey, workers: 0 });
    const segment = gnupg.writeFile('segment-sk.pgp', (await encryptor.encrypt(patternBytes(1000, 7))).ciphertext);
    await encryptor.close();

    const result = gnupg.gpg(['--status-fd', '2', '--show-session-key', '-o', '/dev/null', '-d', segment]);
    expect(result.stderr).toMatch(/\[GNUPG:\] SESSION_KEY 9:[0-9A-F]{64}/);
  });
});

describe.skipIf(!available('sqop'))('SegmentEncryptor output read by sqop', () => {
  it('sqop decrypts and verifies segment', async () => {
    const gnupg = new GnupgHome();
    const encryptor = await SegmentEncryptor.create({ recipients: [alice.publicKey, bob.publicKey], signingKey: host.privateKey, workers: 1 });
    const plaintext = patternBytes(150_000, 8);
    const ciphertext = (await encryptor.encrypt(plaintext)).ciphertext;
    await encryptor.close();

    const hostCert = gnupg.writeFile('host.cert', host.armored.publicKey);
    const bobKey = gnupg.writeFile('bob.key', bob.armored.privateKey);
    // sqop refuses to overwrite an existing file (SOP exit code 59), so only name it.
    const verifications = join(gnupg.dir.path, 'verifications.txt');
    const result = runCommand('sqop', ['decrypt', `--verify-with=${hostCert}`, `--verifications-out=${verifications}`, bobKey], ciphertext);
    const verificationText = readFileSync(verifications, 'utf8');
    gnupg.remove();

    expect(result.status).toBe(0);
    expect(sameBytes(result.stdout, plaintext)).toBe(true);
    expect(verificationText).toContain(host.armored.fingerprint);
  });
});
