/**
 * Loading OpenPGP keys from files and describing them. Errors name the file
 * and the fix, and never contain a passphrase or key material.
 */
import { readFile, stat } from 'node:fs/promises';
import * as openpgp from 'openpgp';

import { CryptoError } from '../errors.js';

/** Summary of a key for logs, listings and error messages. */
export interface KeyInfo {
  /** Fingerprint of the primary key, uppercase hex without spaces. */
  fingerprint: string;
  userIds: string[];
  isPrivate: boolean;
  /** Key packet version: 4 (RFC 4880) or 6 (RFC 9580). */
  version: number;
}

const ARMOR_HEADER = '-----BEGIN PGP ';

async function readKeyFileBytes(path: string, kind: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new CryptoError(`cannot read ${kind} file ${path}: ${(error as Error).message}`, {
      cause: error,
      hint: `check that ${path} exists and is readable by this user`,
    });
  }
}

function isArmored(bytes: Uint8Array): boolean {
  const head = Buffer.from(bytes.subarray(0, 1024)).toString('latin1');
  return head.includes(ARMOR_HEADER);
}

/** Parses every key in a file, armored or binary. */
async function parseKeys(bytes: Uint8Array, path: string, kind: string): Promise<openpgp.Key[]> {
  try {
    if (isArmored(bytes)) {
      return await openpgp.readKeys({ armoredKeys: Buffer.from(bytes).toString('utf8') });
    }
    return await openpgp.readKeys({ binaryKeys: bytes });
  } catch (error) {
    // openpgp.js parse errors describe packets, never their secret contents.
    throw new CryptoError(`${kind} file ${path} does not contain a valid OpenPGP key: ${(error as Error).message}`, {
      cause: error,
      hint: 'export the key with "gpg --export KEYID" (public) or "gpg --export-secret-keys KEYID" (secret)',
    });
  }
}

function requireSingleKey(keys: openpgp.Key[], path: string, kind: string): openpgp.Key {
  if (keys.length !== 1) {
    throw new CryptoError(`${kind} file ${path} contains ${keys.length} keys, expected exactly one`, {
      hint: 'export one key per file',
    });
  }
  return keys[0];
}

/**
 * Reads one public key (certificate) from an armored or binary file. A file
 * that contains a secret key yields its public part.
 */
export async function readPublicKeyFile(path: string): Promise<openpgp.PublicKey> {
  const bytes = await readKeyFileBytes(path, 'public key');
  const key = requireSingleKey(await parseKeys(bytes, path, 'public key'), path, 'public key');
  return key.isPrivate() ? key.toPublic() : key;
}

/**
 * Parses one armored public key that did not come from a file, for example a
 * key stored in the repository. `source` names it in errors.
 */
export async function readPublicKeyArmored(armored: string, source: string): Promise<openpgp.PublicKey> {
  const bytes = new TextEncoder().encode(armored);
  const key = requireSingleKey(await parseKeys(bytes, source, 'public key'), source, 'public key');
  return key.isPrivate() ? key.toPublic() : key;
}

/** A passphrase, or a function that obtains one (for example by a prompt) and is called only for a protected key. */
export type PassphraseSource = string | ((keyDescription: string) => Promise<string>);

/**
 * Reads one secret key from an armored or binary file and returns it ready to
 * use. Rejects a file that group or others can access, because the host key
 * is stored without a passphrase. `passphrase` is needed only when the key is
 * protected.
 */
export async function readSecretKeyFile(path: string, source?: PassphraseSource): Promise<openpgp.PrivateKey> {
  await requireOwnerOnlyMode(path);

  const bytes = await readKeyFileBytes(path, 'secret key');
  const key = requireSingleKey(await parseKeys(bytes, path, 'secret key'), path, 'secret key');
  if (!key.isPrivate()) {
    throw new CryptoError(`secret key file ${path} contains only a public key (${fingerprintOf(key)})`, {
      hint: 'pass the file written by "gpg --export-secret-keys", not by "gpg --export"',
    });
  }

  if (key.isDecrypted()) return key;

  const passphrase = typeof source === 'function' ? await source(`secret key ${fingerprintOf(key)} in ${path}`) : source;
  if (passphrase === undefined || passphrase === '') {
    throw new CryptoError(`secret key ${fingerprintOf(key)} in ${path} is protected by a passphrase, but none was given`, {
      hint: 'supply the passphrase for this key',
    });
  }

  try {
    return await openpgp.decryptKey({ privateKey: key, passphrase });
  } catch {
    // The cause is dropped on purpose, so that nothing derived from the
    // passphrase can reach a log through the error chain.
    throw new CryptoError(`cannot unlock secret key ${fingerprintOf(key)} in ${path}: the passphrase is wrong`, {
      hint: 'check the passphrase; "gpg --homedir DIR --passwd KEYID" can change it',
    });
  }
}

async function requireOwnerOnlyMode(path: string): Promise<void> {
  let mode: number;
  try {
    mode = (await stat(path)).mode & 0o777;
  } catch (error) {
    throw new CryptoError(`cannot read secret key file ${path}: ${(error as Error).message}`, {
      cause: error,
      hint: `check that ${path} exists and is readable by this user`,
    });
  }

  if ((mode & 0o077) !== 0) {
    const octal = mode.toString(8).padStart(4, '0');
    throw new CryptoError(`secret key file ${path} is accessible by group or others (mode ${octal})`, {
      hint: `run "chmod 600 ${path}" so that only its owner can read it`,
    });
  }
}

function fingerprintOf(key: openpgp.Key): string {
  return key.getFingerprint().toUpperCase();
}

/** Describes a key: primary fingerprint, user IDs, secret or public, version. */
export function keyInfo(key: openpgp.Key): KeyInfo {
  return {
    fingerprint: fingerprintOf(key),
    userIds: key.getUserIDs(),
    isPrivate: key.isPrivate(),
    version: key.keyPacket.version,
  };
}

/**
 * Normalises a fingerprint as users paste it: removes spaces and a leading
 * "0x", and upper-cases the hex digits.
 */
export function normalizeFingerprint(fingerprint: string): string {
  return fingerprint.replace(/\s+/g, '').replace(/^0x/i, '').toUpperCase();
}

/** Returns true when the primary key or any subkey has this fingerprint. */
export function keyMatchesFingerprint(key: openpgp.Key, fingerprint: string): boolean {
  const wanted = normalizeFingerprint(fingerprint);
  if (wanted === '') return false;
  return key.getKeys().some((component) => component.getFingerprint().toUpperCase() === wanted);
}

/**
 * Returns the primary fingerprint of the first key that owns `keyId`
 * (primary or subkey), or undefined when none does.
 */
export function findKeyByKeyId<K extends openpgp.Key>(keys: K[], keyId: openpgp.KeyID): K | undefined {
  return keys.find((key) => key.getKeys(keyId).length > 0);
}
