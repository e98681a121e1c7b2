/**
 * Keys and configuration shared by the contenders. `hvbackup keys` makes one
 * host key and two administrator keys. The same keys go into a private
 * GnuPG home for the gpg pipelines, and hvbackup gets configuration files
 * for a local and an S3 repository.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { quote, run } from './shell.mjs';

/** Runs the built hvbackup command line and returns its stdout. */
export function hvbackup(cli, args, env = {}) {
  return run(process.execPath, [cli, '--log-format', 'json', ...args], { env });
}

/** Creates the keys and the GnuPG home. Returns the paths and fingerprints the contenders need. */
export async function createKeys(cli, dir) {
  const keyDir = join(dir, 'keys');
  await hvbackup(cli, ['keys', 'create-host', '-o', keyDir, '--name', 'hvb-bench host']);
  await hvbackup(cli, ['keys', 'create-admin', '-o', keyDir, '--name', 'admin1']);
  await hvbackup(cli, ['keys', 'create-admin', '-o', keyDir, '--name', 'admin2']);

  const fingerprintOf = async (file) => (await hvbackup(cli, ['keys', 'show', file])).split(' ')[0].replaceAll(' ', '');
  const keys = {
    dir: keyDir,
    hostSecret: join(keyDir, 'host-key.asc'),
    admin1Secret: join(keyDir, 'admin-admin1.asc'),
    recipients: [join(keyDir, 'admin-admin1.pub.asc'), join(keyDir, 'admin-admin2.pub.asc')],
  };
  keys.hostFingerprint = await fingerprintOf(join(keyDir, 'host-key.pub.asc'));
  keys.admin1Fingerprint = await fingerprintOf(keys.recipients[0]);
  keys.admin2Fingerprint = await fingerprintOf(keys.recipients[1]);

  // The gpg pipelines sign with the host key and encrypt to both admins, like hvbackup.
  // Decryption uses admin1's secret key, like hvbackup's restore.
  const gnupgHome = join(dir, 'gnupg');
  await mkdir(gnupgHome, { recursive: true });
  await chmod(gnupgHome, 0o700);
  for (const file of [keys.hostSecret, keys.admin1Secret, keys.recipients[1]]) {
    await run('gpg', ['--homedir', gnupgHome, '--batch', '--import', file]);
  }
  keys.gnupgHome = gnupgHome;
  return keys;
}

/** gpg arguments shared by the pipelines: our home, no trust database prompts. */
export function gpgOptions(keys) {
  return `--homedir ${quote(keys.gnupgHome)} --batch --trust-model always`;
}

/** Writes a hvbackup configuration file for one repository and returns its path. */
export async function writeConfig(dir, name, keys, repository, extra = {}) {
  const configDir = join(dir, name);
  await mkdir(configDir, { recursive: true });
  // QEMU creates the NBD socket below scratchDir, so the path must be searchable.
  await chmod(configDir, 0o755);
  const path = join(configDir, 'config.json');
  const config = {
    repository,
    scratchDir: join(configDir, 'scratch'),
    stagingDir: join(dir, 'staging'),
    stateDir: join(configDir, 'state'),
    signingKey: keys.hostSecret,
    recipients: keys.recipients,
    trustedSigners: [keys.hostFingerprint],
    adminKey: keys.admin1Secret,
    auditFile: join(configDir, 'audit.jsonl'),
    ...extra,
  };
  await writeFile(path, JSON.stringify(config, null, 2));
  return path;
}

export async function readJson(path) {
  return JSON.parse(await readFile(path, 'utf8'));
}
