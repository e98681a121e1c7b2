/**
 * Two other ways out of a backup. One is a clone restored under a new name
 * next to the original. The other is the break-glass path with stock tools
 * only, as an operator without hvbackup would do it: gpg -d of every segment,
 * concatenated, then tar x.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { writeTestConfig } from '../support/config.js';
import { createTestDomain, type TestDomain } from '../support/domains.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';
import { compareImages, domainInfo, virsh } from './helpers.js';

const execFileAsync = promisify(execFile);
const enabled = available('libvirt', 'qemu-img', 'gpg', 'tar');

describe.skipIf(!enabled)('clone and break-glass restore', () => {
  let work: string;
  let keys: TestKeys;
  let config: string;
  let domain: TestDomain;
  const cloneName = 'hvb-test-e2e-clone-copy';

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hvb-e2e-clone-'));
    keys = await createTestKeys(work);
    config = await writeTestConfig(work, { keys, repository: { type: 'local', path: join(work, 'repo') } });
    domain = await createTestDomain({ name: 'hvb-test-e2e-clone', kind: 'multi', start: true });

    const backup = await runCli(['--config', config, 'backup', domain.name]);
    expect(backup.code, backup.stderr).toBe(0);
    await virsh('destroy', domain.name);
  });

  afterAll(async () => {
    await virsh('destroy', cloneName).catch(() => undefined);
    await virsh('undefine', cloneName, '--nvram', '--checkpoints-metadata').catch(() => undefined);
    await domain?.cleanup().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  it('clone gets new identity and paths', async () => {
    const storage = join(work, 'clone-disks');
    await mkdir(storage, { recursive: true, mode: 0o755 });
    const restore = await runCli(['--config', config, 'restore', '--yes', domain.name, '--as', cloneName, '--storage-dir', storage]);
    expect(restore.code, restore.stderr).toBe(0);

    const original = await domainInfo(domain.name);
    const clone = await domainInfo(cloneName);
    expect(clone.name).toBe(cloneName);
    expect(clone.uuid).not.toBe(original.uuid);

    const originalMacs = original.interfaces.map((item) => item.mac);
    for (const item of clone.interfaces) {
      expect(item.mac).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
      expect(originalMacs).not.toContain(item.mac);
    }

    for (const disk of original.disks) {
      const cloned = clone.disks.find((candidate) => candidate.target === disk.target)!;
      expect(cloned.sourcePath).not.toBe(disk.sourcePath);
      expect(cloned.sourcePath!.startsWith(storage)).toBe(true);
      expect(await compareImages(disk.sourcePath!, cloned.sourcePath!)).toBeNull();
    }

    await virsh('start', cloneName);
    expect((await virsh('domstate', cloneName)).trim()).toBe('running');
  });

  it('clone refused when name exists', async () => {
    const restore = await runCli(['--config', config, 'restore', '--yes', domain.name, '--as', domain.name]);
    expect(restore.code).toBe(7);
    expect(restore.stderr).toContain(`domain ${domain.name} already exists`);
  });

  it('stock gpg and tar restore every disk', async () => {
    const gnupgHome = join(work, 'gnupg');
    await mkdir(gnupgHome, { mode: 0o700 });
    await execFileAsync('gpg', ['--batch', '--homedir', gnupgHome, '--import', keys.adminSecret, keys.hostPublic]);

    const backupDirs = await findBackupDirs(join(work, 'repo'));
    expect(backupDirs).toHaveLength(1);
    const segmentsDir = join(backupDirs[0], 'segments');
    const segments = (await readdir(segmentsDir)).sort();
    expect(segments.length).toBeGreaterThan(0);

    const out = join(work, 'break-glass');
    await mkdir(out);
    await decryptAndExtract(gnupgHome, segments.map((name) => join(segmentsDir, name)), out);

    for (const disk of domain.disks) {
      const extracted = join(out, 'disks', `${disk.target}.img`);
      expect(await compareImages(extracted, disk.path, { reference: 'raw', candidate: disk.format })).toBeNull();
    }
  });
});

async function findBackupDirs(repo: string): Promise<string[]> {
  const found: string[] = [];
  for (const host of await readdir(join(repo, 'hosts'))) {
    for (const domain of await readdir(join(repo, 'hosts', host, 'domains'))) {
      for (const id of await readdir(join(repo, 'hosts', host, 'domains', domain))) {
        found.push(join(repo, 'hosts', host, 'domains', domain, id));
      }
    }
  }
  return found;
}

/** Runs `for s in segments; do gpg -d s; done | tar -x -C out` with the exit status of every step checked. */
function decryptAndExtract(gnupgHome: string, segments: string[], out: string): Promise<void> {
  const script = 'set -euo pipefail; home=$1; out=$2; shift 2; for s in "$@"; do gpg --batch --quiet --homedir "$home" -d "$s"; done | tar -x -C "$out"';
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script, 'break-glass', gnupgHome, out, ...segments], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`break-glass pipeline failed (${code}): ${stderr}`))));
  });
}
