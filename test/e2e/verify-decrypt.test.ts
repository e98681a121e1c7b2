/**
 * verify --decrypt goes as far as restore does without writing a disk, so
 * it catches what key-less verification cannot: here a backup whose
 * segments were signed by an unpinned host key while its manifest was
 * re-signed by the pinned one.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readSecretKeyFile, signDetached } from '../../src/crypto/index.js';
import { runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { writeTestConfig } from '../support/config.js';
import { createTestDomain, type TestDomain } from '../support/domains.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';

describe.skipIf(!available('libvirt'))('verify --decrypt', () => {
  let work: string;
  let pinned: TestKeys;
  let config: string;
  let domain: TestDomain;
  let repo: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hvb-verify-decrypt-'));
    pinned = await createTestKeys(await mkdtemp(join(work, 'pinned-')));
    repo = join(work, 'repo');
    config = await writeTestConfig(await mkdtemp(join(work, 'config-')), { keys: pinned, repository: { type: 'local', path: repo } });
    domain = await createTestDomain({ name: 'hvb-test-verify-decrypt', kind: 'single', start: true });
  });

  afterAll(async () => {
    await domain?.cleanup().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  async function backup(configPath: string): Promise<string> {
    const result = await runCli(['--config', configPath, 'backup', '--json', '--mode', 'full', domain.name]);
    expect(result.code, result.stderr).toBe(0);
    return (JSON.parse(result.stdout) as { backupId: string }[])[0].backupId;
  }

  async function backupDir(backupId: string): Promise<string> {
    const [host] = await readdir(join(repo, 'hosts'));
    return join(repo, 'hosts', host, 'domains', domain.name, backupId);
  }

  it('intact backup decrypts and verifies', async () => {
    const backupId = await backup(config);
    const result = await runCli(['--config', config, 'verify', '--decrypt', backupId]);
    expect(result.code, result.stderr).toBe(0);
  });

  it('foreign inner signature caught only with decrypt', async () => {
    // Segments signed by an unpinned host key, but encrypted to the pinned admin.
    const foreign = await createTestKeys(await mkdtemp(join(work, 'foreign-')), 'unused');
    const foreignConfig = await writeTestConfig(await mkdtemp(join(work, 'foreign-config-')), {
      keys: { ...pinned, hostSecret: foreign.hostSecret, hostPublic: foreign.hostPublic, hostFingerprint: foreign.hostFingerprint },
      repository: { type: 'local', path: repo },
    });
    const backupId = await backup(foreignConfig);

    // Re-sign the manifest with the pinned key, naming it as the signer.
    const dir = await backupDir(backupId);
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { signer: string };
    manifest.signer = pinned.hostFingerprint;
    const bytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
    const signature = await signDetached(bytes, await readSecretKeyFile(pinned.hostSecret));
    await writeFile(join(dir, 'manifest.json'), bytes);
    await writeFile(join(dir, 'manifest.json.sig'), signature);

    const keyless = await runCli(['--config', config, 'verify', '--read-data', backupId]);
    expect(keyless.code, keyless.stderr).toBe(0);

    const decrypted = await runCli(['--config', config, 'verify', '--decrypt', backupId]);
    expect(decrypted.code).toBe(4);
    expect(decrypted.stderr).toContain('segment-signature');
  });
});
