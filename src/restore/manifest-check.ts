/**
 * Loading a manifest the trusted way: fetch the manifest and its detached
 * signature, verify the signature against host keys whose fingerprints the
 * administrator pinned, and only then parse the JSON. Used by restore and
 * verify alike.
 */
import type { PublicKey } from 'openpgp';

import { keyMatchesFingerprint, readPublicKeyArmored, verifyDetached } from '../crypto/index.js';
import { NotFoundError, VerificationError, ConfigError } from '../errors.js';
import { manifestKey, publicKeyKey, signatureKey, type BackupRef } from '../manifest/layout.js';
import { decodeManifest, type Manifest } from '../manifest/schema.js';
import type { ObjectStore } from '../repository/store.js';

/**
 * Fetches keys/<fingerprint>.asc for every pinned fingerprint. A key whose own
 * fingerprint differs from the pinned one is ignored, so a substituted key
 * file in the repository cannot become trusted.
 */
export async function loadTrustedSigners(store: ObjectStore, fingerprints: string[]): Promise<PublicKey[]> {
  if (fingerprints.length === 0) {
    throw new ConfigError('no trusted signers configured: restore and verify need "trustedSigners"', {
      hint: 'add the host key fingerprint printed by `hvbackup keys create-host` to "trustedSigners" in the configuration',
    });
  }

  const keys: PublicKey[] = [];
  for (const fingerprint of fingerprints) {
    let armored: Buffer;
    try {
      armored = await store.get(publicKeyKey(fingerprint));
    } catch (error) {
      if (error instanceof NotFoundError) continue;
      throw error;
    }
    const key = await readPublicKeyArmored(armored.toString('utf8'), publicKeyKey(fingerprint));
    if (keyMatchesFingerprint(key, fingerprint)) keys.push(key);
  }
  return keys;
}

export interface TrustedManifest {
  manifest: Manifest;
  signerFingerprint: string;
}

export async function loadTrustedManifest(store: ObjectStore, ref: BackupRef, trustedKeys: PublicKey[]): Promise<TrustedManifest> {
  const manifestName = manifestKey(ref);
  const signatureName = signatureKey(ref);

  const bytes = await store.get(manifestName);
  let signature: Buffer;
  try {
    signature = await store.get(signatureName);
  } catch (error) {
    if (error instanceof NotFoundError) {
      throw new VerificationError('manifest-signature', signatureName, 'the detached signature is missing');
    }
    throw error;
  }

  if (trustedKeys.length === 0) {
    throw new VerificationError('manifest-signature', manifestName, 'none of the pinned host keys is published in the repository (keys/)', {
      hint: 'check "trustedSigners" against the host key fingerprint; the host publishes its key with its first backup',
    });
  }
  const { signerFingerprint } = await verifyDetached(bytes, signature.toString('utf8'), trustedKeys, manifestName);
  const manifest = decodeManifest(bytes, manifestName);

  // The signature covers the bytes; these checks bind them to where they were found.
  if (manifest.backupId !== ref.backupId || manifest.host !== ref.host || manifest.domain.name !== ref.domain) {
    throw new VerificationError(
      'manifest-location',
      manifestName,
      `manifest describes ${manifest.host}/${manifest.domain.name}/${manifest.backupId}, not the backup stored here`,
    );
  }
  if (manifest.signer !== signerFingerprint && !trustedKeys.some((key) => keyMatchesFingerprint(key, manifest.signer))) {
    throw new VerificationError('manifest-signer', manifestName, `manifest names signer ${manifest.signer} but ${signerFingerprint} signed it`);
  }
  return { manifest, signerFingerprint };
}
