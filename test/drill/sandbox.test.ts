import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createSandbox, removalCommands, sandboxName } from '../../src/drill/sandbox.js';

describe('sandbox', () => {
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hvb-drill-sandbox-'));
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('sandbox name uses UTC time', () => {
    expect(sandboxName('web1', new Date('2026-12-04T02:03:04.567Z'))).toBe('drill-web1-20261204T020304');
  });

  it('sandbox directories are searchable', async () => {
    const sandbox = await createSandbox(join(work, 'drills'), 'web1', new Date('2026-12-04T02:03:04Z'));
    expect(sandbox.directory).toBe(join(work, 'drills', 'drill-web1-20261204T020304'));
    expect((await stat(sandbox.directory)).mode & 0o777).toBe(0o711);
    expect((await stat(sandbox.storageDir)).mode & 0o777).toBe(0o711);
  });

  it('sandbox twice in one second rejected', async () => {
    const at = new Date('2026-12-04T05:00:00Z');
    await createSandbox(join(work, 'drills'), 'db', at);
    await expect(createSandbox(join(work, 'drills'), 'db', at)).rejects.toThrow(/sandbox directory .*drill-db-20261204T050000 already exists/);
  });

  it('removal commands name domain and directory', () => {
    const commands = removalCommands({ name: 'drill-db-20261204T050000', directory: '/srv/d', storageDir: '/srv/d/disks', stagingDir: '/srv' }, 'qemu:///system');
    expect(commands).toEqual([
      'virsh -c qemu:///system destroy drill-db-20261204T050000',
      'virsh -c qemu:///system undefine --nvram drill-db-20261204T050000',
      'rm -rf /srv/d',
    ]);
  });
});
