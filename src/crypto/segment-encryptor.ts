/**
 * SegmentEncryptor turns plaintext segments into ordinary OpenPGP messages,
 * signed by the host key and encrypted to every admin, which "gpg -d" reads.
 */
import { availableParallelism } from 'node:os';
import * as openpgp from 'openpgp';

import { CryptoError } from '../errors.js';
import { checkRecipients, type CipherSuite } from './algorithms.js';
import { encryptSegment, type EncryptedSegment } from './segment-operations.js';
import { SegmentRunner } from './segment-runner.js';
import { serializeKeys } from './segment-tasks.js';

export interface SegmentEncryptorOptions {
  recipients: openpgp.PublicKey[];
  /** Unlocked host key; it signs every segment. */
  signingKey: openpgp.PrivateKey;
  /** Worker threads; 0 encrypts on the calling thread. Default: os.availableParallelism(). */
  workers?: number;
  /** Require SEIPD v2 (AES-256-GCM) instead of SEIPD v1; see checkRecipients. */
  aead?: boolean;
  /** Watchdog bound per segment in milliseconds. Default: 120 s per 16 MiB, at least 30 s. */
  timeoutMs?: number;
}

export interface EncryptOptions {
  /**
   * Gives up the whole ArrayBuffer behind the plaintext, for example a pool
   * buffer that keeps SEGMENT_HEADROOM_BYTES before and
   * SEGMENT_TAILROOM_BYTES after the plaintext. The segment is then
   * encrypted in that buffer (moved to a worker and back, with workers), and
   * the caller's view is unusable afterwards. Default: false, the plaintext
   * is copied and stays as it was.
   */
  transfer?: boolean;
}

export class SegmentEncryptor {
  /** Cipher suite that checkRecipients found for the recipients. */
  readonly cipherSuite: CipherSuite;
  private readonly runner: SegmentRunner;

  private constructor(runner: SegmentRunner, cipherSuite: CipherSuite) {
    this.runner = runner;
    this.cipherSuite = cipherSuite;
  }

  /** Checks the recipients and the signing key, then starts the workers. */
  static async create(options: SegmentEncryptorOptions): Promise<SegmentEncryptor> {
    const aead = options.aead ?? false;
    const cipherSuite = await checkRecipients(options.recipients, { aead });
    await requireSigningKey(options.signingKey);

    const keys = { recipients: options.recipients, signingKey: options.signingKey, aead };
    const runner = new SegmentRunner({
      workers: options.workers ?? availableParallelism(),
      workerData: {
        role: 'encrypt',
        recipients: serializeKeys(options.recipients),
        signingKey: options.signingKey.write(),
        aead,
      },
      runInProcess: async (task) => {
        if (task.kind !== 'encrypt') throw new Error(`encryptor received a ${task.kind} task`);
        return encryptSegment(task.plaintext, keys);
      },
      timeoutMs: options.timeoutMs,
    });
    return new SegmentEncryptor(runner, cipherSuite);
  }

  /** Signs and encrypts one segment and returns the binary OpenPGP message with its SHA-256. */
  async encrypt(plaintext: Uint8Array, options: EncryptOptions = {}): Promise<EncryptedSegment> {
    const transfer = options.transfer ?? false;
    const payload = {
      bytes: plaintext,
      transfer,
      wholeBuffer: transfer,
      overwritesInput: true,
      description: `encrypting a ${plaintext.byteLength}-byte segment`,
    };
    return (await this.runner.run(payload, (bytes) => ({ kind: 'encrypt', plaintext: bytes }))) as EncryptedSegment;
  }

  /** Waits for segments in progress, then stops the workers. */
  async close(): Promise<void> {
    await this.runner.close();
  }
}

async function requireSigningKey(signingKey: openpgp.PrivateKey): Promise<void> {
  const fingerprint = signingKey.getFingerprint().toUpperCase();
  if (!signingKey.isDecrypted()) {
    throw new CryptoError(`signing key ${fingerprint} is still locked by its passphrase`, {
      hint: 'load it with readSecretKeyFile and its passphrase first',
    });
  }
  try {
    await signingKey.getSigningKey();
  } catch (error) {
    throw new CryptoError(`signing key ${fingerprint} cannot sign: ${(error as Error).message}`, {
      cause: error,
      hint: 'check that the host key is not expired or revoked and has signing capability ("gpg --list-keys FINGERPRINT")',
    });
  }
}
