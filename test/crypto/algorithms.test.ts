import * as openpgp from 'openpgp';
import { beforeAll, describe, expect, it } from 'vitest';

import { CryptoError } from '../../src/errors.js';
import { checkRecipients } from '../../src/crypto/index.js';
import { makeAdminKey, type TestKey } from './fixtures.js';

/** Generates a v4 key whose self-signature advertises SEIPD v2, as openpgp.js does with aeadProtect. */
async function makeAeadV4Key(name: string): Promise<openpgp.PublicKey> {
  const { publicKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ name }],
    format: 'object',
    config: { aeadProtect: true },
  });
  return publicKey;
}

async function makeV6Key(name: string, aead: boolean): Promise<openpgp.PublicKey> {
  const { publicKey } = await openpgp.generateKey({
    type: 'curve25519',
    userIDs: [{ name }],
    format: 'object',
    config: { v6Keys: true, aeadProtect: aead },
  });
  return publicKey;
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the promise to reject');
}

let alice: TestKey;
let bob: TestKey;

beforeAll(async () => {
  alice = await makeAdminKey('alice');
  bob = await makeAdminKey('bob');
});

describe('checkRecipients', () => {
  it('selects SEIPD v1 AES-256 by default', async () => {
    const suite = await checkRecipients([alice.publicKey, bob.publicKey], { aead: false });
    expect(suite.seipdVersion).toBe(1);
    expect(suite.symmetric).toBe('aes256');
    expect(suite.aead).toBeUndefined();
  });

  it('rejects SEIPD v2 advertising v4 key', async () => {
    const modern = await makeAeadV4Key('modern');
    const error = await rejection(checkRecipients([modern], { aead: false }));
    expect(error).toBeInstanceOf(CryptoError);
    expect(error.message).toContain(modern.getFingerprint().toUpperCase());
    expect(error.message).toContain('SEIPD v2');
    expect((error as CryptoError).hint).toContain('aead: true');
  });

  it('rejects v6 key without aead', async () => {
    const v6 = await makeV6Key('v6', false);
    const error = await rejection(checkRecipients([alice.publicKey, v6], { aead: false }));
    expect(error).toBeInstanceOf(CryptoError);
    expect(error.message).toContain(v6.getFingerprint().toUpperCase());
    expect(error.message).toContain('v6 key');
  });

  it('accepts SEIPD v2 keys with aead', async () => {
    const suite = await checkRecipients([await makeAeadV4Key('m1'), await makeV6Key('m2', true)], { aead: true });
    expect(suite.seipdVersion).toBe(2);
    expect(suite.symmetric).toBe('aes256');
    expect(suite.aead).toBe('gcm');
  });

  it('rejects aead with v1-only recipient', async () => {
    const modern = await makeAeadV4Key('m3');
    const error = await rejection(checkRecipients([modern, alice.publicKey], { aead: true }));
    expect(error).toBeInstanceOf(CryptoError);
    expect(error.message).toContain(alice.armored.fingerprint);
    expect(error.message).not.toContain(modern.getFingerprint().toUpperCase());
  });

  it('rejects empty recipient list', async () => {
    const error = await rejection(checkRecipients([], { aead: false }));
    expect(error).toBeInstanceOf(CryptoError);
  });
});
