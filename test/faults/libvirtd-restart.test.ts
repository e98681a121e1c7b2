/**
 * libvirtd restarted while a backup of a running domain reads its disks.
 * QEMU and its NBD export outlive the daemon, so the reads go on, but every
 * virsh call in the down time fails to connect. One trial restarts the
 * daemon without a pause. Another keeps it down past the end of the reads,
 * so the end of the backup (domjobabort, checkpoint pruning) finds no daemon.
 * The last one stops it as the backup process starts.
 *
 * Invariants checked after each trial: the backup either committed and
 * `verify --read-data` passes, or it failed with an error that names libvirt
 * and what to do and left no manifest. After the next backup no backup job
 * runs, every `hvbackup-*` checkpoint belongs to a committed manifest, and
 * the chain restores as a clone identical to the source.
 *
 * Restarting libvirtd breaks the libvirt calls of every other test run on
 * the machine, so test/services/libvirtd.sh refuses while another run uses
 * the daemon, and the trials are then skipped, except under CI=true, where
 * the refusal fails them.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { logMessages, repoRoot, runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { writeTestConfig } from '../support/config.js';
import { createTestDomain, removeTestDomain, virsh, type TestDomain } from '../support/domains.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';
import { checkpointNames, compareDisks, domainJobType, inspectLocalRepository, sleep, spawnCli, waitForLog } from './support.js';

const execFileAsync = promisify(execFile);
const enabled = available('libvirt', 'qemu-img');
const HOST = 'fault-host';
const MiB = 1024 * 1024;
const CLONE = 'hvb-test-fault-restart-clone';
/** libvirtd.sh's status when another test run uses the daemon. */
const RESTART_REFUSED = 3;

/** Restarts the test libvirtd, down for `downSeconds`. Returns false when the script refused because others use it. */
async function restartLibvirtd(downSeconds: number): Promise<boolean> {
  try {
    await execFileAsync('bash', [join(repoRoot, 'test', 'services', 'libvirtd.sh'), 'restart', String(downSeconds)], { timeout: 180_000 });
    return true;
  } catch (error) {
    const failure = error as { code?: unknown; stderr?: string };
    if (failure.code === RESTART_REFUSED) {
      console.warn(`libvirtd not restarted: ${failure.stderr?.trim()}`);
      return false;
    }
    throw error;
  }
}

describe.skipIf(!enabled)('libvirtd restarted mid-backup', () => {
  let work: string;
  let keys: TestKeys;
  let domain: TestDomain;
  let config: string;
  let repository: string;
  let dir: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hvbr-'));
    keys = await createTestKeys(work);
    dir = await mkdtemp(join(work, 'd-'));
    repository = join(dir, 'repo');
    config = await writeTestConfig(dir, {
      keys,
      repository: { type: 'local', path: repository },
      // Paced uploads and one read in flight keep the reads going for more than 10 s (25 MiB
      // at 2 MiB/s), because the archive writer waits for the segment pipeline.
      extra: { host: HOST, segmentSize: '1MiB', bandwidthLimit: '2MiB', concurrency: { workers: 1, uploads: 1, reads: 1 } },
    });

    domain = await createTestDomain({ name: 'hvb-test-fault-restart', kind: 'single', start: false });
    await execFileAsync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5a ${20 * MiB} ${24 * MiB}`, domain.disks[0]!.path]);
    await virsh('start', domain.name);
  });

  afterAll(async () => {
    await domain?.cleanup().catch(() => undefined);
    await removeTestDomain(CLONE).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  it.for([
    ['restart while reading', 'reading', 0],
    ['down past the reads', 'reading', 15],
    ['down at backup start', 'start', 8],
  ] as const)('backup survives %s', async ([, moment, downSeconds], context) => {
    const first = await runCli(['--config', config, 'backup', domain.name]);
    expect(first.code, first.stderr).toBe(0);
    const committedBefore = (await inspectLocalRepository(repository, HOST, domain.name)).filter((backup) => backup.committed).length;

    // A full backup reads every extent, so a restart after the first second of reading lands while reads go on.
    const victim = spawnCli(['--config', config, 'backup', '--mode', 'full', domain.name]);
    if (moment === 'reading') {
      await waitForLog(victim, 'disks exported, reading extents');
      await sleep(1000);
    }
    // The restart must begin while the backup runs, or the trial tests nothing.
    expect(victim.child.exitCode).toBeNull();
    const restartStarted = Date.now();
    const restarted = await restartLibvirtd(downSeconds);
    const restartMs = Date.now() - restartStarted;
    const outcome = await victim.exited;
    if (!restarted) {
      // CI runs one test run alone, so a refusal there means the trial could not run at all.
      if (process.env.CI === 'true') throw new Error('libvirtd.sh refused to restart libvirtd under CI; no other test run should use it there');
      context.skip();
      return;
    }
    const messages = logMessages(outcome.stderr);
    const retries = messages.filter((message) => message.startsWith('libvirtd is unreachable')).length;
    const failure = outcome.code === 0 ? '' : `: ${messages.at(-1)}`;
    console.info(`backup across a libvirtd restart (${moment}, ${downSeconds} s down, restart took ${restartMs} ms) exited ${outcome.code} after ${retries} virsh retries${failure}`);

    const backups = await inspectLocalRepository(repository, HOST, domain.name);
    const committed = backups.filter((backup) => backup.committed);
    expect(backups.flatMap((backup) => backup.problems)).toEqual([]);
    if (outcome.code === 0) {
      expect(committed).toHaveLength(committedBefore + 1);
      const verify = await runCli(['--config', config, 'verify', '--read-data', committed.at(-1)!.backupId]);
      expect(verify.code, verify.stderr).toBe(0);
    } else {
      expect(committed).toHaveLength(committedBefore);
      expect(outcome.code).toBe(6);
      expect(outcome.stderr).toMatch(/libvirt/);
      expect(outcome.stderr).toMatch(/hint/);
    }

    // The next backup must succeed, abort a job the interrupted one left, and keep no foreign checkpoint.
    const next = await runCli(['--config', config, 'backup', domain.name]);
    expect(next.code, next.stderr).toBe(0);
    expect(await domainJobType(domain.name)).toBe('None');
    const known = new Set((await inspectLocalRepository(repository, HOST, domain.name)).filter((backup) => backup.committed).map((backup) => `hvbackup-${backup.backupId}`));
    expect((await checkpointNames(domain.name)).filter((name) => !known.has(name))).toEqual([]);
    if (outcome.code !== 0) expect(logMessages(next.stderr).join('\n')).not.toContain('internal error');

    // The chain, incremental backups included, restores to the source's content.
    await removeTestDomain(CLONE);
    const storageDir = join(dir, 'clone');
    await rm(storageDir, { recursive: true, force: true });
    const restore = await runCli(['--config', config, 'restore', '--yes', '--as', CLONE, '--storage-dir', storageDir, domain.name]);
    expect(restore.code, restore.stderr).toBe(0);
    expect(await compareDisks(domain.disks[0]!.path, join(storageDir, `${CLONE}-vda.qcow2`))).toBeNull();
    await removeTestDomain(CLONE);
  }, 600_000);
});
