/**
 * Choice and check of the encryption algorithms. openpgp.js 6 picks the
 * encrypted-data packet from the recipients' key features, not from
 * `config.aeadProtect`: it writes SEIPD v2 only when every recipient
 * advertises it, and otherwise SEIPD v1 (CFB with MDC). GnuPG 2.2 and
 * Debian 12's sqop 0.27 read only SEIPD v1, so that is the default and
 * anything else is rejected at start-up, before any data is encrypted.
 */
import { randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';

import { CryptoError } from '../errors.js';

/** Cipher suite that openpgp.js selects for a set of recipients. */
export interface CipherSuite {
  seipdVersion: 1 | 2;
  symmetric: string;
  /** AEAD mode, present only for SEIPD v2. */
  aead?: string;
}

/** Fields of openpgp.js packets that its type declarations keep private. */
interface EncryptedDataPacketFields {
  version: number;
  cipherAlgorithm: number | null;
  aeadAlgorithm: number | null;
}

interface SelfSignatureFields {
  features: Uint8Array | null;
  preferredSymmetricAlgorithms: number[] | null;
  preferredCipherSuites?: number[][] | null;
}

const SEIPD_V2_FEATURE = 0x08;

/**
 * Returns the openpgp.js configuration used for every encryption. With `aead`
 * the preferred mode is GCM, because openpgp.js runs GCM on Node's native
 * AES-GCM, while its OCB is pure JavaScript and about 100 times slower.
 */
export function encryptionConfig(aead: boolean): openpgp.PartialConfig {
  return {
    preferredSymmetricAlgorithm: openpgp.enums.symmetric.aes256,
    preferredAEADAlgorithm: openpgp.enums.aead.gcm,
    preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed,
    aeadProtect: aead,
  };
}

function fingerprintOf(key: openpgp.Key): string {
  return key.getFingerprint().toUpperCase();
}

/** Looks up the openpgp.js name of an algorithm id, such as 9 for "aes256". */
function enumName(table: Record<string, number>, value: number | null, kind: string): string {
  if (value === null) return `unknown ${kind}`;
  const entry = Object.entries(table).find(([, id]) => id === value);
  return entry ? entry[0] : `${kind} ${value}`;
}

function symmetricName(value: number | string | null): string {
  if (typeof value === 'string') return value;
  return enumName(openpgp.enums.symmetric as unknown as Record<string, number>, value, 'cipher');
}

function aeadName(value: number | null): string {
  return enumName(openpgp.enums.aead as unknown as Record<string, number>, value, 'AEAD mode');
}

async function selfSignatureOf(key: openpgp.PublicKey): Promise<SelfSignatureFields> {
  // getPrimarySelfSignature is public in openpgp.js 6 but missing from its type declarations.
  const withSelfSignature = key as unknown as { getPrimarySelfSignature(): Promise<unknown> };
  return (await withSelfSignature.getPrimarySelfSignature()) as SelfSignatureFields;
}

/** Encrypts one byte to the recipients and reads back what was selected. */
async function probeCipherSuite(recipients: openpgp.PublicKey[], aead: boolean): Promise<CipherSuite> {
  // A throwaway password adds an SKESK packet, so the session key algorithm,
  // hidden inside the PKESK packets for SEIPD v1, can be read back without a
  // recipient's secret key. Passwords do not influence the algorithm choice.
  const probePassword = randomBytes(24).toString('base64');
  const message = await openpgp.createMessage({ binary: new Uint8Array([0]) });
  const encrypted = await openpgp.encrypt({
    message,
    encryptionKeys: recipients,
    passwords: [probePassword],
    format: 'binary',
    // The password protects nothing, so the cheapest S2K iteration count does; the default costs about 30 ms.
    config: { ...encryptionConfig(aead), s2kIterationCountByte: 0 },
  });

  const parsed = await openpgp.readMessage({ binaryMessage: encrypted });
  const dataPacket = parsed.packets.findPacket(openpgp.enums.packet.symEncryptedIntegrityProtectedData);
  if (!dataPacket) {
    throw new CryptoError('probe encryption produced no SEIPD packet; this openpgp.js version is not supported');
  }

  const fields = dataPacket as unknown as EncryptedDataPacketFields;
  if (fields.version === 2) {
    return { seipdVersion: 2, symmetric: symmetricName(fields.cipherAlgorithm), aead: aeadName(fields.aeadAlgorithm) };
  }

  const [sessionKey] = await openpgp.decryptSessionKeys({ message: parsed, passwords: [probePassword] });
  return { seipdVersion: 1, symmetric: symmetricName(sessionKey.algorithm) };
}

async function requireEncryptionSubkey(key: openpgp.PublicKey): Promise<void> {
  try {
    await key.getEncryptionKey();
  } catch (error) {
    throw new CryptoError(`recipient key ${fingerprintOf(key)} has no valid encryption key: ${(error as Error).message}`, {
      cause: error,
      hint: 'check that the key is not expired or revoked and has an encryption subkey ("gpg --list-keys FINGERPRINT")',
    });
  }
}

/** Rejects v6 recipients, whose messages GnuPG 2.2 cannot decrypt. */
function requireV4Keys(recipients: openpgp.PublicKey[]): void {
  const modern = recipients.filter((key) => key.keyPacket.version !== 4);
  if (modern.length === 0) return;

  throw new CryptoError(`recipient key ${modern.map(fingerprintOf).join(', ')} is a v6 key, which GnuPG 2.2 cannot decrypt`, {
    hint: 'use a v4 key for this admin (hvbackup keygen makes one), or set "aead: true" in the repository settings if every reader supports RFC 9580',
  });
}

async function recipientsWithout(
  recipients: openpgp.PublicKey[],
  test: (signature: SelfSignatureFields) => boolean,
): Promise<string[]> {
  const lacking: string[] = [];
  for (const key of recipients) {
    if (!test(await selfSignatureOf(key))) lacking.push(fingerprintOf(key));
  }
  return lacking;
}

function advertisesSeipdV2(signature: SelfSignatureFields): boolean {
  return signature.features !== null && (signature.features[0] & SEIPD_V2_FEATURE) !== 0;
}

function prefersAes256(signature: SelfSignatureFields): boolean {
  return signature.preferredSymmetricAlgorithms?.includes(openpgp.enums.symmetric.aes256) ?? false;
}

function offersAes256Gcm(signature: SelfSignatureFields): boolean {
  return (signature.preferredCipherSuites ?? []).some(
    ([symmetric, aead]) => symmetric === openpgp.enums.symmetric.aes256 && aead === openpgp.enums.aead.gcm,
  );
}

/**
 * Checks which encryption openpgp.js will use for these recipients by
 * encrypting a one-byte probe message and reading its packets. Without `aead`
 * it requires v4 keys, SEIPD v1 and AES-256. With `aead` it requires SEIPD v2
 * with AES-256 and GCM, and never accepts OCB. Raises a CryptoError that names
 * the recipients at fault and the fix.
 */
export async function checkRecipients(recipients: openpgp.PublicKey[], options: { aead: boolean }): Promise<CipherSuite> {
  if (recipients.length === 0) {
    throw new CryptoError('no recipient keys given', { hint: 'add at least one admin public key to the repository settings' });
  }

  for (const key of recipients) await requireEncryptionSubkey(key);
  if (!options.aead) requireV4Keys(recipients);

  const suite = await probeCipherSuite(recipients, options.aead);

  if (!options.aead) {
    if (suite.seipdVersion !== 1) {
      const advertising = await recipientsWithout(recipients, (signature) => !advertisesSeipdV2(signature));
      throw new CryptoError(`recipient key ${advertising.join(', ')} advertises SEIPD v2, which GnuPG 2.2 and sqop 0.27 cannot decrypt`, {
        hint: 'remove the SEIPD v2 feature from these keys (GnuPG 2.4: "gpg --edit-key FINGERPRINT" then "setpref" without AEAD), or set "aead: true" in the repository settings',
      });
    }
  } else if (suite.seipdVersion !== 2) {
    const lacking = await recipientsWithout(recipients, advertisesSeipdV2);
    throw new CryptoError(`"aead: true" is set, but recipient key ${lacking.join(', ')} does not advertise SEIPD v2`, {
      hint: 'replace these keys with keys that support RFC 9580 AEAD, or remove "aead: true" from the repository settings',
    });
  } else if (suite.aead !== 'gcm') {
    const lacking = await recipientsWithout(recipients, offersAes256Gcm);
    throw new CryptoError(`"aead: true" needs AES-256 with GCM, but recipient key ${lacking.join(', ')} does not list it; openpgp.js would use ${suite.aead?.toUpperCase()}, which is too slow`, {
      hint: 'add AES-256/GCM to these keys\' preferred AEAD cipher suites, or remove "aead: true" from the repository settings',
    });
  }

  if (suite.symmetric !== 'aes256') {
    const lacking = await recipientsWithout(recipients, prefersAes256);
    throw new CryptoError(`recipient key ${lacking.join(', ')} does not list AES-256 among its preferred ciphers, so openpgp.js would use ${suite.symmetric.toUpperCase()}`, {
      hint: 'add AES256 to these keys\' preferences ("gpg --edit-key FINGERPRINT", then "setpref AES256 AES192 AES SHA512 SHA256 ZLIB ZIP Uncompressed" and "save") and export them again',
    });
  }

  return suite;
}
