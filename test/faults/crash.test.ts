/**
 * Crash safety: the backup and restore processes are killed with SIGKILL at
 * seeded random moments, so no cleanup code runs. Afterwards the next run
 * must succeed and clean up, and nothing a crash left may be mistaken for
 * data:
 * - every committed manifest's segments exist with the recorded size;
 * - after the next backup no libvirt job runs, and no checkpoint or bitmap
 *   `hvbackup-<id>` exists without a committed manifest for that id;
 * - the latest backup restores as a clone with disks identical to the source;
 * - after a killed restore and `hvbackup recover`, the clone either is
 *   defined and whole or is absent with no files, no promotion journal
 *   remains, and the next restore leaves no staging files.
 *
 * The delay before each kill is drawn from 0 to the measured duration of a
 * normal run, with segmentSize 1 MiB so a run has several segment uploads.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { writeTestConfig } from '../support/config.js';
import { createTestDomain, removeTestDomain, type TestDomain } from '../support/domains.js';
import { seededRandom } from '../support/fault-proxy.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';
import {
  checkpointNames,
  compareDisks,
  definedDomains,
  domainJobType,
  entries,
  imageBitmapNames,
  inspectLocalRepository,
  sleep,
  spawnCli,
  waitForProcessGroup,
} from './support.js';

const enabled = available('libvirt', 'qemu-img');
const HOST = 'fault-host';
const SEED = 0xc0ffee;
const BACKUP_TRIALS_PER_STATE = 15;
const RESTORE_TRIALS = 10;
/** A restore check after every Nth backup trial keeps the file at about 4 minutes on an idle 2-core machine. */
const RESTORE_CHECK_EVERY = 5;

describe.skipIf(!enabled)('processes killed with SIGKILL', () => {
  let work: string;
  let keys: TestKeys;
  const domains: TestDomain[] = [];
  const random = seededRandom(SEED);

  beforeAll(async () => {
    // Short paths: the NBD socket paths under scratchDir must stay within 107 bytes.
    work = await mkdtemp(join(tmpdir(), 'hvbf-'));
    keys = await createTestKeys(work);
  });

  afterAll(async () => {
    for (const domain of domains) await domain.cleanup().catch(() => undefined);
    await removeTestDomain('hvb-test-fault-crash-clone').catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  async function setUp(name: string, running: boolean) {
    const dir = await mkdtemp(join(work, 'd-'));
    const repository = join(dir, 'repo');
    const config = await writeTestConfig(dir, {
      keys,
      repository: { type: 'local', path: repository },
      extra: { host: HOST, segmentSize: '1MiB' },
    });
    const domain = await createTestDomain({ name, kind: 'single', start: running });
    domains.push(domain);
    return { dir, repository, config, domain };
  }

  /** Restores the latest backup as a clone and compares its disk with the source; returns the differences. */
  async function restoreAndCompare(config: string, domain: TestDomain, storageDir: string): Promise<string[]> {
    const clone = 'hvb-test-fault-crash-clone';
    await removeTestDomain(clone);
    await rm(storageDir, { recursive: true, force: true });

    const restore = await runCli(['--config', config, 'restore', '--yes', '--as', clone, '--storage-dir', storageDir, domain.name]);
    if (restore.code !== 0) return [`restore exited ${restore.code}: ${restore.stderr.slice(-2000)}`];

    const problems: string[] = [];
    for (const disk of domain.disks) {
      const difference = await compareDisks(disk.path, join(storageDir, `${clone}-${disk.target}.qcow2`));
      if (difference !== null) problems.push(`disk ${disk.target}: ${difference}`);
    }
    await removeTestDomain(clone);
    await rm(storageDir, { recursive: true, force: true });
    return problems;
  }

  it.each([
    ['running', true],
    ['shut-off', false],
  ] as const)('backup of %s domain killed', async (label, running) => {
    const { dir, repository, config, domain } = await setUp(`hvb-test-fault-crash-${label}`, running);

    const started = Date.now();
    const first = await runCli(['--config', config, 'backup', domain.name]);
    const normalMs = Date.now() - started;
    expect(first.code, first.stderr).toBe(0);

    const failures: string[] = [];
    const repositoryProblems: string[] = [];
    const jobs: string[] = [];
    const orphans: string[] = [];
    const restoreProblems: string[] = [];
    let killedBeforeExit = 0;

    for (let trial = 0; trial < BACKUP_TRIALS_PER_STATE; trial += 1) {
      const delay = Math.floor(random() * normalMs);
      const victim = spawnCli(['--config', config, 'backup', domain.name]);
      await sleep(delay);
      if (victim.child.exitCode === null) killedBeforeExit += 1;
      victim.child.kill('SIGKILL');
      await victim.exited;

      const next = await runCli(['--config', config, 'backup', domain.name]);
      if (next.code !== 0) failures.push(`trial ${trial} (kill after ${delay} ms): next backup exited ${next.code}: ${next.stderr.slice(-1500)}`);

      const backups = await inspectLocalRepository(repository, HOST, domain.name);
      repositoryProblems.push(...backups.flatMap((backup) => backup.problems.map((problem) => `trial ${trial}: ${problem}`)));

      const job = await domainJobType(domain.name);
      if (job !== 'None') jobs.push(`trial ${trial}: job type ${job}`);

      const committed = new Set(backups.filter((backup) => backup.committed).map((backup) => `hvbackup-${backup.backupId}`));
      const names = [...(running ? await checkpointNames(domain.name) : []), ...(await imageBitmapNames(domain.disks[0]!.path))];
      for (const name of names) {
        if (name.startsWith('hvbackup-') && !committed.has(name)) orphans.push(`trial ${trial}: ${name} has no committed manifest`);
      }

      if (trial % RESTORE_CHECK_EVERY === RESTORE_CHECK_EVERY - 1) {
        restoreProblems.push(...(await restoreAndCompare(config, domain, join(dir, 'clone'))).map((problem) => `trial ${trial}: ${problem}`));
      }
    }

    expect(failures).toEqual([]);
    expect(repositoryProblems).toEqual([]);
    expect(jobs).toEqual([]);
    expect(orphans).toEqual([]);
    expect(restoreProblems).toEqual([]);
    // The delays must really interrupt runs, or the trials test nothing.
    expect(killedBeforeExit).toBeGreaterThan(BACKUP_TRIALS_PER_STATE / 2);
  }, 480_000);

  it('restore killed leaves no domain', async () => {
    const { dir, config, domain } = await setUp('hvb-test-fault-crash-restore', false);
    const clone = 'hvb-test-fault-crash-clone';
    const storageDir = join(dir, 'clone');
    const staging = join(dir, 'staging');
    const promotions = join(dir, 'state', 'promotions');
    const backup = await runCli(['--config', config, 'backup', domain.name]);
    expect(backup.code, backup.stderr).toBe(0);

    const restoreArgs = ['--config', config, 'restore', '--yes', '--as', clone, '--storage-dir', storageDir, domain.name];
    await removeTestDomain(clone);
    const started = Date.now();
    const normal = await runCli(restoreArgs);
    const normalMs = Date.now() - started;
    expect(normal.code, normal.stderr).toBe(0);

    const strayDomains: string[] = [];
    const strayFiles: string[] = [];
    const incomplete: string[] = [];
    const leftovers: string[] = [];
    const failures: string[] = [];

    for (let trial = 0; trial < RESTORE_TRIALS; trial += 1) {
      await removeTestDomain(clone);
      await rm(storageDir, { recursive: true, force: true });

      const delay = Math.floor(random() * normalMs);
      const victim = spawnCli(restoreArgs);
      await sleep(delay);
      victim.child.kill('SIGKILL');
      const outcome = await victim.exited;
      // A `virsh define` started before the kill still finishes, so the final state is known only then.
      await waitForProcessGroup(victim);
      const completed = outcome.code === 0;

      // A kill during promotion leaves a journal, which recovery settles: rolled back, or finished.
      const recovery = await runCli(['--config', config, 'recover']);
      if (recovery.code !== 0) failures.push(`trial ${trial} (kill after ${delay} ms): recover exited ${recovery.code}: ${recovery.stderr.slice(-1500)}`);
      const journals = await entries(promotions);
      if (journals.length > 0) leftovers.push(`trial ${trial} (kill after ${delay} ms): promotion journals of ${journals.join(', ')}`);

      const defined = (await definedDomains()).includes(clone);
      if (defined && !completed && outcome.signal !== 'SIGKILL') strayDomains.push(`trial ${trial}: clone defined by a run that exited ${outcome.code}`);
      if (defined && !completed) {
        // Killed after `virsh define` started: acceptable only when the clone is whole.
        const difference = await compareDisks(domain.disks[0]!.path, join(storageDir, `${clone}-vda.qcow2`));
        if (difference !== null) incomplete.push(`trial ${trial} (kill after ${delay} ms): clone defined with a differing disk: ${difference}`);
      }
      if (!defined && (await entries(storageDir)).length > 0) strayFiles.push(`trial ${trial} (kill after ${delay} ms): files without a domain in ${storageDir}`);

      // The next restore must succeed and leave no staging files, including those of the killed run.
      await removeTestDomain(clone);
      await rm(storageDir, { recursive: true, force: true });
      const next = await runCli(restoreArgs);
      if (next.code !== 0) failures.push(`trial ${trial}: next restore exited ${next.code}: ${next.stderr.slice(-1500)}`);
      const staged = await entries(staging);
      if (staged.length > 0) leftovers.push(`trial ${trial} (kill after ${delay} ms): staging holds ${staged.join(', ')}`);
    }

    expect(strayDomains).toEqual([]);
    expect(incomplete).toEqual([]);
    expect(failures).toEqual([]);
    expect(leftovers).toEqual([]);
    expect(strayFiles).toEqual([]);
  }, 480_000);
});
