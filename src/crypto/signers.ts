/**
 * Checks the signatures that openpgp.js reports for a message or a detached
 * signature against the pinned keys.
 */
import * as openpgp from 'openpgp';

import { VerificationError } from '../errors.js';
import { findKeyByKeyId } from './keys.js';

/** One entry of the `signatures` array that openpgp.decrypt and openpgp.verify return. */
export interface SignatureResult {
  keyID: openpgp.KeyID;
  verified: Promise<unknown>;
}

/**
 * Requires at least one signature, and that every signature is valid and made
 * by one of `trustedKeys`. Returns the primary fingerprint of the signer.
 * Raises VerificationError(`check`, `objectName`, reason) otherwise.
 */
export async function requireTrustedSignatures(
  signatures: SignatureResult[],
  trustedKeys: openpgp.PublicKey[],
  check: string,
  objectName: string,
): Promise<{ signerFingerprint: string }> {
  // Settle every result first: openpgp.js rejects `verified` for each bad
  // signature, and an unobserved rejection would crash the process.
  const outcomes = await Promise.allSettled(signatures.map((signature) => signature.verified));

  if (signatures.length === 0) {
    throw new VerificationError(check, objectName, 'no signature found; the data may have been replaced by someone without the host key');
  }

  let signerFingerprint = '';
  for (const [index, signature] of signatures.entries()) {
    const keyId = signature.keyID.toHex().toUpperCase();
    const signer = findKeyByKeyId(trustedKeys, signature.keyID);
    if (!signer) {
      throw new VerificationError(check, objectName, `signed by key ID ${keyId}, which is not one of the trusted host keys`, {
        hint: 'if this host key is genuine, add its public key to the trusted host keys; otherwise treat the backup as forged',
      });
    }

    const outcome = outcomes[index];
    if (outcome.status === 'rejected') {
      const reason = outcome.reason instanceof Error ? outcome.reason.message : String(outcome.reason);
      throw new VerificationError(check, objectName, `signature by ${signer.getFingerprint().toUpperCase()} is invalid: ${reason}`, {
        cause: outcome.reason,
        hint: 'the data or the signature was modified after signing; do not trust this object',
      });
    }

    signerFingerprint ||= signer.getFingerprint().toUpperCase();
  }

  return { signerFingerprint };
}
