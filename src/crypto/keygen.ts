/**
 * Key generation for hosts and admins. Both are v4 keys with a legacy
 * Ed25519 primary key (certify and sign) and a Cv25519 encryption subkey,
 * because GnuPG 2.2, Sequoia sqop 0.27 and current OpenPGP smartcards read
 * those, while none of them reads v6 keys.
 */
import * as openpgp from 'openpgp';

import { UsageError } from '../errors.js';

/** An armored key pair and the primary fingerprint (uppercase hex). */
export interface GeneratedKey {
  publicKey: string;
  privateKey: string;
  fingerprint: string;
}

interface KeyOptions {
  name: string;
  email?: string;
  passphrase?: string;
}

async function generateV4Key(options: KeyOptions): Promise<GeneratedKey> {
  const name = options.name.trim();
  if (name === '') {
    throw new UsageError('key name is empty', { hint: 'give a name such as the host name or the admin\'s full name' });
  }

  const userId: openpgp.UserID = options.email ? { name, email: options.email } : { name };
  const generated = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [userId],
    passphrase: options.passphrase,
    format: 'armored',
    // aeadProtect false keeps the SEIPD v2 feature flag off, so that
    // everyone encrypting to this key produces SEIPD v1, which GnuPG 2.2 reads.
    config: { v6Keys: false, aeadProtect: false },
  });

  const parsed = await openpgp.readKey({ armoredKey: generated.publicKey });
  return {
    publicKey: generated.publicKey,
    privateKey: generated.privateKey,
    fingerprint: parsed.getFingerprint().toUpperCase(),
  };
}

/**
 * Generates the host's signing key. It has no passphrase, because backups run
 * unattended, so its file must be readable by root only.
 */
export async function generateHostKey(options: { name: string; email?: string }): Promise<GeneratedKey> {
  return generateV4Key({ name: options.name, email: options.email });
}

/**
 * Generates an admin key that backups are encrypted to. With a passphrase the
 * secret key is protected by openpgp.js's default iterated and salted S2K,
 * which GnuPG 2.2 imports.
 */
export async function generateAdminKey(options: { name: string; email?: string; passphrase?: string }): Promise<GeneratedKey> {
  return generateV4Key(options);
}
