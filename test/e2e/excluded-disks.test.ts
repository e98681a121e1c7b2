/**
 * Disks left out by `excludeDisks`, against real libvirt, QEMU and qemu-img.
 * The domain has two qcow2 disks and the configuration excludes vdb. The
 * tests run in order on one domain and one repository. They take backups
 * while it runs and while it is shut off, include vdb again and exclude it
 * once more. Then they restore a clone, run a drill, and restore in place
 * with vdb's image present, missing, and dropped with --drop-excluded-disks.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { access, chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readArchive } from '../../src/archive/reader.js';
import { logMessages, runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { writeTestConfig } from '../support/config.js';
import { createTestDomain, type TestDomain } from '../support/domains.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';
import { domainsWithPrefix, removeSandboxes } from '../drill/support.js';
import { compareImages, domainInfo, virsh } from './helpers.js';

const execFileAsync = promisify(execFile);
const enabled = available('libvirt', 'qemu-img');

const DOMAIN = 'hvb-test-exclude';
const CLONE = 'hvb-test-exclude-clone';
const SANDBOX_PREFIX = `drill-${DOMAIN}-`;

interface BackupSummary {
  backupId: string;
  type: 'full' | 'incremental';
  parent: string | null;
}

interface StoredManifest {
  disks: { target: string; storedBytes: number; entry: string }[];
  excludedDisks?: { target: string; format: string; sourcePath: string }[];
  segments: { name: string }[];
}

async function sha256(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Names of the persistent dirty bitmaps in a qcow2 image. */
async function bitmaps(path: string): Promise<string[]> {
  const { stdout } = await execFileAsync('qemu-img', ['info', '--force-share', '--output=json', path]);
  const info = JSON.parse(stdout) as { 'format-specific': { data: { bitmaps?: { name: string }[] } } };
  return (info['format-specific'].data.bitmaps ?? []).map((bitmap) => bitmap.name);
}

describe.skipIf(!enabled)('excluded disks', () => {
  let work: string;
  let keys: TestKeys;
  let repo: string;
  /** Configuration that excludes vdb of the test domain. */
  let excluding: string;
  /** Configuration without excludeDisks, on the same repository. */
  let including: string;
  let domain: TestDomain;
  let vdaPath: string;
  let vdbPath: string;
  /** Copy of vda taken while the domain is shut off after the last backup. */
  let vdaReference: string;
  const backups: Record<'running' | 'shutOff' | 'included' | 'excludedAgain', BackupSummary | undefined> = {
    running: undefined,
    shutOff: undefined,
    included: undefined,
    excludedAgain: undefined,
  };

  beforeAll(async () => {
    // A short path: a drill puts its restore's NBD sockets below drill.sandboxDir, and a UNIX socket path must stay below 108 bytes.
    work = await mkdtemp('/tmp/hvbx-');
    await chmod(work, 0o711);
    keys = await createTestKeys(work);
    repo = join(work, 'repo');
    await mkdir(join(work, 'excluding'));
    await mkdir(join(work, 'including'));
    const drill = { sandboxDir: join(work, 's'), bootCheck: { runningTimeoutSeconds: 60 } };
    excluding = await writeTestConfig(join(work, 'excluding'), {
      keys,
      repository: { type: 'local', path: repo },
      // The second entry names a domain that does not exist, as a misspelt name would.
      extra: { segmentSize: '1MiB', excludeDisks: { [DOMAIN]: ['vdb'], 'hvb-test-exclude-typo': ['vdb'] }, drill },
    });
    including = await writeTestConfig(join(work, 'including'), { keys, repository: { type: 'local', path: repo }, extra: { segmentSize: '1MiB' } });

    await removeSandboxes(SANDBOX_PREFIX);
    domain = await createTestDomain({ name: DOMAIN, kind: 'two-qcow2', start: true });
    vdaPath = domain.disks.find((disk) => disk.target === 'vda')!.path;
    vdbPath = domain.disks.find((disk) => disk.target === 'vdb')!.path;
  });

  afterAll(async () => {
    await virsh('destroy', CLONE).catch(() => undefined);
    await virsh('undefine', CLONE, '--nvram', '--checkpoints-metadata').catch(() => undefined);
    await removeSandboxes(SANDBOX_PREFIX).catch(() => undefined);
    await domain?.cleanup().catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function backup(config: string, mode: 'auto' | 'incremental') {
    const result = await runCli(['--config', config, 'backup', '--json', '--mode', mode, DOMAIN]);
    const summary = result.code === 0 ? (JSON.parse(result.stdout) as BackupSummary[])[0] : undefined;
    return { result, summary };
  }

  async function backupDir(backupId: string): Promise<string> {
    const [host] = await readdir(join(repo, 'hosts'));
    return join(repo, 'hosts', host, 'domains', DOMAIN, backupId);
  }

  async function readManifest(backupId: string): Promise<StoredManifest> {
    return JSON.parse(await readFile(join(await backupDir(backupId), 'manifest.json'), 'utf8')) as StoredManifest;
  }

  /** Decrypts every segment of a backup with the admin key and returns the archive's entry names and its domain XML. */
  async function readArchiveOf(backupId: string): Promise<{ names: string[]; domainXml: string }> {
    const dir = await backupDir(backupId);
    const manifest = await readManifest(backupId);
    const decryptionKeys = await openpgp.readPrivateKey({ armoredKey: await readFile(keys.adminSecret, 'utf8') });

    async function* plaintext(): AsyncGenerator<Uint8Array> {
      for (const segment of manifest.segments) {
        const message = await openpgp.readMessage({ binaryMessage: await readFile(join(dir, 'segments', segment.name)) });
        const { data } = await openpgp.decrypt({ message, decryptionKeys, format: 'binary' });
        yield data as Uint8Array;
      }
    }

    const names: string[] = [];
    let domainXml = '';
    for await (const entry of readArchive(plaintext())) {
      names.push(entry.name);
      if (entry.name === 'domain.xml' && entry.kind === 'file') domainXml = (await entry.read()).toString('utf8');
    }
    return { names, domainXml };
  }

  it('running backup stores only vda', async () => {
    const { result, summary } = await backup(excluding, 'auto');
    expect(result.code, result.stderr).toBe(0);
    expect(summary!.type).toBe('full');
    backups.running = summary;
    expect(logMessages(result.stderr)).toContain(`disk vdb (${vdbPath}) excluded from the backup by excludeDisks`);
    expect(result.stderr).toContain('excludeDisks names domain hvb-test-exclude-typo, which is not defined');

    const manifest = await readManifest(summary!.backupId);
    expect(manifest.disks.map((disk) => disk.target)).toEqual(['vda']);
    expect(manifest.excludedDisks).toEqual([{ target: 'vdb', format: 'qcow2', sourcePath: vdbPath }]);

    const archive = await readArchiveOf(summary!.backupId);
    expect(archive.names).toEqual(['hvbackup.json', 'domain.xml', 'disks/vda.img', 'checksums.json']);
    // The stored definition stays complete, so an in-place restore can keep vdb.
    expect(archive.domainXml).toContain(vdbPath);

    const checkpoint = await virsh('checkpoint-dumpxml', DOMAIN, `hvbackup-${summary!.backupId}`, '--no-domain');
    expect(checkpoint).toMatch(/<disk name='vda' checkpoint='bitmap'/);
    expect(checkpoint).toMatch(/<disk name='vdb' checkpoint='no'\/>/);
  });

  it('show lists the excluded disk', async () => {
    const result = await runCli(['--config', excluding, 'show', '--json', backups.running!.backupId]);
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout) as { excludedDisks: unknown[] };
    expect(summary.excludedDisks).toEqual([{ target: 'vdb', format: 'qcow2', sourcePath: vdbPath }]);
  });

  it('shut-off backup leaves vdb without bitmap', async () => {
    await virsh('destroy', DOMAIN);
    // Shutting QEMU down writes the persistent bitmaps into the images.
    expect(await bitmaps(vdaPath)).toEqual([`hvbackup-${backups.running!.backupId}`]);
    expect(await bitmaps(vdbPath)).toEqual([]);

    const { result, summary } = await backup(excluding, 'auto');
    expect(result.code, result.stderr).toBe(0);
    expect(summary!.type).toBe('incremental');
    expect(summary!.parent).toBe(backups.running!.backupId);
    backups.shutOff = summary;

    const manifest = await readManifest(summary!.backupId);
    expect(manifest.disks.map((disk) => disk.target)).toEqual(['vda']);
    expect(manifest.excludedDisks?.map((disk) => disk.target)).toEqual(['vdb']);
    expect(await bitmaps(vdaPath)).toEqual([`hvbackup-${summary!.backupId}`]);
    expect(await bitmaps(vdbPath)).toEqual([]);
  });

  it('included again, incremental rejected naming vdb', async () => {
    const { result } = await backup(including, 'incremental');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`disk vdb was excluded from backup ${backups.shutOff!.backupId}`);
  });

  it('included again, auto takes full backup', async () => {
    const { result, summary } = await backup(including, 'auto');
    expect(result.code, result.stderr).toBe(0);
    expect(summary!.type).toBe('full');
    expect(summary!.parent).toBeNull();
    backups.included = summary;
    expect(result.stderr).toContain(`disk vdb was excluded from backup ${backups.shutOff!.backupId}, so no earlier copy of it exists to build on`);

    const manifest = await readManifest(summary!.backupId);
    expect(manifest.disks.map((disk) => disk.target)).toEqual(['vda', 'vdb']);
    expect(manifest.excludedDisks).toBeUndefined();
    expect(await bitmaps(vdbPath)).toEqual([`hvbackup-${summary!.backupId}`]);
  });

  it('excluded again, auto takes full and clears vdb bitmap', async () => {
    const { result, summary } = await backup(excluding, 'auto');
    expect(result.code, result.stderr).toBe(0);
    expect(summary!.type).toBe('full');
    backups.excludedAgain = summary;
    expect(result.stderr).toContain(`disk vdb is excluded now but was in backup ${backups.included!.backupId}`);

    // The bitmap the previous backup added to vdb would otherwise grow with every write to it.
    expect(await bitmaps(vdbPath)).toEqual([]);
    expect(await bitmaps(vdaPath)).toEqual([`hvbackup-${summary!.backupId}`]);
  });

  it('running domain drops vdb bitmap with old checkpoint', async () => {
    await virsh('start', DOMAIN);
    const included = await backup(including, 'auto');
    expect(included.result.code, included.result.stderr).toBe(0);
    const checkpoint = await virsh('checkpoint-dumpxml', DOMAIN, `hvbackup-${included.summary!.backupId}`, '--no-domain');
    expect(checkpoint).toMatch(/<disk name='vdb' checkpoint='bitmap'/);

    const excluded = await backup(excluding, 'auto');
    expect(excluded.result.code, excluded.result.stderr).toBe(0);
    expect(excluded.summary!.type).toBe('full');
    await virsh('destroy', DOMAIN);

    expect(await bitmaps(vdbPath)).toEqual([]);
    // vda may still contain the bitmap that the earlier shut-off backup added
    // with qemu-img. libvirt has no record of it, and no backup removes it while QEMU runs.
    const vdaBitmaps = await bitmaps(vdaPath);
    expect(vdaBitmaps).toContain(`hvbackup-${excluded.summary!.backupId}`);
    expect(vdaBitmaps).not.toContain(`hvbackup-${included.summary!.backupId}`);

    // The domain stays shut off from here on, so vda keeps this content.
    vdaReference = `${vdaPath}.reference`;
    await copyFile(vdaPath, vdaReference);
  });

  it('clone has no vdb', async () => {
    const vdbBefore = await sha256(vdbPath);
    const storage = join(work, 'clone-disks');
    await mkdir(storage, { mode: 0o755 });

    const result = await runCli(['--config', excluding, 'restore', '--yes', DOMAIN, '--as', CLONE, '--storage-dir', storage]);
    expect(result.code, result.stderr).toBe(0);
    expect(logMessages(result.stderr)).toContain(`disk vdb was excluded from the backup; removed from the definition of domain ${CLONE}`);

    const clone = await domainInfo(CLONE);
    expect(clone.disks.map((disk) => disk.target)).toEqual(['vda']);
    expect(clone.disks[0].sourcePath).toBe(join(storage, `${CLONE}-vda.qcow2`));
    expect(await compareImages(vdaReference, clone.disks[0].sourcePath!)).toBeNull();
    expect(await sha256(vdbPath)).toBe(vdbBefore);
  });

  it('drill sandbox has no vdb', async () => {
    const vdbBefore = await sha256(vdbPath);
    const result = await runCli(['--config', excluding, 'drill', '--keep', '--json', DOMAIN]);
    expect(result.code, result.stderr).toBe(0);
    const [drill] = (JSON.parse(result.stdout) as { drills: { sandbox: string; result: string }[] }).drills;

    try {
      expect(drill.result).toBe('passed');
      expect(await domainsWithPrefix(SANDBOX_PREFIX)).toEqual([drill.sandbox]);
      const sandbox = await domainInfo(drill.sandbox);
      expect(sandbox.disks.map((disk) => disk.target)).toEqual(['vda']);
      expect(await virsh('dumpxml', drill.sandbox)).not.toContain(vdbPath);
    } finally {
      await removeSandboxes(SANDBOX_PREFIX);
      await rm(join(work, 's', drill.sandbox), { recursive: true, force: true });
    }
    expect(await sha256(vdbPath)).toBe(vdbBefore);
  });

  it('in-place restore keeps vdb image untouched', async () => {
    const vdbBefore = await sha256(vdbPath);
    await virsh('undefine', DOMAIN, '--checkpoints-metadata');
    await rm(vdaPath);

    const result = await runCli(['--config', excluding, 'restore', '--yes', DOMAIN]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`vdb\t${vdbPath}\t(excluded from the backup, existing image kept)`);

    expect(await compareImages(vdaReference, vdaPath)).toBeNull();
    expect(await sha256(vdbPath)).toBe(vdbBefore);
    const restored = await domainInfo(DOMAIN);
    expect(restored.disks.map((disk) => [disk.target, disk.sourcePath])).toEqual([
      ['vda', vdaPath],
      ['vdb', vdbPath],
    ]);

    // The kept disk must be usable, so QEMU must open both images.
    await virsh('start', DOMAIN);
    expect((await virsh('domstate', DOMAIN)).trim()).toBe('running');
    await virsh('destroy', DOMAIN);
  });

  it('in-place restore without vdb image refused', async () => {
    await virsh('undefine', DOMAIN, '--checkpoints-metadata');
    await rm(vdaPath);
    await rename(vdbPath, `${vdbPath}.aside`);

    const result = await runCli(['--config', excluding, 'restore', '--yes', DOMAIN]);
    expect(result.code).toBe(7);
    expect(result.stderr).toContain(`disk vdb was excluded from the backup, and its image ${vdbPath} does not exist`);
    expect(result.stderr).toContain('--drop-excluded-disks');

    // Nothing was promoted, so there is neither a definition nor a restored vda.
    await expect(virsh('dominfo', DOMAIN)).rejects.toThrow();
    expect(await exists(vdaPath)).toBe(false);
  });

  it('drop flag restores without vdb', async () => {
    const result = await runCli(['--config', excluding, 'restore', '--yes', '--drop-excluded-disks', DOMAIN]);
    expect(result.code, result.stderr).toBe(0);
    expect(logMessages(result.stderr)).toContain(`disk vdb was excluded from the backup; removed from the definition of domain ${DOMAIN}`);

    const restored = await domainInfo(DOMAIN);
    expect(restored.disks.map((disk) => disk.target)).toEqual(['vda']);
    expect(await compareImages(vdaReference, vdaPath)).toBeNull();
    expect(await exists(vdbPath)).toBe(false);
  });
});
