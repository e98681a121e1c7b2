/**
 * Keys: the host signing key (file mode, owner, loads), the recipients' public
 * keys and the packet version they select, the admin key's file mode, and
 * whether the pinned trusted signers include this host's own key.
 */
import { stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, resolve } from 'node:path';

import type { PublicKey } from 'openpgp';

import type { Config } from '../config/load.js';
import { checkRecipients, keyInfo, readPublicKeyFile, readSecretKeyFile } from '../crypto/index.js';
import { fail, failureOf, info, ok, runCheck, warn, type CheckResult } from './check.js';
import { formatMode, groupOtherBits } from './modes.js';

/** Runs every key check. A key that cannot be loaded skips the checks that need it. */
export async function checkKeys(config: Config): Promise<CheckResult[]> {
  const results: CheckResult[] = [];

  let signerFingerprint: string | undefined;
  if (config.signingKey === undefined) {
    results.push(warn('keys.signing-key', 'no "signingKey" in the configuration and no systemd credential host-key: this host cannot take backups', `on a backup host: hvbackup keys create-host -o ${dirname(resolve(config.path))}, then set "signingKey" in ${config.path}`));
  } else {
    const path = config.signingKey;
    const file = await runCheck('keys.signing-key-file', () => checkSecretKeyFile('keys.signing-key-file', path, 'signing key'));
    results.push(...file);
    if (file.every((result) => result.status !== 'fail')) {
      const loaded = await runCheck('keys.signing-key', async () => {
        const key = await readSecretKeyFile(path);
        signerFingerprint = keyInfo(key).fingerprint;
        return ok('keys.signing-key', `secret key ${signerFingerprint} loads from ${path}`);
      });
      results.push(...loaded);
    }
  }

  results.push(...(await checkRecipientKeys(config)));
  results.push(...(await checkAdminKey(config)));
  results.push(checkTrustedSigners(config.trustedSigners, signerFingerprint));
  return results;
}

/** Checks that a secret key file exists, has no group or other permission bits, and belongs to this user or root. */
export async function checkSecretKeyFile(name: string, path: string, fileKind: string): Promise<CheckResult> {
  let file;
  try {
    file = await stat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const fix = code === 'ENOENT'
      ? `create it (hvbackup keys create-host -o ${dirname(path)} for a host key) or correct the path in the configuration`
      : `make ${path} and its directories readable by user ${userInfo().username}`;
    return fail(name, `${fileKind} ${path} cannot be read: ${code ?? (error as Error).message}`, fix);
  }

  const problems = secretKeyFileProblems({ mode: file.mode, uid: file.uid }, process.getuid?.() ?? userInfo().uid);
  if (problems.mode) {
    return fail(name, `${fileKind} ${path} has mode ${formatMode(file.mode)}: group or others can read the secret key`, `chmod 600 ${path}`);
  }
  if (problems.owner) {
    return fail(name, `${fileKind} ${path} belongs to uid ${file.uid}, neither this user (uid ${userInfo().uid}) nor root, so that user can replace the key`, `chown root:root ${path} (or chown ${userInfo().username} ${path})`);
  }
  return ok(name, `${fileKind} ${path} has mode ${formatMode(file.mode)} and owner uid ${file.uid}`);
}

/** Pure part of the secret key file check: which rules a file's mode and owner break. */
export function secretKeyFileProblems(file: { mode: number; uid: number }, currentUid: number): { mode: boolean; owner: boolean } {
  return {
    mode: groupOtherBits(file.mode) !== 0,
    owner: file.uid !== currentUid && file.uid !== 0,
  };
}

async function checkRecipientKeys(config: Config): Promise<CheckResult[]> {
  if (config.recipients.length === 0) {
    if (config.signingKey === undefined) return [info('keys.recipients', 'no recipients configured (not a backup host)')];
    return [fail('keys.recipients', 'no "recipients": a backup needs at least one administrator public key to encrypt to', `add the admins' public key files to "recipients" in ${config.path}`)];
  }

  const results: CheckResult[] = [];
  const keys: PublicKey[] = [];
  for (const path of config.recipients) {
    const name = `keys.recipient ${path}`;
    results.push(...(await runCheck(name, async () => {
      const key = await readPublicKeyFile(path);
      keys.push(key);
      return ok(name, `public key ${keyInfo(key).fingerprint} (${keyInfo(key).userIds.join(', ') || 'no user id'})`);
    })));
  }

  if (keys.length === config.recipients.length) {
    results.push(...(await runCheck('keys.recipients', async () => {
      try {
        const suite = await checkRecipients(keys, { aead: config.encryption.aead });
        return ok('keys.recipients', `${keys.length} recipient key(s) accepted: SEIPD v${suite.seipdVersion}, ${suite.symmetric}${suite.aead ? ` ${suite.aead}` : ''}`);
      } catch (error) {
        return failureOf('keys.recipients', error, 'replace the rejected keys');
      }
    })));
  }
  return results;
}

async function checkAdminKey(config: Config): Promise<CheckResult[]> {
  if (config.adminKey === undefined) return [ok('keys.admin-key', 'not configured (a backup host needs none)')];
  const path = config.adminKey;
  return runCheck('keys.admin-key', () => checkSecretKeyFile('keys.admin-key', path, 'admin key'));
}

/** WARN when both a signing key and trusted signers are set but the signing key is not among them. */
export function checkTrustedSigners(trustedSigners: string[], signerFingerprint: string | undefined): CheckResult {
  const name = 'keys.trusted-signers';
  if (signerFingerprint === undefined || trustedSigners.length === 0) {
    return ok(name, trustedSigners.length === 0 ? 'none pinned (only needed to restore)' : `${trustedSigners.length} pinned`);
  }
  if (!trustedSigners.includes(signerFingerprint)) {
    return warn(name, `the signing key ${signerFingerprint} is not in "trustedSigners": your own backups could not be restored with this configuration`, `add "${signerFingerprint}" to "trustedSigners" if this file is also used to restore`);
  }
  return ok(name, `includes this host's signing key ${signerFingerprint}`);
}
