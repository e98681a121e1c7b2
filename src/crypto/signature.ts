/** Detached signatures, used for manifest.json. */
import * as openpgp from 'openpgp';

import { CryptoError, VerificationError } from '../errors.js';
import { requireTrustedSignatures } from './signers.js';

const MANIFEST_SIGNATURE_CHECK = 'manifest-signature';

/**
 * Signs `data` as binary (signature type 0x00) and returns an armored
 * detached signature that "gpg --verify SIG DATA" accepts. A legacy Ed25519
 * key signs with SHA-512 whatever the configured hash, because openpgp.js 6
 * picks the curve's preferred hash for EdDSA.
 */
export async function signDetached(data: Uint8Array, signingKey: openpgp.PrivateKey): Promise<string> {
  const message = await openpgp.createMessage({ binary: data });
  try {
    return await openpgp.sign({ message, signingKeys: signingKey, detached: true, format: 'armored' });
  } catch (error) {
    throw new CryptoError(`signing with key ${signingKey.getFingerprint().toUpperCase()} failed: ${(error as Error).message}`, {
      cause: error,
      hint: 'check that the host key is unlocked, not expired and able to sign',
    });
  }
}

/**
 * Verifies an armored detached signature over `data` against the pinned
 * `trustedKeys` and returns the signer's primary fingerprint. Raises
 * VerificationError('manifest-signature', objectName, reason) when the
 * signature is missing, garbled, invalid or by another key.
 */
export async function verifyDetached(
  data: Uint8Array,
  armoredSignature: string,
  trustedKeys: openpgp.PublicKey[],
  objectName: string,
): Promise<{ signerFingerprint: string }> {
  let signature: openpgp.Signature;
  try {
    signature = await openpgp.readSignature({ armoredSignature });
  } catch (error) {
    throw new VerificationError(MANIFEST_SIGNATURE_CHECK, objectName, `the signature is not a valid armored OpenPGP signature: ${(error as Error).message}`, {
      cause: error,
      hint: 'the signature object is damaged or was replaced; do not trust this manifest',
    });
  }

  const message = await openpgp.createMessage({ binary: data });
  const result = await openpgp.verify({ message, signature, verificationKeys: trustedKeys, format: 'binary' });
  return requireTrustedSignatures(result.signatures, trustedKeys, MANIFEST_SIGNATURE_CHECK, objectName);
}
