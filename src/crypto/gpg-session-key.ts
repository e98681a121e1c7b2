/**
 * Session keys from gpg-agent, for restores whose admin secret key stays in
 * gpg (on a smartcard, or in a GnuPG home that hvbackup must not read).
 * gpg opens only the public-key encrypted session key packets (PKESK) at the
 * start of a segment and reports the session key on its status output. The
 * tool then decrypts the whole segment itself with that key, so the MDC and
 * the inner signature are checked exactly as with a key file.
 */
import { spawn } from 'node:child_process';

import { CryptoError } from '../errors.js';

/** A segment's symmetric key, in the form openpgp.decrypt takes as `sessionKeys`. */
export interface SessionKey {
  data: Uint8Array;
  algorithm: 'aes128' | 'aes192' | 'aes256';
}

/**
 * Bytes of a segment that gpg reads. The PKESK packets come first, one per
 * recipient and a few hundred bytes each, so 64 KiB contains them for well
 * over a hundred admins. gpg then stops on the truncated data packet.
 */
export const SESSION_KEY_PREFIX_BYTES = 64 * 1024;

/** Symmetric algorithm ids of RFC 4880 section 9.2 that openpgp.js and SEIPD v1 segments use. */
const SYMMETRIC_ALGORITHMS: Record<string, SessionKey['algorithm']> = {
  '7': 'aes128',
  '8': 'aes192',
  '9': 'aes256',
};

export interface GpgOptions {
  /** GnuPG home directory (--homedir); default: $GNUPGHOME or ~/.gnupg. */
  gpgHome?: string;
  signal?: AbortSignal;
}

interface GpgResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runGpg(args: string[], input: Uint8Array | undefined, options: GpgOptions): Promise<GpgResult> {
  const homeArgs = options.gpgHome === undefined ? [] : ['--homedir', options.gpgHome];
  return new Promise((resolve, reject) => {
    const child = spawn('gpg', [...homeArgs, '--batch', '--no-tty', ...args], { stdio: ['pipe', 'pipe', 'pipe'], signal: options.signal });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', (error) => {
      reject(
        new CryptoError(`running gpg failed: ${error.message}`, {
          cause: error,
          hint: 'install GnuPG 2.2 or later (apt install gnupg), or restore with --decrypt-with key',
        }),
      );
    });
    // gpg closes its input early once it gives up on the truncated data packet.
    child.stdin.on('error', () => undefined);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input === undefined ? undefined : Buffer.from(input));
  });
}

/**
 * Asks gpg for the session key of one segment. Only the first
 * SESSION_KEY_PREFIX_BYTES of `ciphertext` reach gpg, and its (partial,
 * unauthenticated) plaintext goes to /dev/null. gpg exits non-zero on the
 * truncated input, so success is judged by the SESSION_KEY status line alone.
 */
export async function readSessionKeyWithGpg(ciphertext: Uint8Array, objectName: string, options: GpgOptions = {}): Promise<SessionKey> {
  const prefix = ciphertext.subarray(0, SESSION_KEY_PREFIX_BYTES);
  const result = await runGpg(['--status-fd', '1', '--show-session-key', '--output', '/dev/null', '--decrypt'], prefix, options);

  const line = result.stdout.split('\n').find((candidate) => candidate.startsWith('[GNUPG:] SESSION_KEY '));
  if (line === undefined) {
    throw new CryptoError(`gpg could not decrypt the session key of ${objectName}: ${gpgReason(result)}`, {
      hint: 'check that the admin secret key (or its smartcard) is available to gpg: gpg --list-secret-keys; set "gpgHome" for another GnuPG home',
    });
  }

  const match = /^\[GNUPG:\] SESSION_KEY (\d+):([0-9A-Fa-f]+)\s*$/.exec(line);
  if (!match) {
    throw new CryptoError(`gpg reported a session key for ${objectName} in an unexpected form`, {
      hint: 'SEIPD v2 (AEAD) segments need a gpg that reports them as "ALGO:HEX"; restore them with --decrypt-with key',
    });
  }
  const algorithm = SYMMETRIC_ALGORITHMS[match[1]];
  if (algorithm === undefined) {
    throw new CryptoError(`segment ${objectName} uses symmetric algorithm ${match[1]}, which restore does not accept (only AES: 7, 8, 9)`, {
      hint: 'the segment was not written by hvbackup; do not trust it',
    });
  }
  return { data: Uint8Array.from(Buffer.from(match[2], 'hex')), algorithm };
}

/** Returns the fingerprints (primary keys and subkeys) of every secret key gpg can use. */
export async function gpgSecretKeyFingerprints(options: GpgOptions = {}): Promise<string[]> {
  const result = await runGpg(['--with-colons', '--list-secret-keys'], undefined, options);
  if (result.code !== 0) {
    throw new CryptoError(`gpg --list-secret-keys failed: ${gpgReason(result)}`, {
      hint: 'check "gpgHome" in the configuration and that the directory belongs to this user',
    });
  }
  return result.stdout
    .split('\n')
    .filter((line) => line.startsWith('fpr:'))
    .map((line) => line.split(':')[9].toUpperCase())
    .filter(Boolean);
}

/** Returns the last two lines of gpg's error output, without its "session key" line. */
function gpgReason(result: GpgResult): string {
  const lines = result.stderr
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('gpg:') && !line.includes('session key:'));
  return lines.slice(-2).join('; ') || `exit status ${result.code}`;
}
