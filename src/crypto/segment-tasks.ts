/**
 * Shared between the segment ciphers and their worker threads: the data a
 * worker starts with, the tasks it runs, keys in transferable form, and the
 * watchdog bound.
 */
import * as openpgp from 'openpgp';

import type { SessionKey } from './gpg-session-key.js';
import type { DecryptedSegment, DecryptKeys, EncryptedSegment, EncryptKeys } from './segment-operations.js';

/**
 * Keys reach workers as binary OpenPGP packets (Uint8Array), because openpgp.js
 * key objects do not survive structured clone. A worker parses them once.
 */
export type SegmentWorkerData =
  | { role: 'encrypt'; recipients: Uint8Array[]; signingKey: Uint8Array; aead: boolean }
  | { role: 'decrypt'; decryptionKeys: Uint8Array[]; verificationKeys: Uint8Array[] };

export type SegmentTask =
  | { kind: 'encrypt'; plaintext: Uint8Array }
  | { kind: 'decrypt'; ciphertext: Uint8Array; objectName: string; sessionKey?: SessionKey };

export type SegmentResult = EncryptedSegment | DecryptedSegment;

const SEGMENT_SIZE_FOR_BOUND = 16 * 1024 * 1024;
const TIMEOUT_PER_SEGMENT_MS = 120_000;
const MINIMUM_TIMEOUT_MS = 30_000;

/**
 * Returns the watchdog bound for one task: 120 s per 16 MiB, at least 30 s.
 * One 16 MiB segment took about 0.1 s on one core with openpgp.js 6.3.2
 * (bench/crypto.mjs, 2-vCPU EPYC), so the bound is about 1000 times that and
 * only a hung task reaches it.
 */
export function watchdogTimeoutMs(byteLength: number): number {
  return Math.max(MINIMUM_TIMEOUT_MS, Math.ceil((byteLength / SEGMENT_SIZE_FOR_BOUND) * TIMEOUT_PER_SEGMENT_MS));
}

/**
 * Serializes keys for a worker. A private key is written as it is in memory,
 * so a key that was unlocked with its passphrase travels unlocked, but only
 * inside this process.
 */
export function serializeKeys(keys: openpgp.Key[]): Uint8Array[] {
  return keys.map((key) => key.write());
}

export async function parseEncryptKeys(data: Extract<SegmentWorkerData, { role: 'encrypt' }>): Promise<EncryptKeys> {
  const recipients = await Promise.all(data.recipients.map((binaryKey) => openpgp.readKey({ binaryKey })));
  const signingKey = await openpgp.readPrivateKey({ binaryKey: data.signingKey });
  return { recipients, signingKey, aead: data.aead };
}

export async function parseDecryptKeys(data: Extract<SegmentWorkerData, { role: 'decrypt' }>): Promise<DecryptKeys> {
  const decryptionKeys = await Promise.all(data.decryptionKeys.map((binaryKey) => openpgp.readPrivateKey({ binaryKey })));
  const verificationKeys = await Promise.all(data.verificationKeys.map((binaryKey) => openpgp.readKey({ binaryKey })));
  return { decryptionKeys, verificationKeys };
}
