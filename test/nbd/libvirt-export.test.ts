/**
 * The NBD client against libvirt's pull-mode backup export, the server it
 * reads from in production. The allocation map shows data exactly where the
 * fixture wrote it, and reads return the patterns. The dirty-bitmap context
 * of an incremental job lists exactly the range written since the checkpoint.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { PullBackupJob } from '../../src/libvirt/backup-job.js';
import { deleteCheckpoint } from '../../src/libvirt/checkpoints.js';
import { Virsh } from '../../src/libvirt/virsh.js';
import { NbdClient, NBD_STATE_DIRTY, NBD_STATE_ZERO } from '../../src/nbd/client.js';
import { available } from '../support/components.js';
import { createTestDomain, knownPatterns, virsh, writePattern, type TestDomain } from '../support/domains.js';

const MIB = 1024 * 1024;

describe.skipIf(!available('libvirt'))('NbdClient on libvirt export', () => {
  const libvirt = new Virsh();
  let domain: TestDomain;
  let workDir: string;
  let job: PullBackupJob | undefined;
  let client: NbdClient | undefined;

  beforeAll(async () => {
    domain = await createTestDomain({ name: 'hvb-test-nbd-export', kind: 'single', start: true });
    workDir = await mkdtemp(join(tmpdir(), 'hvb-nbd-export-'));
    await chmod(workDir, 0o711);
  });

  afterEach(async () => {
    await client?.close();
    client = undefined;
    await job?.end();
    job = undefined;
  });

  afterAll(async () => {
    await domain?.cleanup().catch(() => undefined);
    await rm(workDir, { recursive: true, force: true });
  });

  async function begin(label: string, extra: { incrementalFrom?: string; checkpoint?: { name: string } } = {}): Promise<PullBackupJob> {
    const dir = join(workDir, label);
    job = await PullBackupJob.begin(libvirt, { domain: domain.name, socketPath: join(dir, 'nbd.sock'), scratchDir: dir, disks: ['vda'], ...extra });
    return job;
  }

  it('allocation map matches the fixture', async () => {
    const started = await begin('full');
    client = await NbdClient.connect({ socketPath: started.socketPath, exportName: started.exportName('vda'), metaContexts: ['base:allocation'] });
    expect(client.size).toBe(64 * MIB);

    const data = (await client.mapExtents('base:allocation'))
      .filter((extent) => (extent.flags & NBD_STATE_ZERO) === 0)
      .map(({ offset, length }) => ({ offset, length }));
    const expected = knownPatterns('single')[0].patterns.map(({ offset, length }) => ({ offset, length }));
    expect(data).toEqual(expected);
  });

  it('reads return the pattern bytes', async () => {
    const started = await begin('read');
    client = await NbdClient.connect({ socketPath: started.socketPath, exportName: started.exportName('vda') });
    for (const pattern of knownPatterns('single')[0].patterns) {
      const bytes = await client.read(pattern.offset, pattern.length);
      expect(bytes.every((byte) => byte === pattern.byte)).toBe(true);
    }
  });

  it('dirty bitmap lists the written range', async () => {
    await begin('checkpoint', { checkpoint: { name: 'hvb-test-nbd-cp' } });
    await job!.end();
    job = undefined;

    await virsh('destroy', domain.name);
    await writePattern(domain.disks[0].path, 'qcow2', 50 * MIB, 2 * MIB, 0x77);
    await virsh('start', domain.name);

    const started = await begin('incremental', { incrementalFrom: 'hvb-test-nbd-cp' });
    const context = started.dirtyBitmapContext('vda');
    client = await NbdClient.connect({ socketPath: started.socketPath, exportName: started.exportName('vda'), metaContexts: [context] });
    const dirty = (await client.mapExtents(context))
      .filter((extent) => (extent.flags & NBD_STATE_DIRTY) !== 0)
      .map(({ offset, length }) => ({ offset, length }));
    expect(dirty).toEqual([{ offset: 50 * MIB, length: 2 * MIB }]);

    await client.close();
    client = undefined;
    await job!.end();
    job = undefined;
    await deleteCheckpoint(libvirt, domain.name, 'hvb-test-nbd-cp');
  });
});
