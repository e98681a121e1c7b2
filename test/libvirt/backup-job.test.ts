import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { LibvirtError } from '../../src/errors.js';
import { findActiveBackupJob, PullBackupJob } from '../../src/libvirt/backup-job.js';
import { deleteCheckpoint, listCheckpoints, checkpointXml } from '../../src/libvirt/checkpoints.js';
import { Virsh } from '../../src/libvirt/virsh.js';
import { available } from '../support/components.js';
import { createTestDomain, knownPatterns, virsh as runVirsh, writePattern, type TestDomain } from '../support/domains.js';

const execFileAsync = promisify(execFile);

interface Extent {
  offset: number;
  length: number;
  type: number;
  description: string;
}

async function nbdinfo(...args: string[]): Promise<string> {
  return (await execFileAsync('nbdinfo', args)).stdout;
}

function exportUri(job: PullBackupJob, target: string): string {
  return `nbd+unix:///${job.exportName(target)}?socket=${job.socketPath}`;
}

/** Returns the extents whose description contains `word`, for example "data" or "dirty". */
function rangesWith(extents: Extent[], word: string): { offset: number; length: number }[] {
  return extents.filter((extent) => extent.description.split(',').includes(word)).map(({ offset, length }) => ({ offset, length }));
}

describe.skipIf(!available('libvirt'))('PullBackupJob', () => {
  const virsh = new Virsh();
  const name = 'hvb-test-backup-job';
  let domain: TestDomain;
  let workDir: string;
  let job: PullBackupJob | undefined;

  beforeAll(async () => {
    domain = await createTestDomain({ name, kind: 'single' });
    workDir = await mkdtemp(join(tmpdir(), 'hvb-test-job-'));
    // QEMU (libvirt-qemu) must be able to reach the job directories below this one.
    await chmod(workDir, 0o711);
  });

  afterEach(async () => {
    await job?.end();
    job = undefined;
  });

  afterAll(async () => {
    await domain?.cleanup();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  const jobOptions = () => ({ domain: name, socketPath: join(workDir, 'sock', 'nbd.sock'), scratchDir: join(workDir, 'scratch'), disks: ['vda'] });

  it('PullBackupJob begin creates socket', async () => {
    job = await PullBackupJob.begin(virsh, jobOptions());

    const list = JSON.parse(await nbdinfo('--list', '--json', exportUri(job, 'vda')));
    const entry = list.exports.find((item: { 'export-name': string }) => item['export-name'] === 'vda');

    expect(entry).toBeDefined();
    expect(entry.contexts).toContain('base:allocation');
    expect(entry['export-size']).toBe(64 * 1024 * 1024);
  });

  it('PullBackupJob map shows pattern data', async () => {
    job = await PullBackupJob.begin(virsh, jobOptions());

    const extents: Extent[] = JSON.parse(await nbdinfo('--map', '--json', exportUri(job, 'vda')));
    const expected = knownPatterns('single')[0].patterns.map(({ offset, length }) => ({ offset, length }));

    expect(rangesWith(extents, 'data')).toEqual(expected);
  });

  it('PullBackupJob end leaves no job', async () => {
    const options = jobOptions();
    job = await PullBackupJob.begin(virsh, options);

    await job.end();
    await job.end();

    expect(await findActiveBackupJob(virsh, name)).toBe(false);
    expect(await runVirsh('domjobinfo', name)).toMatch(/Job type:\s+None/);
    expect(await readdir(options.scratchDir)).toEqual([]);
  });

  it('PullBackupJob second begin rejected', async () => {
    job = await PullBackupJob.begin(virsh, jobOptions());

    const second = PullBackupJob.begin(virsh, { ...jobOptions(), socketPath: join(workDir, 'sock', 'other.sock') });

    await expect(second).rejects.toBeInstanceOf(LibvirtError);
    await expect(second).rejects.toThrow(/already has a backup job/);
  });

  it('PullBackupJob unknown domain named', async () => {
    const failure = PullBackupJob.begin(virsh, { ...jobOptions(), domain: 'hvb-test-no-such-domain' });

    await expect(failure).rejects.toBeInstanceOf(LibvirtError);
    await expect(failure).rejects.toThrow(/hvb-test-no-such-domain/);
  });

  it('PullBackupJob unknown disk rejected', async () => {
    await expect(PullBackupJob.begin(virsh, { ...jobOptions(), disks: ['vdz'] })).rejects.toThrow(/disk 'vdz'/);
  });

  it('PullBackupJob checkpoint then incremental', async () => {
    job = await PullBackupJob.begin(virsh, { ...jobOptions(), checkpoint: { name: 'hvb-cp1', description: 'test' } });
    await job.end();

    const checkpoints = await listCheckpoints(virsh, name);
    expect(checkpoints.map((checkpoint) => checkpoint.name)).toEqual(['hvb-cp1']);
    expect(checkpoints[0].creationTime).toBeGreaterThan(1_600_000_000);
    expect(await checkpointXml(virsh, name, 'hvb-cp1')).toContain(`<name>${name}</name>`);

    // Guest writes are not possible from outside while the domain runs, so
    // write to the image while it is shut off.
    await runVirsh('destroy', name);
    await writePattern(domain.disks[0].path, 'qcow2', 50 * 1024 * 1024, 2 * 1024 * 1024, 0x77);
    await runVirsh('start', name);

    job = await PullBackupJob.begin(virsh, { ...jobOptions(), incrementalFrom: 'hvb-cp1', checkpoint: { name: 'hvb-cp2' } });
    const context = job.dirtyBitmapContext('vda');
    const list = JSON.parse(await nbdinfo('--list', '--json', exportUri(job, 'vda')));
    const extents: Extent[] = JSON.parse(await nbdinfo(`--map=${context}`, '--json', exportUri(job, 'vda')));

    expect(list.exports[0].contexts).toContain(context);
    expect(rangesWith(extents, 'dirty')).toEqual([{ offset: 50 * 1024 * 1024, length: 2 * 1024 * 1024 }]);

    await job.end();
    const after = await listCheckpoints(virsh, name);
    expect(after.map((checkpoint) => checkpoint.name)).toEqual(['hvb-cp1', 'hvb-cp2']);
    expect(after[1].parent).toBe('hvb-cp1');

    await deleteCheckpoint(virsh, name, 'hvb-cp2');
    expect((await listCheckpoints(virsh, name)).map((checkpoint) => checkpoint.name)).toEqual(['hvb-cp1']);
  });
});
