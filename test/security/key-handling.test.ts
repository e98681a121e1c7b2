/**
 * How restore handles secrets: `--decrypt-with gpg` (session keys from
 * gpg-agent, the admin key file is never read), passphrase-protected admin
 * keys (file descriptor, terminal prompt without echo, clear error without
 * either), and that no secret reaches stdout, stderr or the audit file. One
 * running domain is backed up once to RGW, encrypted to a plain and to a
 * passphrase-protected admin key.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { generateAdminKey } from '../../src/crypto/index.js';
import { compareImages, virsh } from '../e2e/helpers.js';
import { runCli, type CliResult } from '../support/cli.js';
import { available } from '../support/components.js';
import { s3Environment, writeTestConfig } from '../support/config.js';
import { createTestDomain, removeTestDomain, type TestDomain } from '../support/domains.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';
import { createTestBucket, runOnTerminal, s3Repository } from './support.js';

const execFileAsync = promisify(execFile);
const enabled = available('libvirt', 'rgw', 'qemu-img', 'gpg');

const gpgClone = 'hvb-test-sec-gpg';
const secretClone = 'hvb-test-sec-secret';
const passphrase = 'correct horse battery staple 7f3a';

/** Long base64 lines of an armored key: the key material itself. */
function armorLines(armored: string): string[] {
  return armored
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length >= 40 && /^[A-Za-z0-9+/=]+$/.test(line));
}

describe.skipIf(!enabled)('restore key handling', () => {
  let work: string;
  let keys: TestKeys;
  let protectedKeyPath: string;
  let protectedKeyArmor: string;
  let bucket: string;
  let domain: TestDomain;
  let gnupgHome: string;
  const env = s3Environment();

  /** Writes a restore configuration for the shared backup with the given admin key settings. */
  async function restoreConfig(extra: Record<string, unknown>): Promise<{ config: string; dir: string; storage: string }> {
    const dir = await mkdtemp(join(work, 'restore-'));
    const storage = join(dir, 'clone-disks');
    await mkdir(storage, { recursive: true, mode: 0o755 });
    const config = await writeTestConfig(dir, { keys, repository: s3Repository(bucket, 'base'), extra });
    return { config, dir, storage };
  }

  function cloneArgs(config: string, clone: string, storage: string): string[] {
    return ['--config', config, 'restore', '--yes', domain.name, '--as', clone, '--storage-dir', storage];
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hvb-sec-keys-'));
    keys = await createTestKeys(work);
    const protectedKey = await generateAdminKey({ name: 'protected admin', passphrase });
    protectedKeyArmor = protectedKey.privateKey;
    protectedKeyPath = join(work, 'admin-protected.asc');
    await writeFile(protectedKeyPath, protectedKey.privateKey, { mode: 0o600 });
    await writeFile(join(work, 'admin-protected.pub.asc'), protectedKey.publicKey, { mode: 0o644 });

    bucket = await createTestBucket('keys');
    domain = await createTestDomain({ name: 'hvb-test-sec-keys', kind: 'single', start: true });
    await removeTestDomain(gpgClone);
    await removeTestDomain(secretClone);

    const dir = await mkdtemp(join(work, 'backup-'));
    const config = await writeTestConfig(dir, {
      keys,
      repository: s3Repository(bucket, 'base'),
      extra: { recipients: [keys.adminPublic, join(work, 'admin-protected.pub.asc')] },
    });
    const backup = await runCli(['--config', config, 'backup', domain.name], { env });
    expect(backup.code, backup.stderr).toBe(0);
    await virsh('destroy', domain.name);

    gnupgHome = join(work, 'gnupg');
    await mkdir(gnupgHome, { mode: 0o700 });
    await execFileAsync('gpg', ['--batch', '--homedir', gnupgHome, '--import', keys.adminSecret]);
  }, 300_000);

  afterAll(async () => {
    await removeTestDomain(gpgClone).catch(() => undefined);
    await removeTestDomain(secretClone).catch(() => undefined);
    await domain?.cleanup().catch(() => undefined);
    // Stops the gpg-agent that the restores started for this GnuPG home, and no other.
    if (gnupgHome) await execFileAsync('gpgconf', ['--homedir', gnupgHome, '--kill', 'gpg-agent']).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  describe('decrypt with gpg', () => {
    it('gpg session keys restore clone', async () => {
      // The admin key setting names a missing file, so a restore that read it would fail.
      const { config, storage } = await restoreConfig({ adminKey: join(work, 'no-such-admin-key.asc'), gpgHome: gnupgHome });

      const result = await runCli([...cloneArgs(config, gpgClone, storage), '--decrypt-with', 'gpg'], { env });

      expect(result.code, result.stderr).toBe(0);
      expect(await compareImages(domain.disks[0].path, join(storage, `${gpgClone}-vda.qcow2`))).toBeNull();
      expect(result.stderr).not.toContain('no-such-admin-key');
      expect(result.stderr).not.toMatch(/session key|SESSION_KEY/i);
    });

    it('gpg without admin key rejected', async () => {
      const emptyHome = join(work, 'gnupg-empty');
      await mkdir(emptyHome, { mode: 0o700 });
      const { config, storage } = await restoreConfig({ gpgHome: emptyHome });

      const result = await runCli([...cloneArgs(config, gpgClone, storage), '--decrypt-with', 'gpg'], { env });

      expect(result.code, result.stderr).toBe(4);
      expect(result.stderr).toContain('manifest-recipients failed');
    });

    it('unknown decrypt method rejected', async () => {
      const { config, storage } = await restoreConfig({});
      const result = await runCli([...cloneArgs(config, gpgClone, storage), '--decrypt-with', 'card'], { env });

      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain('invalid --decrypt-with');
      expect(result.stderr).toContain('card');
    });
  });

  describe('passphrase-protected admin key', () => {
    it('no terminal no fd rejected', async () => {
      const { config, storage } = await restoreConfig({ adminKey: protectedKeyPath });
      const result = await runCli(cloneArgs(config, secretClone, storage), { env });

      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain('--passphrase-fd');
    });

    it('wrong passphrase rejected without leak', async () => {
      const wrong = 'wrong-passphrase-do-not-log-91c2';
      const { config, dir, storage } = await restoreConfig({ adminKey: protectedKeyPath });
      const result = await runCli([...cloneArgs(config, secretClone, storage), '--passphrase-fd', '0'], { env, input: `${wrong}\n` });

      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toContain('the passphrase is wrong');
      expect(result.stderr).not.toContain(wrong);
      expect(result.stdout).not.toContain(wrong);
      expect(await readFile(join(dir, 'audit.jsonl'), 'utf8')).not.toContain(wrong);
    });

    it('terminal prompt does not echo', async () => {
      const typed = 'typed-on-terminal-5e8d';
      const { config, storage } = await restoreConfig({ adminKey: protectedKeyPath });
      const result = await runOnTerminal(cloneArgs(config, secretClone, storage), typed, 'Passphrase for');

      expect(result.output).toContain('Passphrase for secret key');
      expect(result.output).toContain('the passphrase is wrong');
      expect(result.output).not.toContain(typed);
    });
  });

  describe('secrets never logged', () => {
    let outputs: CliResult[];
    let auditText: string;

    beforeAll(async () => {
      const { config, dir, storage } = await restoreConfig({ adminKey: protectedKeyPath });
      const backupConfig = await writeTestConfig(await mkdtemp(join(work, 'backup-again-')), {
        keys,
        repository: s3Repository(bucket, 'second'),
        extra: { auditFile: join(dir, 'audit.jsonl') },
      });
      const backup = await runCli(['--config', backupConfig, '--verbose', 'backup', domain.name], { env });
      const restore = await runCli(['--verbose', ...cloneArgs(config, secretClone, storage), '--passphrase-fd', '0'], { env, input: `${passphrase}\n` });
      outputs = [backup, restore];
      auditText = await readFile(join(dir, 'audit.jsonl'), 'utf8');
    }, 300_000);

    it('backup and restore succeed', () => {
      expect(outputs[0].code, outputs[0].stderr).toBe(0);
      expect(outputs[1].code, outputs[1].stderr).toBe(0);
    });

    it('audit file has restore events', () => {
      expect(auditText).toContain('"action":"restore"');
    });

    it('passphrase never appears', () => {
      for (const output of outputs) {
        expect(output.stdout).not.toContain(passphrase);
        expect(output.stderr).not.toContain(passphrase);
      }
      expect(auditText).not.toContain(passphrase);
    });

    it('S3 secret never appears', () => {
      const secret = process.env.HVBACKUP_TEST_S3_SECRET_KEY ?? '';
      expect(secret.length).toBeGreaterThan(0);
      for (const output of outputs) {
        expect(output.stdout).not.toContain(secret);
        expect(output.stderr).not.toContain(secret);
      }
      expect(auditText).not.toContain(secret);
    });

    it('key material never appears', async () => {
      const material = [
        ...armorLines(protectedKeyArmor),
        ...armorLines(await readFile(keys.adminSecret, 'utf8')),
        ...armorLines(await readFile(keys.hostSecret, 'utf8')),
      ];
      expect(material.length).toBeGreaterThan(0);
      for (const line of material) {
        for (const output of outputs) {
          expect(output.stdout).not.toContain(line);
          expect(output.stderr).not.toContain(line);
        }
        expect(auditText).not.toContain(line);
      }
    });
  });
});
