/**
 * Drills against real libvirt and a local directory repository: one test
 * domain is backed up once, then drilled with different configurations.
 * Every drill must leave the original domain as it was and, unless kept,
 * no sandbox domain and no files in the sandbox directory.
 */
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, open, readdir, readFile, rm, chmod } from 'node:fs/promises';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { writeTestConfig } from '../support/config.js';
import { createTestDomain, virsh, type TestDomain } from '../support/domains.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';
import { domainsWithPrefix, removeSandboxes, sandboxEntries, spawnCli } from './support.js';

const DOMAIN = 'hvb-test-drill-a';
const SANDBOX_PREFIX = `drill-${DOMAIN}-`;

interface DrillJson {
  domain: string;
  sandbox: string;
  backupId: string | null;
  rpoSeconds: number | null;
  restoreSeconds: number | null;
  rtoSeconds: number | null;
  bootCheck: { running: boolean; runningSeconds: number | null; guestAgent: string };
  targets: { rpoSeconds: number; rtoSeconds: number };
  result: string;
  error: string | null;
  kept: boolean;
  removeCommands: string[];
}

describe.skipIf(!available('libvirt', 'qemu-img'))('hvbackup drill', () => {
  let work: string;
  let keys: TestKeys;
  let domain: TestDomain;
  let sandboxDir: string;
  let metricsFile: string;
  let originalXml: string;
  let originalChecksums: string[];

  async function configWith(name: string, drill: Record<string, unknown>, repository = join(work, 'repo')): Promise<string> {
    const dir = join(work, name);
    await mkdir(dir, { recursive: true });
    return writeTestConfig(dir, {
      keys,
      repository: { type: 'local', path: repository },
      extra: { drill: { sandboxDir, bootCheck: { runningTimeoutSeconds: 30 }, ...drill } },
    });
  }

  async function checksums(): Promise<string[]> {
    return Promise.all(domain.disks.map(async (disk) => createHash('sha256').update(await readFile(disk.path)).digest('hex')));
  }

  async function expectNoSandbox(): Promise<void> {
    expect(await domainsWithPrefix(SANDBOX_PREFIX)).toEqual([]);
    expect(await sandboxEntries(sandboxDir)).toEqual([]);
  }

  async function expectOriginalUnchanged(): Promise<void> {
    expect(await virsh('dumpxml', '--inactive', DOMAIN)).toBe(originalXml);
    expect(await checksums()).toEqual(originalChecksums);
  }

  beforeAll(async () => {
    // A short path: restore's NBD sockets live below the sandbox directory, and a UNIX socket path must stay below 108 bytes.
    work = await mkdtemp('/tmp/hvbd-');
    // QEMU runs as another user and must reach the sandbox disks below this directory.
    await chmod(work, 0o711);
    sandboxDir = join(work, 's');
    metricsFile = join(work, 'textfile', 'hvbackup-drill.prom');
    keys = await createTestKeys(work);
    await removeSandboxes(SANDBOX_PREFIX);
    domain = await createTestDomain({ name: DOMAIN, kind: 'single', start: true });

    const base = await configWith('base', {});
    const backup = await runCli(['--config', base, 'backup', DOMAIN]);
    expect(backup.code, backup.stderr).toBe(0);

    // Shut off, the original's disks cannot change, so their checksums show whether a drill wrote to them.
    await virsh('destroy', DOMAIN);
    originalXml = await virsh('dumpxml', '--inactive', DOMAIN);
    originalChecksums = await checksums();
  });

  afterAll(async () => {
    await removeSandboxes(SANDBOX_PREFIX).catch(() => undefined);
    await domain?.cleanup().catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('drill of backed-up domain passes', async () => {
    const config = await configWith('passes', { metricsFile });
    const run = await runCli(['--config', config, 'drill', '--json', DOMAIN]);
    expect(run.code, run.stderr).toBe(0);

    const [drill] = (JSON.parse(run.stdout) as { drills: DrillJson[] }).drills;
    expect(drill.result).toBe('passed');
    expect(drill.error).toBeNull();
    expect(drill.sandbox).toMatch(new RegExp(`^${SANDBOX_PREFIX}\\d{8}T\\d{6}$`));
    expect(drill.backupId).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
    expect(drill.rpoSeconds).toBeGreaterThanOrEqual(0);
    expect(drill.rpoSeconds).toBeLessThan(300);
    expect(drill.restoreSeconds).toBeGreaterThan(0);
    expect(drill.rtoSeconds).toBeGreaterThanOrEqual(drill.restoreSeconds!);
    expect(drill.bootCheck.running).toBe(true);
    expect(drill.bootCheck.guestAgent).toBe('not-checked');

    await expectNoSandbox();
    await expectOriginalUnchanged();
  });

  it('drill writes the metrics textfile', async () => {
    const text = await readFile(metricsFile, 'utf8');
    expect(text).toContain('# TYPE hvbackup_drill_success gauge');
    expect(text).toMatch(new RegExp(`^hvbackup_drill_success\\{host="[^"]+",domain="${DOMAIN}"\\} 1$`, 'm'));
    expect(text).toMatch(new RegExp(`^hvbackup_drill_rto_seconds\\{host="[^"]+",domain="${DOMAIN}"\\} [0-9.]+$`, 'm'));
    expect(await readdir(join(work, 'textfile'))).toEqual(['hvbackup-drill.prom']);
  });

  it('drill misses a tiny RTO target', async () => {
    const config = await configWith('rto', { domains: { [DOMAIN]: { rtoSeconds: 0.001 } } });
    const run = await runCli(['--config', config, 'drill', DOMAIN]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`drill of ${DOMAIN} missed the RTO target: measured [0-9.]+ s, target 0\\.001 s`));
    expect(run.stdout).toMatch(new RegExp(`^${DOMAIN} .*target-missed$`, 'm'));
    await expectNoSandbox();
  });

  it('drill fails when guest agent is silent', async () => {
    const config = await configWith('agent', { bootCheck: { runningTimeoutSeconds: 30, guestAgent: true, guestAgentTimeoutSeconds: 2 } });
    const run = await runCli(['--config', config, 'drill', '--json', DOMAIN]);
    expect(run.code).toBe(1);

    const [drill] = (JSON.parse(run.stdout) as { drills: DrillJson[] }).drills;
    expect(drill.result).toBe('failed');
    expect(drill.bootCheck.running).toBe(true);
    expect(drill.bootCheck.guestAgent).toBe('no-answer');
    expect(drill.error).toContain(`drill of ${DOMAIN} failed the boot check: guest agent did not answer guest-ping within 2 s`);
    await expectNoSandbox();
  });

  it('drill with --keep leaves the sandbox', async () => {
    const config = await configWith('keep', {});
    const run = await runCli(['--config', config, 'drill', '--keep', '--json', DOMAIN]);
    expect(run.code, run.stderr).toBe(0);

    const [drill] = (JSON.parse(run.stdout) as { drills: DrillJson[] }).drills;
    try {
      expect(drill.kept).toBe(true);
      expect(await domainsWithPrefix(SANDBOX_PREFIX)).toEqual([drill.sandbox]);
      expect((await virsh('domstate', drill.sandbox)).trim()).toBe('running');
      expect(await virsh('dumpxml', drill.sandbox)).not.toContain('<interface');
      expect(drill.removeCommands).toContain(`rm -rf ${join(sandboxDir, drill.sandbox)}`);
    } finally {
      await removeSandboxes(SANDBOX_PREFIX);
      await rm(join(sandboxDir, drill.sandbox), { recursive: true, force: true });
    }
    await expectOriginalUnchanged();
  });

  it('interrupted drill leaves no sandbox', async () => {
    const config = await configWith('interrupt', {});
    const cli = spawnCli(['--config', config, 'drill', DOMAIN]);
    await cli.waitForLog((event) => event.phase === 'restore-request');
    cli.child.kill('SIGTERM');

    const result = await cli.exit;
    expect(result.code, result.stderr).toBe(130);
    await expectNoSandbox();
    await expectOriginalUnchanged();
  });

  it('drill of tampered backup fails', async () => {
    const tamperedRepo = join(work, 'tampered-repo');
    await cp(join(work, 'repo'), tamperedRepo, { recursive: true });
    await flipByteInFirstSegment(tamperedRepo);

    const config = await configWith('tampered', {}, tamperedRepo);
    const run = await runCli(['--config', config, 'drill', '--json', DOMAIN]);
    expect(run.code).toBe(1);

    const [drill] = (JSON.parse(run.stdout) as { drills: DrillJson[] }).drills;
    expect(drill.result).toBe('failed');
    expect(drill.error).toMatch(/segment/);
    expect(drill.rtoSeconds).toBeNull();
    await expectNoSandbox();
    await expectOriginalUnchanged();
  });
});

/** Inverts one byte in the middle of the first segment file of the only backup in `repo`. */
async function flipByteInFirstSegment(repo: string): Promise<void> {
  const hosts = await readdir(join(repo, 'hosts'));
  const backupDir = join(repo, 'hosts', hosts[0], 'domains', DOMAIN);
  const [backupId] = await readdir(backupDir);
  const segmentsDir = join(backupDir, backupId, 'segments');
  const [segment] = (await readdir(segmentsDir)).sort();

  const file = await open(join(segmentsDir, segment), 'r+');
  try {
    const { size } = await file.stat();
    const position = Math.floor(size / 2);
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, position);
    byte[0] ^= 0xff;
    await file.write(byte, 0, 1, position);
  } finally {
    await file.close();
  }
}
