/**
 * The fast path of segment decryption: a segment whose packets are PKESK
 * packets followed by one SEIPD v1 packet with AES is decrypted in place by
 * seipd-v1.ts. openpgp.js still opens the session key, parses the inner
 * packets and checks the signatures. Any other message form (SEIPD v2,
 * other ciphers, other packets, broken framing) is left to openpgp.js, which
 * reads it or explains what is wrong.
 */
import * as openpgp from 'openpgp';

import { CryptoError } from '../errors.js';
import type { SessionKey } from './gpg-session-key.js';
import { PacketTag, tryReadPacketFrames, type PacketFrame } from './packet-frames.js';
import { readBinaryMessage, requireMatchingDecryptionKey } from './recipients.js';
import type { DecryptKeys } from './segment-operations.js';
import { isSeipdCipher, openSeipdV1InPlace, type SeipdCipher } from './seipd-v1.js';
import type { SignatureResult } from './signers.js';
import { verifySignedLiteral } from './signed-literal.js';
import { collectStream, sliced } from './slices.js';

/** The input of the fast path: the encrypted data packet, its cipher and its session key. */
export interface InPlacePlan {
  encryptedData: PacketFrame;
  cipher: SeipdCipher;
  sessionKey: Uint8Array;
}

/**
 * Returns a plan when `ciphertext` has the form the fast path reads, and
 * undefined otherwise. Opens the session key with the admin keys unless
 * `sessionKey` is given. Raises CryptoError when no admin key is a recipient
 * or the session key does not open; `ciphertext` is not changed.
 */
export async function planInPlaceDecryption(
  ciphertext: Uint8Array,
  objectName: string,
  keys: DecryptKeys,
  sessionKey: SessionKey | undefined,
): Promise<InPlacePlan | undefined> {
  const encryptedData = findSeipdV1Packet(ciphertext);
  if (encryptedData === undefined) return undefined;

  const key = sessionKey ?? (await openSessionKey(ciphertext.subarray(0, encryptedData.start), objectName, keys));
  if (key === undefined || key.algorithm === null || !isSeipdCipher(key.algorithm)) return undefined;

  return { encryptedData, cipher: key.algorithm, sessionKey: key.data };
}

/**
 * Decrypts the planned segment in place and reads its inner packets with
 * openpgp.js. The signature results still have to be checked.
 */
export async function openSeipdSegmentInPlace(
  ciphertext: Uint8Array,
  plan: InPlacePlan,
  keys: DecryptKeys,
  output: Uint8Array | undefined,
): Promise<{ plaintext: Uint8Array; signatures: SignatureResult[] }> {
  const inner = openSeipdV1InPlace(ciphertext, plan.encryptedData.body, plan.cipher, plan.sessionKey);

  // The MDC has authenticated the packets. The signature check that follows
  // decides whether the host key made them.
  const packets = ciphertext.subarray(inner.start, inner.end);
  const signedLiteral = await verifySignedLiteral(packets, keys.verificationKeys);
  if (signedLiteral !== undefined) return { plaintext: signedLiteral.content, signatures: signedLiteral.signatures };

  const message = await openpgp.readMessage({ binaryMessage: sliced(packets) });
  const result = await openpgp.verify({ message, verificationKeys: keys.verificationKeys, format: 'binary' });
  const plaintext = await collectStream(result.data, output ?? new Uint8Array(packets.byteLength));
  return { plaintext, signatures: result.signatures };
}

/** Returns the SEIPD v1 packet when the message is PKESK packets followed by that packet alone. */
function findSeipdV1Packet(ciphertext: Uint8Array): PacketFrame | undefined {
  const frames = tryReadPacketFrames(ciphertext);
  if (frames === undefined) return undefined;

  const last = frames.at(-1);
  if (last === undefined || last.tag !== PacketTag.symEncryptedIntegrityProtectedData) return undefined;
  if (!frames.slice(0, -1).every((frame) => frame.tag === PacketTag.publicKeyEncryptedSessionKey)) return undefined;

  const version = last.bodyLength > 0 ? ciphertext[last.body[0].offset] : undefined;
  return version === 1 ? last : undefined;
}

/**
 * Opens the session key from the PKESK packets with the admin keys. Returns
 * undefined when they yield several different keys, which openpgp.js then
 * tries one by one on an intact copy.
 */
async function openSessionKey(pkeskPackets: Uint8Array, objectName: string, keys: DecryptKeys): Promise<{ data: Uint8Array; algorithm: string | null } | undefined> {
  const message = await readBinaryMessage(pkeskPackets, objectName);
  requireMatchingDecryptionKey(message, objectName, keys.decryptionKeys);

  let opened: openpgp.DecryptedSessionKey[];
  try {
    opened = await openpgp.decryptSessionKeys({ message, decryptionKeys: keys.decryptionKeys });
  } catch (error) {
    throw new CryptoError(`opening the session key of ${objectName} failed: ${(error as Error).message}`, {
      cause: error,
      hint: 'the PKESK packet for your key is damaged, or your secret key does not match its public key',
    });
  }

  return opened.length === 1 ? opened[0] : undefined;
}
