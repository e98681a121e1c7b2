/**
 * Encryption and decryption of one whole segment with parsed keys. Worker
 * threads run these functions, and so does the in-process mode (workers: 0).
 * Inputs are whole Uint8Arrays and never streams, because openpgp.js would
 * release unauthenticated SEIPD v1 plaintext from a stream.
 */
import * as openpgp from 'openpgp';

import { CryptoError } from '../errors.js';
import { encryptionConfig } from './algorithms.js';
import type { SessionKey } from './gpg-session-key.js';
import { findKeyByKeyId } from './keys.js';
import { readBinaryMessage, recipientKeyIds } from './recipients.js';
import { requireTrustedSignatures } from './signers.js';

export interface EncryptKeys {
  recipients: openpgp.PublicKey[];
  signingKey: openpgp.PrivateKey;
  aead: boolean;
}

/**
 * Keys for decryption. `decryptionKeys` is empty when every segment comes
 * with its own session key (from "gpg --show-session-key").
 */
export interface DecryptKeys {
  decryptionKeys: openpgp.PrivateKey[];
  verificationKeys: openpgp.PublicKey[];
}

export interface DecryptedSegment {
  plaintext: Uint8Array;
  signerFingerprint: string;
}

/** Name of the check that VerificationError carries for a segment signature. */
export const SEGMENT_SIGNATURE_CHECK = 'segment-signature';

/** Key ID of an anonymous recipient, which any secret key may try to open. */
const WILDCARD_KEY_ID = '0000000000000000';

/**
 * Signs (one-pass signature inside) and encrypts one segment into a binary
 * OpenPGP message that "gpg -d" reads. Recipients must have passed
 * checkRecipients with the same `aead` value.
 */
export async function encryptSegment(plaintext: Uint8Array, keys: EncryptKeys): Promise<Uint8Array> {
  const message = await openpgp.createMessage({ binary: plaintext, format: 'binary' });

  try {
    return await openpgp.encrypt({
      message,
      encryptionKeys: keys.recipients,
      signingKeys: keys.signingKey,
      format: 'binary',
      config: encryptionConfig(keys.aead),
    });
  } catch (error) {
    throw new CryptoError(`encrypting a segment of ${plaintext.byteLength} bytes failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * Decrypts one whole segment and checks its inner signature against
 * `verificationKeys`. With `sessionKey` the segment is opened with it and
 * the secret keys are not used. The caller must have checked the
 * ciphertext's SHA-256 against the signed manifest before, so that a damaged
 * object fails there with a clear message.
 */
export async function decryptSegment(ciphertext: Uint8Array, objectName: string, keys: DecryptKeys, sessionKey?: SessionKey): Promise<DecryptedSegment> {
  const message = await readBinaryMessage(ciphertext, objectName);
  if (sessionKey === undefined) requireMatchingDecryptionKey(message, objectName, keys.decryptionKeys);

  let result: Awaited<ReturnType<typeof decryptBinary>>;
  try {
    result = await decryptBinary(message, keys, sessionKey);
  } catch (error) {
    throw new CryptoError(`decrypting ${objectName} failed: ${(error as Error).message}`, {
      cause: error,
      hint: 'the object is damaged or was modified; compare its SHA-256 with the manifest and restore from another copy',
    });
  }

  const { signerFingerprint } = await requireTrustedSignatures(result.signatures, keys.verificationKeys, SEGMENT_SIGNATURE_CHECK, objectName);
  return { plaintext: result.data, signerFingerprint };
}

async function decryptBinary(message: openpgp.Message<Uint8Array>, keys: DecryptKeys, sessionKey: SessionKey | undefined) {
  if (sessionKey !== undefined) {
    return openpgp.decrypt({ message, sessionKeys: sessionKey, verificationKeys: keys.verificationKeys, format: 'binary' });
  }
  return openpgp.decrypt({
    message,
    decryptionKeys: keys.decryptionKeys,
    verificationKeys: keys.verificationKeys,
    format: 'binary',
  });
}

function requireMatchingDecryptionKey(message: openpgp.Message<Uint8Array>, objectName: string, decryptionKeys: openpgp.PrivateKey[]): void {
  const encryptionKeyIds = message.getEncryptionKeyIDs();
  const matches = encryptionKeyIds.some((keyId) => keyId.toHex() === WILDCARD_KEY_ID || findKeyByKeyId(decryptionKeys, keyId) !== undefined);
  if (matches) return;

  const recipients = recipientKeyIds(message);
  const available = decryptionKeys.map((key) => key.getFingerprint().toUpperCase());
  throw new CryptoError(
    `${objectName} is not encrypted to any of your keys (recipients: ${recipients.join(', ') || 'none'}; your keys: ${available.join(', ') || 'none'})`,
    { hint: 'use the admin secret key whose encryption subkey has one of the listed key IDs ("gpg --list-keys --keyid-format long")' },
  );
}
