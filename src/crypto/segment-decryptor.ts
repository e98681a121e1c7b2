/**
 * SegmentDecryptor opens segments written by SegmentEncryptor (or by
 * "gpg --encrypt --sign") and checks that a pinned host key signed them.
 *
 * It takes and returns whole segments, never a stream: a SEIPD v1 stream
 * would release plaintext before the MDC is checked, and a tampered length
 * header can stall it. The caller checks the ciphertext's SHA-256 against the
 * signed manifest before calling decrypt.
 */
import { availableParallelism } from 'node:os';
import * as openpgp from 'openpgp';

import { CryptoError } from '../errors.js';
import type { SessionKey } from './gpg-session-key.js';
import { decryptSegment, type DecryptedSegment } from './segment-operations.js';
import { SegmentRunner } from './segment-runner.js';
import { serializeKeys } from './segment-tasks.js';

export interface SegmentDecryptorOptions {
  /** Unlocked admin keys. Not needed with `sessionKeys`. */
  decryptionKeys?: openpgp.PrivateKey[];
  /**
   * Every decrypt call passes the segment's session key (for example from
   * "gpg --show-session-key"), so that the admin secret key never enters
   * this process.
   */
  sessionKeys?: boolean;
  /** Pinned host keys; a segment signed by any other key is rejected. */
  verificationKeys: openpgp.PublicKey[];
  /** Worker threads; 0 decrypts on the calling thread. Default: os.availableParallelism(). */
  workers?: number;
  /** Watchdog bound per segment in milliseconds. Default: 120 s per 16 MiB, at least 30 s. */
  timeoutMs?: number;
}

export interface DecryptOptions {
  /** Gives the ciphertext up: it moves to the worker, or is decrypted in place on the calling thread, instead of being copied. */
  transfer?: boolean;
  /**
   * With `transfer`: the caller owns the whole ArrayBuffer behind the
   * ciphertext and gives it up too, so a ciphertext that fills only part
   * of a pool buffer moves without a copy. Never set it for a Buffer that
   * may share Node's pool of small Buffers.
   */
  wholeBuffer?: boolean;
  /** The segment's session key; required when the decryptor was created with `sessionKeys`. */
  sessionKey?: SessionKey;
}

export class SegmentDecryptor {
  private readonly runner: SegmentRunner;
  private readonly sessionKeys: boolean;

  private constructor(runner: SegmentRunner, sessionKeys: boolean) {
    this.runner = runner;
    this.sessionKeys = sessionKeys;
  }

  static async create(options: SegmentDecryptorOptions): Promise<SegmentDecryptor> {
    const decryptionKeys = options.decryptionKeys ?? [];
    const sessionKeys = options.sessionKeys === true;
    if (decryptionKeys.length === 0 && !sessionKeys) {
      throw new CryptoError('no decryption keys given', { hint: 'pass the admin secret key file to restore with, or use session keys from gpg' });
    }
    if (options.verificationKeys.length === 0) {
      throw new CryptoError('no host keys to verify segment signatures with', {
        hint: 'pass the public key of the host that made the backup',
      });
    }
    const locked = decryptionKeys.filter((key) => !key.isDecrypted());
    if (locked.length > 0) {
      throw new CryptoError(`decryption key ${locked.map((key) => key.getFingerprint().toUpperCase()).join(', ')} is still locked by its passphrase`, {
        hint: 'load it with readSecretKeyFile and its passphrase first',
      });
    }

    const keys = { decryptionKeys, verificationKeys: options.verificationKeys };
    const runner = new SegmentRunner({
      workers: options.workers ?? availableParallelism(),
      workerData: {
        role: 'decrypt',
        decryptionKeys: serializeKeys(decryptionKeys),
        verificationKeys: serializeKeys(options.verificationKeys),
      },
      runInProcess: async (task) => {
        if (task.kind !== 'decrypt') throw new Error(`decryptor received a ${task.kind} task`);
        return decryptSegment(task.ciphertext, task.objectName, keys, task.sessionKey);
      },
      timeoutMs: options.timeoutMs,
    });
    return new SegmentDecryptor(runner, sessionKeys);
  }

  /**
   * Decrypts one whole segment and verifies its inner signature. Raises
   * VerificationError('segment-signature', objectName, …) when the signature
   * is missing, invalid or made by a key outside `verificationKeys`, and
   * CryptoError when no decryption key matches or the message is damaged.
   */
  async decrypt(ciphertext: Uint8Array, objectName: string, options: DecryptOptions = {}): Promise<DecryptedSegment> {
    if (this.sessionKeys && options.sessionKey === undefined) {
      throw new CryptoError(`no session key given for ${objectName}, but this decryptor holds no secret key`, {
        hint: 'pass the session key of each segment (readSessionKeyWithGpg)',
      });
    }
    const { sessionKey } = options;
    const payload = {
      bytes: ciphertext,
      transfer: options.transfer ?? false,
      wholeBuffer: options.wholeBuffer ?? false,
      overwritesInput: true,
      description: `decrypting ${objectName}`,
    };
    return (await this.runner.run(payload, (bytes) => ({ kind: 'decrypt', ciphertext: bytes, objectName, sessionKey }))) as DecryptedSegment;
  }

  /** Waits for segments in progress, then stops the workers. */
  async close(): Promise<void> {
    await this.runner.close();
  }
}
