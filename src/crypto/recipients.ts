/** The recipients of an encrypted message: reading their key IDs without decrypting, and matching them with the keys at hand. */
import type { ReadableStream } from 'node:stream/web';

import * as openpgp from 'openpgp';

import { CryptoError } from '../errors.js';
import { findKeyByKeyId } from './keys.js';

/** Key ID of an anonymous recipient, which any secret key may try to open. */
const WILDCARD_KEY_ID = '0000000000000000';

/** Parses a binary OpenPGP message, naming the object when it is not one. */
export async function readBinaryMessage<T extends Uint8Array | ReadableStream<Uint8Array>>(ciphertext: T, objectName: string): Promise<openpgp.Message<T>> {
  try {
    return await openpgp.readMessage({ binaryMessage: ciphertext });
  } catch (error) {
    throw new CryptoError(`${objectName} is not a valid binary OpenPGP message: ${(error as Error).message}`, {
      cause: error,
      hint: 'check that the object was written by hvbackup and not truncated; its SHA-256 should match the manifest',
    });
  }
}

/** Returns the key IDs of the PKESK packets, as 16 uppercase hex digits each. */
export function recipientKeyIds(message: openpgp.Message<Uint8Array | ReadableStream<Uint8Array>>): string[] {
  return message.getEncryptionKeyIDs().map((keyId) => keyId.toHex().toUpperCase());
}

/**
 * Returns the key IDs that a binary message is encrypted to, from its PKESK
 * packets, for diagnostics such as "which admin key opens this backup".
 * An anonymous recipient ("hidden recipient", gpg -R) appears as
 * 0000000000000000.
 */
export async function encryptionRecipients(ciphertext: Uint8Array): Promise<string[]> {
  return recipientKeyIds(await readBinaryMessage(ciphertext, 'message'));
}

/**
 * Raises a CryptoError that lists the message's recipients and the given keys
 * when no PKESK packet of `message` is for one of `decryptionKeys`.
 */
export function requireMatchingDecryptionKey(message: openpgp.Message<Uint8Array | ReadableStream<Uint8Array>>, objectName: string, decryptionKeys: openpgp.PrivateKey[]): void {
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
