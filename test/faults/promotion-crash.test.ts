/**
 * Restores killed with SIGKILL during promotion, the step that changes the
 * host. Each trial starts a real restore with the CLI and polls until a file
 * of the promotion appears: the restored disk at its destination (a clone)
 * or the replaced disk renamed aside (--replace). It kills the process at
 * that moment, so the kill lands after the first move and before the
 * promotion ends: sometimes before `virsh define` starts, sometimes while it
 * runs, so both ways of recovery run. Half the trials kill only the hvbackup
 * process, so a `virsh define` already started runs on. The other half kill
 * its whole process group, virsh included.
 *
 * `hvbackup recover` runs at once, without waiting for that virsh. The
 * invariant afterwards: the host is as it was before the restore, or the
 * restore is complete. Nothing in between, no set-aside file and no journal
 * remain, and the next restore succeeds. A last test plants a journal and
 * checks that backups of its domain are rejected until recover settles it.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { CheckResult } from '../../src/doctor/check.js';
import { createJournal, journalPaths, JOURNAL_FORMAT, JOURNAL_VERSION } from '../../src/restore/promotion-journal.js';
import { runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { writeTestConfig } from '../support/config.js';
import { createTestDomain, removeTestDomain, virsh, type TestDomain } from '../support/domains.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';
import { checkpointNames, compareDisks, definedDomains, entries, sleep, spawnCli, waitForProcessGroup, type CliProcess } from './support.js';

const execFileAsync = promisify(execFile);
const enabled = available('libvirt', 'qemu-img');
const HOST = 'fault-host';
const CLONE = 'hvb-test-fault-promo-clone';
const CLONE_TRIALS = 6;
const REPLACE_TRIALS = 4;
/** How often the test looks for the file that marks the kill moment. */
const POLL_MS = 2;

type KillScope = 'process' | 'group';

interface RecoverOutput {
  outcomes: { domain: string; result: string; actions: string[] }[];
}

/** Polls until `found` returns true, or returns false once the process has exited without it. */
async function pollUntil(victim: CliProcess, found: () => boolean, timeoutMs = 240_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (found()) return true;
    if (victim.child.exitCode !== null || victim.child.signalCode !== null) return found();
    await sleep(POLL_MS);
  }
  throw new Error(`nothing to kill at within ${timeoutMs} ms`);
}

function kill(victim: CliProcess, scope: KillScope): void {
  if (scope === 'group') process.kill(-victim.child.pid!, 'SIGKILL');
  else victim.child.kill('SIGKILL');
}

async function sha256(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

async function inactiveXmlDigest(domain: string): Promise<string> {
  return createHash('sha256').update(await virsh('dumpxml', '--inactive', '--security-info', domain)).digest('hex');
}

function asideFiles(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.includes('.hvbackup-replaced-'));
}

describe.skipIf(!enabled)('restore killed during promotion', () => {
  let work: string;
  let keys: TestKeys;
  const domains: TestDomain[] = [];

  beforeAll(async () => {
    // Short paths: the NBD socket paths under scratchDir must stay within 107 bytes.
    work = await mkdtemp(join(tmpdir(), 'hvbp-'));
    keys = await createTestKeys(work);
  });

  afterAll(async () => {
    for (const domain of domains) await domain.cleanup().catch(() => undefined);
    await removeTestDomain(CLONE).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  async function setUp(name: string, running: boolean) {
    const dir = await mkdtemp(join(work, 'd-'));
    const config = await writeTestConfig(dir, {
      keys,
      repository: { type: 'local', path: join(dir, 'repo') },
      extra: { host: HOST, segmentSize: '1MiB' },
    });
    const domain = await createTestDomain({ name, kind: 'single', start: running });
    domains.push(domain);
    return { dir, config, domain, promotions: join(dir, 'state', 'promotions'), locks: join(dir, 'state', 'locks') };
  }

  async function recover(config: string): Promise<{ code: number | null; stderr: string; output: RecoverOutput | undefined }> {
    const result = await runCli(['--config', config, 'recover', '--json']);
    const output = result.code === 0 ? (JSON.parse(result.stdout) as RecoverOutput) : undefined;
    return { code: result.code, stderr: result.stderr, output };
  }

  it('clone restore killed after disk placed', async () => {
    const { dir, config, domain, promotions, locks } = await setUp('hvb-test-fault-promo-source', false);
    const storageDir = join(dir, 'clone');
    const staging = join(dir, 'staging');
    const cloneDisk = join(storageDir, `${CLONE}-vda.qcow2`);
    const backup = await runCli(['--config', config, 'backup', domain.name]);
    expect(backup.code, backup.stderr).toBe(0);
    const restoreArgs = ['--config', config, 'restore', '--yes', '--as', CLONE, '--storage-dir', storageDir, domain.name];

    const problems: string[] = [];
    const results: string[] = [];
    let doctorChecked = false;

    for (let trial = 0; trial < CLONE_TRIALS; trial += 1) {
      const scope: KillScope = trial % 2 === 0 ? 'process' : 'group';
      const label = `trial ${trial} (kill ${scope})`;
      await removeTestDomain(CLONE);
      await rm(storageDir, { recursive: true, force: true });

      const victim = spawnCli(restoreArgs);
      const placed = await pollUntil(victim, () => existsSync(cloneDisk));
      kill(victim, scope);
      const outcome = await victim.exited;
      if (!placed || outcome.code !== null) {
        problems.push(`${label}: the restore ended (status ${outcome.code}) before its disk appeared: ${outcome.stderr.slice(-1500)}`);
        await waitForProcessGroup(victim);
        continue;
      }

      if (!doctorChecked) {
        doctorChecked = true;
        const doctor = await runCli(['--config', config, 'doctor', '--json', domain.name], { timeoutMs: 120_000 });
        const lines = (JSON.parse(doctor.stdout) as { results: CheckResult[] }).results.filter((result) => result.name === 'restore.promotions');
        expect(doctor.code).toBe(1);
        expect(lines).toHaveLength(1);
        expect(lines[0]!.status).toBe('fail');
        expect(lines[0]!.detail).toContain(CLONE);
        expect(lines[0]!.fix).toContain('hvbackup recover');
      }

      // No wait for the killed run's virsh: recovery must cope with a define still in flight.
      const recovery = await recover(config);
      await waitForProcessGroup(victim);
      if (recovery.code !== 0) {
        problems.push(`${label}: recover exited ${recovery.code}: ${recovery.stderr.slice(-1500)}`);
        continue;
      }
      const settled = recovery.output!.outcomes.find((entry) => entry.domain === CLONE)?.result ?? 'none';
      results.push(settled);

      const defined = (await definedDomains()).includes(CLONE);
      if (settled === 'completed') {
        if (!defined) problems.push(`${label}: recover reported completed, but ${CLONE} is not defined`);
        const difference = await compareDisks(domain.disks[0]!.path, cloneDisk);
        if (difference !== null) problems.push(`${label}: completed clone has a differing disk: ${difference}`);
        if (!recovery.stderr.includes(`finished the interrupted promotion of domain ${CLONE}`)) problems.push(`${label}: no log line about finishing the promotion`);
      } else if (settled === 'rolled-back') {
        if (defined) problems.push(`${label}: recover rolled back, but ${CLONE} is defined`);
        const left = await entries(storageDir);
        if (left.length > 0) problems.push(`${label}: rolled back, but ${storageDir} holds ${left.join(', ')}`);
        if (!recovery.stderr.includes(`rolled back the interrupted promotion of domain ${CLONE}`)) problems.push(`${label}: no log line about the rollback`);
      } else {
        problems.push(`${label}: recover settled nothing for ${CLONE}: ${JSON.stringify(recovery.output)}`);
      }
      const journals = await entries(promotions);
      if (journals.length > 0) problems.push(`${label}: journal directories left: ${journals.join(', ')}`);
      const heldLocks = await entries(locks);
      if (heldLocks.length > 0) problems.push(`${label}: locks left: ${heldLocks.join(', ')}`);

      // The next restore must succeed from here and leave no staging files.
      await removeTestDomain(CLONE);
      await rm(storageDir, { recursive: true, force: true });
      const next = await runCli(restoreArgs);
      if (next.code !== 0) problems.push(`${label}: next restore exited ${next.code}: ${next.stderr.slice(-1500)}`);
      const staged = await entries(staging);
      if (staged.length > 0) problems.push(`${label}: staging holds ${staged.join(', ')}`);
    }

    expect(problems).toEqual([]);
    expect(results).toHaveLength(CLONE_TRIALS);
    console.info(`clone promotion kills settled as: ${results.join(', ')}`);
  }, 900_000);

  it('replace restore killed while disk set aside', async () => {
    const { dir, config, domain, promotions } = await setUp('hvb-test-fault-promo-replace', true);
    const disk = domain.disks[0]!.path;
    const reference = join(dir, 'backed-up.qcow2');

    const problems: string[] = [];
    const results: string[] = [];

    for (let trial = 0; trial < REPLACE_TRIALS; trial += 1) {
      const scope: KillScope = trial % 2 === 0 ? 'process' : 'group';
      const label = `trial ${trial} (kill ${scope})`;

      // A backup of the running domain gives it a libvirt checkpoint, which a completed --replace drops.
      if (trial > 0) await virsh('start', domain.name);
      const backup = await runCli(['--config', config, 'backup', domain.name]);
      expect(backup.code, backup.stderr).toBe(0);
      await virsh('destroy', domain.name);
      await copyFile(disk, reference);

      // Change the disk after the backup, so the old and the restored content differ.
      await execFileAsync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x${(0x60 + trial).toString(16)} 2M 64k`, disk]);
      const before = { disk: await sha256(disk), xml: await inactiveXmlDigest(domain.name), checkpoints: await checkpointNames(domain.name) };
      expect(before.checkpoints.length).toBeGreaterThan(0);
      expect(await compareDisks(reference, disk)).not.toBeNull();

      const victim = spawnCli(['--config', config, 'restore', '--yes', '--replace', domain.name]);
      const setAside = await pollUntil(victim, () => asideFiles(domain.dir).length > 0);
      kill(victim, scope);
      const outcome = await victim.exited;
      if (!setAside || outcome.code !== null) {
        problems.push(`${label}: the restore ended (status ${outcome.code}) before the disk was set aside: ${outcome.stderr.slice(-1500)}`);
        await waitForProcessGroup(victim);
        continue;
      }

      const recovery = await recover(config);
      await waitForProcessGroup(victim);
      if (recovery.code !== 0) {
        problems.push(`${label}: recover exited ${recovery.code}: ${recovery.stderr.slice(-1500)}`);
        continue;
      }
      const settled = recovery.output!.outcomes.find((entry) => entry.domain === domain.name)?.result ?? 'none';
      results.push(settled);

      const left = asideFiles(domain.dir);
      if (left.length > 0) problems.push(`${label}: set-aside files left: ${left.join(', ')}`);
      const journals = await entries(promotions);
      if (journals.length > 0) problems.push(`${label}: journal directories left: ${journals.join(', ')}`);
      if (!(await definedDomains()).includes(domain.name)) problems.push(`${label}: ${domain.name} is no longer defined`);

      const checkpoints = await checkpointNames(domain.name);
      if (settled === 'rolled-back') {
        if ((await sha256(disk)) !== before.disk) problems.push(`${label}: rolled back, but the disk differs from the old one`);
        if ((await inactiveXmlDigest(domain.name)) !== before.xml) problems.push(`${label}: rolled back, but the definition changed`);
        if (JSON.stringify(checkpoints) !== JSON.stringify(before.checkpoints)) problems.push(`${label}: rolled back, but checkpoints are ${checkpoints.join(', ') || 'none'}, before ${before.checkpoints.join(', ')}`);
      } else if (settled === 'completed') {
        const difference = await compareDisks(reference, disk);
        if (difference !== null) problems.push(`${label}: completed, but the disk differs from the backup: ${difference}`);
        if (checkpoints.length > 0) problems.push(`${label}: completed, but old checkpoints remain: ${checkpoints.join(', ')}`);
      } else {
        problems.push(`${label}: recover settled nothing for ${domain.name}: ${JSON.stringify(recovery.output)}`);
      }

      // The next restore replaces the disk again and must succeed.
      const next = await runCli(['--config', config, 'restore', '--yes', '--replace', domain.name]);
      if (next.code !== 0) problems.push(`${label}: next restore exited ${next.code}: ${next.stderr.slice(-1500)}`);
      else if ((await compareDisks(reference, disk)) !== null) problems.push(`${label}: next restore left a disk that differs from the backup`);
    }

    expect(problems).toEqual([]);
    expect(results).toHaveLength(REPLACE_TRIALS);
    console.info(`replace promotion kills settled as: ${results.join(', ')}`);
  }, 900_000);

  it('backup rejected until journal settled', async () => {
    const { dir, config, domain, promotions } = await setUp('hvb-test-fault-promo-pending', false);
    const placed = join(dir, 'placed.qcow2');
    await copyFile(domain.disks[0]!.path, placed);
    // A restore of this domain killed after placing one new file, before define.
    await createJournal(journalPaths(join(dir, 'state'), domain.name), {
      format: JOURNAL_FORMAT,
      version: JOURNAL_VERSION,
      domain: domain.name,
      uuid: '',
      pid: 999_999_999,
      startedAt: new Date().toISOString(),
      step: 'moving',
      files: [{ staged: join(dir, 'staging', 'vdb.qcow2'), destination: placed, aside: null }],
      createdDirectories: [],
      checkpoints: [],
      domainXml: domain.xml,
    });

    const rejected = await runCli(['--config', config, 'backup', domain.name]);
    expect(rejected.code).toBe(7);
    expect(rejected.stderr).toContain('unfinished restore promotion');
    expect(rejected.stderr).toContain('hvbackup recover');

    const recovery = await recover(config);
    expect(recovery.code, recovery.stderr).toBe(0);
    expect(recovery.output!.outcomes).toEqual([{ domain: domain.name, result: 'rolled-back', actions: [`removed ${placed}`] }]);
    expect(existsSync(placed)).toBe(false);
    expect(await entries(promotions)).toEqual([]);

    const backup = await runCli(['--config', config, 'backup', domain.name]);
    expect(backup.code, backup.stderr).toBe(0);
  }, 300_000);
});
