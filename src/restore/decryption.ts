/**
 * The two ways a restore decrypts segments. With `key` (the default) it reads
 * the admin secret key file, asking for its passphrase only when the key is
 * protected.
 * With `gpg` it never reads a secret key: gpg-agent decrypts the session key
 * of each segment (so the admin key may live on a smartcard), and the tool
 * decrypts and verifies the segment with that session key.
 */
import type { PrivateKey } from 'openpgp';

import type { Config } from '../config/load.js';
import { requireSetting } from '../config/load.js';
import { gpgSecretKeyFingerprints, keyInfo, readSecretKeyFile, readSessionKeyWithGpg, type PassphraseSource, type SessionKey } from '../crypto/index.js';

export type DecryptWith = 'key' | 'gpg';

export interface Decryption {
  /** Fingerprints of the admin keys at hand; a manifest must list one of them as a recipient. */
  adminFingerprints: string[];
  /** Keys for SegmentDecryptor; empty with gpg. */
  decryptionKeys: PrivateKey[];
  /** Returns the session key of a segment; set only with gpg. */
  sessionKeyFor?: (ciphertext: Uint8Array, objectName: string) => Promise<SessionKey>;
}

export interface DecryptionOptions {
  decryptWith: DecryptWith;
  /** An already unlocked admin key; otherwise the configured key file is read. */
  adminKey?: PrivateKey;
  /** Passphrase of a protected admin key file. */
  passphrase?: PassphraseSource;
  signal: AbortSignal;
}

export async function prepareDecryption(config: Config, options: DecryptionOptions): Promise<Decryption> {
  if (options.decryptWith === 'key') {
    const adminKey = options.adminKey ?? (await readSecretKeyFile(requireSetting(config.adminKey, 'adminKey', config, 'restore'), options.passphrase));
    return { adminFingerprints: [keyInfo(adminKey).fingerprint], decryptionKeys: [adminKey] };
  }

  const gpg = { gpgHome: config.gpgHome, signal: options.signal };
  return {
    adminFingerprints: await gpgSecretKeyFingerprints(gpg),
    decryptionKeys: [],
    sessionKeyFor: (ciphertext, objectName) => readSessionKeyWithGpg(ciphertext, objectName, gpg),
  };
}
