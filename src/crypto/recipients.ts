/** Reading the recipient key IDs of an encrypted message without decrypting it. */
import type { ReadableStream } from 'node:stream/web';

import * as openpgp from 'openpgp';

import { CryptoError } from '../errors.js';

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
