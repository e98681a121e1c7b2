/**
 * hvbackup doctor through the built command line against the real libvirtd:
 * a working setup after one real backup passes, and a setup with five
 * planted faults fails with one FAIL line and fix for each.
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { CheckResult } from '../../src/doctor/check.js';
import { runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { writeTestConfig } from '../support/config.js';
import { createTestDomain, removeTestDomain, virsh, type TestDomain } from '../support/domains.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';

const execFileAsync = promisify(execFile);
const enabled = available('libvirt', 'qemu-img');

interface DoctorOutput {
  results: CheckResult[];
  counts: Record<string, number>;
}

async function runDoctor(config: string, domains: string[]): Promise<{ code: number | null; output: DoctorOutput; stderr: string }> {
  const result = await runCli(['--config', config, 'doctor', '--json', ...domains], { timeoutMs: 120_000 });
  return { code: result.code, output: JSON.parse(result.stdout) as DoctorOutput, stderr: result.stderr };
}

function find(output: DoctorOutput, name: string): CheckResult {
  const result = output.results.find((entry) => entry.name === name);
  if (result === undefined) throw new Error(`no check named "${name}" in: ${output.results.map((entry) => entry.name).join(', ')}`);
  return result;
}

/** Defines, without starting, a domain whose only disk is a vmdk image. */
async function defineVmdkDomain(name: string, dir: string): Promise<void> {
  const image = join(dir, 'vda.vmdk');
  await execFileAsync('qemu-img', ['create', '-q', '-f', 'vmdk', image, '16M']);
  const xml = `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='vmdk'/>
      <source file='${image}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
`;
  const xmlPath = join(dir, 'vmdk.xml');
  await writeFile(xmlPath, xml);
  await removeTestDomain(name);
  await virsh('define', xmlPath);
}

describe.skipIf(!enabled)('doctor on libvirtd', () => {
  let work: string;
  let keys: TestKeys;
  let domain: TestDomain;
  const vmdkName = 'hvb-test-doctor-vmdk';

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hvb-doctor-'));
    keys = await createTestKeys(work);
    domain = await createTestDomain({ name: 'hvb-test-doctor-good', kind: 'single', start: true });
  });

  afterAll(async () => {
    await domain?.cleanup().catch(() => undefined);
    await removeTestDomain(vmdkName).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  it('doctor passes a working setup', async () => {
    const dir = await mkdtemp(join(work, 'good-'));
    const config = await writeTestConfig(dir, { keys, repository: { type: 'local', path: join(dir, 'repo') } });
    const backup = await runCli(['--config', config, 'backup', domain.name]);
    expect(backup.code, backup.stderr).toBe(0);

    const { code, output, stderr } = await runDoctor(config, [domain.name]);
    expect(code, stderr).toBe(0);
    expect(output.counts.fail).toBe(0);
    for (const result of output.results) {
      expect(['ok', 'info', 'warn'], `${result.name}: ${result.detail}`).toContain(result.status);
      if (result.status === 'warn') expect(result.fix, result.name).toBeTruthy();
    }
    expect(find(output, 'repository.marker').status).toBe('ok');
    expect(find(output, 'keys.signing-key').status).toBe('ok');
    expect(find(output, 'keys.recipients').status).toBe('ok');
    expect(find(output, `domain ${domain.name}: disk vda`).status).toBe('ok');
    expect(find(output, `domain ${domain.name}: checkpoints`).status).toBe('ok');
    expect(find(output, 'dirs.scratch-qemu').status).toBe('ok');
  });

  it('doctor reports each planted fault', async () => {
    const dir = await mkdtemp(join(work, 'bad-'));
    // The same keys, but the secret host key in a copy that everyone may read.
    const openHostKey = join(dir, 'host-key-open.asc');
    await copyFile(keys.hostSecret, openHostKey);
    await chmod(openHostKey, 0o644);
    const badKeys = { ...keys, hostSecret: openHostKey };
    const notAKey = join(dir, 'not-a-key.asc');
    await writeFile(notAKey, 'this is not an OpenPGP key\n');
    const locked = join(dir, 'locked');
    await mkdir(locked, { mode: 0o700 });
    await chmod(locked, 0o700);
    const missingRepository = join(dir, 'no-such-repo');
    await defineVmdkDomain(vmdkName, dir);

    const config = await writeTestConfig(dir, {
      keys: badKeys,
      repository: { type: 'local', path: missingRepository },
      extra: { recipients: [notAKey], scratchDir: join(locked, 'scratch') },
      createRepository: false,
    });

    const { code, output, stderr } = await runDoctor(config, [vmdkName]);
    expect(code, stderr).toBe(1);

    const keyFile = find(output, 'keys.signing-key-file');
    expect(keyFile.status).toBe('fail');
    expect(keyFile.fix).toBe(`chmod 600 ${openHostKey}`);

    const recipient = find(output, `keys.recipient ${notAKey}`);
    expect(recipient.status).toBe('fail');
    expect(recipient.detail).toContain('does not contain a valid OpenPGP key');
    expect(recipient.fix).toContain('gpg --export');

    const qemu = find(output, 'dirs.scratch-qemu');
    expect(qemu.status).toBe('fail');
    expect(qemu.detail).toContain(`cannot enter ${locked}`);
    expect(qemu.fix).toContain(`chmod o+x ${locked}`);

    const disk = find(output, `domain ${vmdkName}: disk vda`);
    expect(disk.status).toBe('fail');
    expect(disk.detail).toContain('format vmdk');
    expect(disk.fix).toContain('qemu-img convert -f vmdk -O qcow2');

    const repository = find(output, 'repository.path');
    expect(repository.status).toBe('fail');
    expect(repository.fix).toContain(`mkdir -p ${missingRepository}`);
  });

  it('doctor honours excludeDisks', async () => {
    const dir = await mkdtemp(join(work, 'exclude-'));
    await defineVmdkDomain(vmdkName, dir);
    const config = await writeTestConfig(dir, {
      keys,
      repository: { type: 'local', path: join(dir, 'repo') },
      extra: { excludeDisks: { [vmdkName]: ['vda', 'vdz'], 'hvb-test-doctor-typo': ['vdb'] } },
    });

    const { output, stderr } = await runDoctor(config, [vmdkName]);

    // The excluded vmdk disk is never read, so its format is no failure.
    expect(output.results.find((result) => result.name === `domain ${vmdkName}: disk vda`), stderr).toBeUndefined();
    const disks = find(output, `domain ${vmdkName}: disks`);
    expect(disks.detail).toContain('excludeDisks leaves out vda');
    const target = find(output, `domain ${vmdkName}: excludeDisks`);
    expect(target.status).toBe('warn');
    expect(target.detail).toContain('disk vdz, which domain');
    const unknown = find(output, 'config.excludeDisks');
    expect(unknown.status).toBe('warn');
    expect(unknown.detail).toContain('hvb-test-doctor-typo');
    expect(unknown.fix).toContain('list --all');
  });

  it('doctor text output has fix lines', async () => {
    const dir = await mkdtemp(join(work, 'text-'));
    const config = await writeTestConfig(dir, { keys, repository: { type: 'local', path: join(dir, 'absent') }, createRepository: false });
    const result = await runCli(['--config', config, 'doctor', domain.name]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^FAIL {2}repository\.path: /m);
    expect(result.stdout).toMatch(/^ {6}fix: .*mkdir -p /m);
    expect(result.stdout).toMatch(/^1 failed, \d+ warnings, \d+ passed$/m);
  });
});
