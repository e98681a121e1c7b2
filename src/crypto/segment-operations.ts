/**
 * Encryption and decryption of one whole segment with parsed keys. Worker
 * threads run these functions, and so does the in-process mode (workers: 0).
 * Callers pass and get whole Uint8Arrays. Inside, openpgp.js works on 1 MiB
 * slices to keep its copies small, and decryption returns nothing before the
 * whole message was authenticated.
 */
import { createHash, type Hash } from 'node:crypto';
import { ReadableStream } from 'node:stream/web';

import * as openpgp from 'openpgp';

import { CryptoError } from '../errors.js';
import { encryptionConfig } from './algorithms.js';
import type { SessionKey } from './gpg-session-key.js';
import { findKeyByKeyId } from './keys.js';
import { readBinaryMessage, recipientKeyIds } from './recipients.js';
import { requireTrustedSignatures, type SignatureResult } from './signers.js';
import { collectYoungGarbage } from './young-garbage.js';

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

/** A signed and encrypted segment, with the SHA-256 of its bytes as the manifest records it. */
export interface EncryptedSegment {
  ciphertext: Uint8Array;
  sha256: string;
  /** The plaintext buffer, handed back for reuse; after a move to a worker and back it is a new view of the same memory. */
  plaintext: Uint8Array;
}

/**
 * openpgp.js gets its input in slices of this size. Given a whole segment at
 * once, it keeps about seven copies of it while it works. Given slices, it
 * keeps only a few slices (bench/notes.md has the measurements).
 */
const SLICE_BYTES = 1024 * 1024;

/** Room for packet headers, signatures and PKESK packets beyond the plaintext; more is grown on demand. */
export const CIPHERTEXT_SLACK_BYTES = 64 * 1024;

/** Output bytes between two young-generation collections; see young-garbage.ts. */
const COLLECT_EVERY_BYTES = 2 * 1024 * 1024;

/**
 * Signs (one-pass signature inside) and encrypts one segment into a binary
 * OpenPGP message that "gpg -d" reads, and hashes the result on the way.
 * Recipients must have passed checkRecipients with the same `aead` value.
 * The ciphertext is written into `output` when it is large enough, else into
 * a new buffer. Streaming is safe here: only decryption must never release
 * bytes early.
 */
export async function encryptSegment(plaintext: Uint8Array, keys: EncryptKeys, output?: Uint8Array): Promise<EncryptedSegment> {
  try {
    const message = await openpgp.createMessage({ binary: sliced(plaintext), format: 'binary' });
    const encrypted = await openpgp.encrypt({
      message,
      encryptionKeys: keys.recipients,
      signingKeys: keys.signingKey,
      format: 'binary',
      config: encryptionConfig(keys.aead),
    });
    const hash = createHash('sha256');
    const ciphertext = await collectStream(encrypted, output ?? new Uint8Array(plaintext.byteLength + CIPHERTEXT_SLACK_BYTES), hash);
    return { ciphertext, sha256: hash.digest('hex'), plaintext };
  } catch (error) {
    throw new CryptoError(`encrypting a segment of ${plaintext.byteLength} bytes failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * Reads a stream into `buffer`, from its start, updating `hash` when given.
 * A stream that does not fit moves to a new buffer twice as large. Returns
 * the filled part.
 */
async function collectStream(stream: ReadableStream<Uint8Array>, buffer: Uint8Array, hash?: Hash): Promise<Uint8Array> {
  let length = 0;
  let sinceCollection = 0;

  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;

    if (length + value.byteLength > buffer.byteLength) {
      const grown = new Uint8Array(Math.max(2 * buffer.byteLength, length + value.byteLength));
      grown.set(buffer.subarray(0, length));
      buffer = grown;
    }
    buffer.set(value, length);
    length += value.byteLength;
    hash?.update(value);

    sinceCollection += value.byteLength;
    if (sinceCollection >= COLLECT_EVERY_BYTES) {
      sinceCollection = 0;
      collectYoungGarbage();
    }
  }

  return buffer.subarray(0, length);
}

/** Offers `bytes` to openpgp.js in slices; the slices are views, not copies. */
function sliced(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (let offset = 0; offset < bytes.byteLength; offset += SLICE_BYTES) {
        controller.enqueue(bytes.subarray(offset, offset + SLICE_BYTES));
      }
      controller.close();
    },
  });
}

/**
 * Decrypts one segment and checks its inner signature against
 * `verificationKeys`. With `sessionKey` the segment is opened with it and
 * the secret keys are not used. The plaintext goes into `output` when it is
 * large enough.
 *
 * openpgp.js decrypts the segment slice by slice, which keeps its copies
 * small. Allowing it an unauthenticated stream is safe here because nothing
 * leaves this function before the whole message was read, its integrity
 * check (MDC or AEAD tags) passed and the signature was verified. The caller
 * must have checked the ciphertext's SHA-256 against the signed manifest
 * before, so that a damaged object fails there with a clear message.
 */
export async function decryptSegment(
  ciphertext: Uint8Array,
  objectName: string,
  keys: DecryptKeys,
  sessionKey?: SessionKey,
  output?: Uint8Array,
): Promise<DecryptedSegment> {
  const message = await readBinaryMessage(sliced(ciphertext), objectName);
  if (sessionKey === undefined) requireMatchingDecryptionKey(message, objectName, keys.decryptionKeys);

  let plaintext: Uint8Array;
  let signatures: SignatureResult[];
  try {
    const result = await decryptStream(message, keys, sessionKey);
    plaintext = await collectStream(result.data, output ?? new Uint8Array(ciphertext.byteLength));
    signatures = result.signatures;
  } catch (error) {
    throw new CryptoError(`decrypting ${objectName} failed: ${(error as Error).message}`, {
      cause: error,
      hint: 'the object is damaged or was modified; compare its SHA-256 with the manifest and restore from another copy',
    });
  }

  const { signerFingerprint } = await requireTrustedSignatures(signatures, keys.verificationKeys, SEGMENT_SIGNATURE_CHECK, objectName);
  return { plaintext, signerFingerprint };
}

async function decryptStream(message: openpgp.Message<ReadableStream<Uint8Array>>, keys: DecryptKeys, sessionKey: SessionKey | undefined) {
  const config = { allowUnauthenticatedStream: true };
  if (sessionKey !== undefined) {
    return openpgp.decrypt({ message, sessionKeys: sessionKey, verificationKeys: keys.verificationKeys, format: 'binary', config });
  }
  return openpgp.decrypt({
    message,
    decryptionKeys: keys.decryptionKeys,
    verificationKeys: keys.verificationKeys,
    format: 'binary',
    config,
  });
}

function requireMatchingDecryptionKey(message: openpgp.Message<ReadableStream<Uint8Array>>, objectName: string, decryptionKeys: openpgp.PrivateKey[]): void {
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
