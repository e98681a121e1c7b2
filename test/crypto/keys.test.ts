import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CryptoError } from '../../src/errors.js';
import { keyInfo, keyMatchesFingerprint, readPublicKeyArmored, readPublicKeyFile, readSecretKeyFile } from '../../src/crypto/index.js';
import { makeAdminKey, makeHostKey, makeTempDir, type TestKey } from './fixtures.js';

const PASSPHRASE = 'correct horse battery staple';

let dir: ReturnType<typeof makeTempDir>;
let host: TestKey;
let admin: TestKey;

beforeAll(async () => {
  dir = makeTempDir('hvb-keys-');
  host = await makeHostKey();
  admin = await makeAdminKey('alice', PASSPHRASE);
});

afterAll(() => dir.remove());

function writeKey(name: string, contents: string | Uint8Array, mode: number): string {
  const path = join(dir.path, name);
  writeFileSync(path, contents, { mode });
  return path;
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the promise to reject');
}

describe('readSecretKeyFile', () => {
  it('reads unprotected host key', async () => {
    const path = writeKey('host.asc', host.armored.privateKey, 0o600);
    const key = await readSecretKeyFile(path);
    expect(key.getFingerprint().toUpperCase()).toBe(host.armored.fingerprint);
    expect(key.isDecrypted()).toBe(true);
  });

  it('reads binary secret key', async () => {
    const path = writeKey('host.gpg', host.privateKey.write(), 0o600);
    const key = await readSecretKeyFile(path);
    expect(key.getFingerprint().toUpperCase()).toBe(host.armored.fingerprint);
  });

  it('rejects mode 0644 with chmod hint', async () => {
    const path = writeKey('open.asc', host.armored.privateKey, 0o644);
    const error = await rejection(readSecretKeyFile(path));
    expect(error).toBeInstanceOf(CryptoError);
    expect(error.message).toContain(path);
    expect(error.message).toContain('0644');
    expect((error as CryptoError).hint).toContain(`chmod 600 ${path}`);
  });

  it('unlocks key with right passphrase', async () => {
    const path = writeKey('alice.asc', admin.armored.privateKey, 0o600);
    const key = await readSecretKeyFile(path, PASSPHRASE);
    expect(key.isDecrypted()).toBe(true);
  });

  it('rejects wrong passphrase without echoing it', async () => {
    const path = writeKey('alice-wrong.asc', admin.armored.privateKey, 0o600);
    const wrong = 'hunter2-not-the-passphrase';
    const error = await rejection(readSecretKeyFile(path, wrong));
    expect(error).toBeInstanceOf(CryptoError);
    expect(error.message).toContain('passphrase is wrong');
    expect(JSON.stringify({ message: error.message, hint: (error as CryptoError).hint, cause: String(error.cause) })).not.toContain(wrong);
  });

  it('rejects protected key without passphrase', async () => {
    const path = writeKey('alice-none.asc', admin.armored.privateKey, 0o600);
    const error = await rejection(readSecretKeyFile(path));
    expect(error).toBeInstanceOf(CryptoError);
    expect(error.message).toContain('none was given');
  });

  it('rejects public key file', async () => {
    const path = writeKey('public-only.asc', host.armored.publicKey, 0o600);
    const error = await rejection(readSecretKeyFile(path));
    expect(error).toBeInstanceOf(CryptoError);
    expect(error.message).toContain('only a public key');
  });

  it('rejects missing file naming path', async () => {
    const path = join(dir.path, 'absent.asc');
    const error = await rejection(readSecretKeyFile(path));
    expect(error).toBeInstanceOf(CryptoError);
    expect(error.message).toContain(path);
  });
});

describe('readPublicKeyFile', () => {
  it('reads armored public key', async () => {
    const path = writeKey('host.pub.asc', host.armored.publicKey, 0o644);
    const key = await readPublicKeyFile(path);
    expect(key.getFingerprint().toUpperCase()).toBe(host.armored.fingerprint);
    expect(key.isPrivate()).toBe(false);
  });

  it('strips secret part of key', async () => {
    const path = writeKey('host.both.asc', host.armored.privateKey, 0o600);
    const key = await readPublicKeyFile(path);
    expect(key.isPrivate()).toBe(false);
  });

  it('rejects garbage naming path', async () => {
    const path = writeKey('garbage.asc', 'not a key at all', 0o644);
    const error = await rejection(readPublicKeyFile(path));
    expect(error).toBeInstanceOf(CryptoError);
    expect(error.message).toContain(path);
  });

  it('rejects file with two keys', async () => {
    const path = writeKey('two.gpg', Buffer.concat([host.publicKey.write(), admin.publicKey.write()]), 0o644);
    const error = await rejection(readPublicKeyFile(path));
    expect(error.message).toContain('contains 2 keys');
  });
});

describe('readPublicKeyArmored', () => {
  it('names source on invalid text', async () => {
    const error = await rejection(readPublicKeyArmored('-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n', 'keys/ABC.asc'));
    expect(error).toBeInstanceOf(CryptoError);
    expect(error.message).toContain('keys/ABC.asc');
  });
});

describe('keyInfo', () => {
  it('describes v4 secret key', () => {
    const info = keyInfo(host.privateKey);
    expect(info.fingerprint).toBe(host.armored.fingerprint);
    expect(info.fingerprint).toMatch(/^[0-9A-F]{40}$/);
    expect(info.userIds).toEqual(['host.example <backup@host.example>']);
    expect(info.isPrivate).toBe(true);
    expect(info.version).toBe(4);
  });
});

describe('keyMatchesFingerprint', () => {
  it('matches spaced lowercase primary', () => {
    const spaced = host.armored.fingerprint.toLowerCase().replace(/(.{4})/g, '$1 ');
    expect(keyMatchesFingerprint(host.publicKey, spaced)).toBe(true);
  });

  it('matches subkey fingerprint', () => {
    const subkey = host.publicKey.getSubkeys()[0].getFingerprint();
    expect(keyMatchesFingerprint(host.publicKey, subkey)).toBe(true);
  });

  it('rejects other key fingerprint', () => {
    expect(keyMatchesFingerprint(host.publicKey, admin.armored.fingerprint)).toBe(false);
  });

  it('rejects empty fingerprint', () => {
    expect(keyMatchesFingerprint(host.publicKey, '  ')).toBe(false);
  });
});
