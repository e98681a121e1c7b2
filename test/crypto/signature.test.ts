import { beforeAll, describe, expect, it } from 'vitest';

import { signDetached, verifyDetached } from '../../src/crypto/index.js';
import { VerificationError } from '../../src/errors.js';
import { available } from '../support/components.js';
import { flipBit, GnupgHome, makeHostKey, type TestKey } from './fixtures.js';

const manifest = new TextEncoder().encode('{"version":1,"segments":[{"name":"segment-000000"}]}\n');

let host: TestKey;
let stranger: TestKey;

beforeAll(async () => {
  host = await makeHostKey();
  stranger = await makeHostKey('stranger.example');
});

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the promise to reject');
}

describe('verifyDetached', () => {
  it('accepts signature by pinned key', async () => {
    const signature = await signDetached(manifest, host.privateKey);
    const result = await verifyDetached(manifest, signature, [stranger.publicKey, host.publicKey], 'manifest.json');
    expect(result.signerFingerprint).toBe(host.armored.fingerprint);
  });

  it('rejects signature by unpinned key', async () => {
    const signature = await signDetached(manifest, stranger.privateKey);
    const error = await rejection(verifyDetached(manifest, signature, [host.publicKey], 'manifest.json'));
    expect(error).toBeInstanceOf(VerificationError);
    expect((error as VerificationError).check).toBe('manifest-signature');
    expect((error as VerificationError).object).toBe('manifest.json');
  });

  it('rejects modified data', async () => {
    const signature = await signDetached(manifest, host.privateKey);
    const error = await rejection(verifyDetached(flipBit(manifest, 10), signature, [host.publicKey], 'manifest.json'));
    expect(error).toBeInstanceOf(VerificationError);
    expect(error.message).toContain('invalid');
  });

  it('rejects garbled armor', async () => {
    const error = await rejection(verifyDetached(manifest, '-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n', [host.publicKey], 'manifest.json'));
    expect(error).toBeInstanceOf(VerificationError);
    expect((error as VerificationError).check).toBe('manifest-signature');
  });

  it('rejects empty signature text', async () => {
    const error = await rejection(verifyDetached(manifest, '', [host.publicKey], 'manifest.json'));
    expect(error).toBeInstanceOf(VerificationError);
  });
});

describe.skipIf(!available('gpg'))('signDetached read by gpg', () => {
  it('gpg verify accepts manifest signature', async () => {
    const gnupg = new GnupgHome();
    gnupg.importKey(host.armored.publicKey);
    const data = gnupg.writeFile('manifest.json', manifest);
    const signature = gnupg.writeFile('manifest.json.asc', await signDetached(manifest, host.privateKey));

    const result = gnupg.gpg(['--status-fd', '2', '--verify', signature, data]);
    gnupg.remove();

    expect(result.status).toBe(0);
    expect(result.stderr).toContain('[GNUPG:] GOODSIG');
    expect(result.stderr).toMatch(new RegExp(`\\[GNUPG:\\] VALIDSIG ${host.armored.fingerprint} `));
  });

  it('verifyDetached accepts gpg signature', async () => {
    const gnupg = new GnupgHome();
    gnupg.importKey(host.armored.privateKey);
    const data = gnupg.writeFile('manifest.json', manifest);
    const made = gnupg.gpg(['--armor', '--local-user', host.armored.fingerprint, '--output', '-', '--detach-sign', data]);
    gnupg.remove();

    expect(made.status, made.stderr).toBe(0);
    const result = await verifyDetached(manifest, made.stdout.toString('utf8'), [host.publicKey], 'manifest.json');
    expect(result.signerFingerprint).toBe(host.armored.fingerprint);
  });
});
