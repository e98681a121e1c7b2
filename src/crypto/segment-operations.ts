/**
 * Encryption and decryption of one whole segment with parsed keys. Worker
 * threads run these functions, and so does the in-process mode (workers: 0).
 * Callers pass and get whole Uint8Arrays, and decryption returns nothing
 * before the whole message was authenticated.
 *
 * For SEIPD v1 with AES, the symmetric layer is the project's own:
 * seipd-writer.ts encrypts, and seipd-segment.ts decrypts in place. openpgp.js
 * still handles session keys and signatures there, and every other message
 * form (SEIPD v2 among them) in 1 MiB slices. docs/crypto.md gives the reasons.
 */
import { createHash } from 'node:crypto';
import type { ReadableStream } from 'node:stream/web';

import * as openpgp from 'openpgp';

import { CryptoError } from '../errors.js';
import { encryptionConfig } from './algorithms.js';
import type { SessionKey } from './gpg-session-key.js';
import { longPacketHeader, PacketTag } from './packet-frames.js';
import { readBinaryMessage, requireMatchingDecryptionKey } from './recipients.js';
import { openSeipdSegmentInPlace, planInPlaceDecryption } from './seipd-segment.js';
import { copyWithRoom, hasRoomToSeal, newSessionKey, sealSeipdV1InPlace } from './seipd-writer.js';
import { requireTrustedSignatures, type SignatureResult } from './signers.js';
import { collectStream, forEachChunk, sliced } from './slices.js';

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

/** A signed and encrypted segment, with the SHA-256 of its bytes as the manifest records it. */
export interface EncryptedSegment {
  ciphertext: Uint8Array;
  sha256: string;
  /**
   * The segment buffer that the plaintext came in, handed back for reuse.
   * After SEIPD v1 encryption in place it contains the ciphertext. After a
   * move to a worker and back it is a new view of the same memory.
   */
  buffer: Uint8Array;
}

/** Room for packet headers, signatures and PKESK packets beyond the plaintext, for SEIPD v2 output. */
const AEAD_SLACK_BYTES = 64 * 1024;

/** The hint of every error about a segment that does not decrypt. */
const DAMAGED_SEGMENT_HINT = 'the object is damaged or was modified; compare its SHA-256 with the manifest and restore from another copy';

/** The part of OnePassSignaturePacket that openpgp.js's type declarations leave out. */
interface OnePassSignatureFactory {
  fromSignaturePacket(signature: openpgp.SignaturePacket, isLast: boolean): { write(): Uint8Array };
}

/**
 * Signs (one-pass signature inside) and encrypts one segment into a binary
 * OpenPGP message that "gpg -d" reads, and hashes the result. Recipients
 * must have passed checkRecipients with the same `aead` value, so a SEIPD
 * v1 message uses AES-256.
 *
 * SEIPD v1 is written in place when the plaintext's ArrayBuffer has room
 * around it (SEGMENT_HEADROOM_BYTES before, SEGMENT_TAILROOM_BYTES after),
 * so the caller must own that whole buffer and give it up. Without room the
 * plaintext is first copied into a buffer with room.
 */
export async function encryptSegment(plaintext: Uint8Array, keys: EncryptKeys): Promise<EncryptedSegment> {
  try {
    if (keys.aead) {
      const { ciphertext, sha256 } = await encryptWithOpenpgp(plaintext, keys);
      return { ciphertext, sha256, buffer: plaintext };
    }
    return await encryptSeipdV1(plaintext, keys);
  } catch (error) {
    throw new CryptoError(`encrypting a segment of ${plaintext.byteLength} bytes failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** Encrypts as SEIPD v1: openpgp.js signs and encrypts the session key, and seipd-writer.ts lays out and encrypts the message. */
async function encryptSeipdV1(plaintext: Uint8Array, keys: EncryptKeys): Promise<EncryptedSegment> {
  const config = encryptionConfig(false);
  const sessionKey = newSessionKey();
  const pkeskPackets = await openpgp.encryptSessionKey({ data: sessionKey, algorithm: 'aes256', encryptionKeys: keys.recipients, format: 'binary', config });

  // A binary signature covers the content alone, not the literal packet's
  // name or date, so a detached signature is the one the message carries.
  // The signature's hashes read a clone of the literal data, which gets
  // slices only while the literal data itself is read. Draining it here,
  // instead of letting sign() collect the whole message, saves a
  // segment-sized copy.
  const message = await openpgp.createMessage({ binary: sliced(plaintext), format: 'binary' });
  const detached = await openpgp.sign({ message, signingKeys: keys.signingKey, detached: true, format: 'object', config });
  await forEachChunk(message.getLiteralData() as ReadableStream<Uint8Array>, () => undefined);
  const written = detached.write();
  const signatures = written instanceof Uint8Array ? written : await collectStream(written as ReadableStream<Uint8Array>, new Uint8Array(1024));
  const onePassSignatures = onePassSignaturesFor(detached.packets as unknown as openpgp.SignaturePacket[]);

  const parts = { pkeskPackets, onePassSignatures, signatures, sessionKey, date: Math.floor(Date.now() / 1000) };
  const room = hasRoomToSeal(plaintext, parts) ? plaintext : copyWithRoom(plaintext);
  const { ciphertext, sha256 } = sealSeipdV1InPlace(room, parts);
  return { ciphertext, sha256, buffer: room };
}

/**
 * Returns the one-pass signature packets, headers included, for signature
 * packets in message order: the first signature's one-pass packet comes
 * last and is the one marked as last.
 */
function onePassSignaturesFor(signatures: openpgp.SignaturePacket[]): Uint8Array {
  const factory = openpgp.OnePassSignaturePacket as unknown as OnePassSignatureFactory;
  const packets = signatures.map((signature, index) => withLongHeader(PacketTag.onePassSignature, factory.fromSignaturePacket(signature, index === 0).write())).reverse();
  return Buffer.concat(packets);
}

function withLongHeader(tag: number, body: Uint8Array): Uint8Array {
  return Buffer.concat([longPacketHeader(tag, body.byteLength), body]);
}

/** Encrypts as SEIPD v2 (AEAD), all of it in openpgp.js, into a new buffer. */
async function encryptWithOpenpgp(plaintext: Uint8Array, keys: EncryptKeys): Promise<{ ciphertext: Uint8Array; sha256: string }> {
  const message = await openpgp.createMessage({ binary: sliced(plaintext), format: 'binary' });
  const encrypted = await openpgp.encrypt({
    message,
    encryptionKeys: keys.recipients,
    signingKeys: keys.signingKey,
    format: 'binary',
    config: encryptionConfig(true),
  });
  const hash = createHash('sha256');
  const ciphertext = await collectStream(encrypted, new Uint8Array(plaintext.byteLength + AEAD_SLACK_BYTES), hash);
  return { ciphertext, sha256: hash.digest('hex') };
}

/**
 * Decrypts one segment and checks its inner signature against
 * `verificationKeys`. With `sessionKey` the segment is opened with it and
 * the secret keys are not used. The plaintext goes into `output` when it is
 * large enough.
 *
 * `ciphertext` is consumed: a SEIPD v1 segment is decrypted in place, so the
 * caller must own the buffer and not read it afterwards. The caller must
 * have checked its SHA-256 against the signed manifest before, so that a
 * damaged object fails there with a clear message.
 */
export async function decryptSegment(
  ciphertext: Uint8Array,
  objectName: string,
  keys: DecryptKeys,
  sessionKey?: SessionKey,
  output?: Uint8Array,
): Promise<DecryptedSegment> {
  const plan = await planInPlaceDecryption(ciphertext, objectName, keys, sessionKey);
  let signed: { plaintext: Uint8Array; signatures: SignatureResult[] };
  try {
    signed = plan === undefined ? await decryptWithOpenpgp(ciphertext, objectName, keys, sessionKey, output) : await openSeipdSegmentInPlace(ciphertext, plan, keys, output);
  } catch (error) {
    if (error instanceof CryptoError) throw error;
    throw new CryptoError(`decrypting ${objectName} failed: ${(error as Error).message}`, { cause: error, hint: DAMAGED_SEGMENT_HINT });
  }

  const { signerFingerprint } = await requireTrustedSignatures(signed.signatures, keys.verificationKeys, SEGMENT_SIGNATURE_CHECK, objectName);
  return { plaintext: signed.plaintext, signerFingerprint };
}

/**
 * Decrypts with openpgp.js, the general path, slice by slice, which keeps
 * its copies small. Allowing it an unauthenticated stream is safe here
 * because nothing leaves decryptSegment before the whole message was read,
 * its integrity check (MDC or AEAD tags) passed and the signature was
 * verified.
 */
async function decryptWithOpenpgp(
  ciphertext: Uint8Array,
  objectName: string,
  keys: DecryptKeys,
  sessionKey: SessionKey | undefined,
  output: Uint8Array | undefined,
): Promise<{ plaintext: Uint8Array; signatures: SignatureResult[] }> {
  const message = await readBinaryMessage(sliced(ciphertext), objectName);
  if (sessionKey === undefined) requireMatchingDecryptionKey(message, objectName, keys.decryptionKeys);

  const result = await decryptStream(message, keys, sessionKey);
  const plaintext = await collectStream(result.data, output ?? new Uint8Array(ciphertext.byteLength));
  return { plaintext, signatures: result.signatures };
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
