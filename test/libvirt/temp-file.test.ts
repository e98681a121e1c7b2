import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { removeOrphanedDirectories, withTempFile } from '../../src/libvirt/temp-file.js';

let parent: string;

beforeEach(async () => {
  parent = await mkdtemp(join(tmpdir(), 'hvb-tempfile-test-'));
});

afterEach(async () => {
  await rm(parent, { recursive: true, force: true });
});

/** Returns the PID of a process that has exited. */
function exitedPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

describe('removeOrphanedDirectories', () => {
  it('removes directories of exited owners', async () => {
    const orphan = `hvbackup-virsh-${exitedPid()}-abc123`;
    const live = `hvbackup-virsh-${process.pid}-def456`;
    const unrelated = 'hvbackup-virsh-notapid';
    for (const name of [orphan, live, unrelated]) await mkdir(join(parent, name));

    await removeOrphanedDirectories(parent);

    expect((await readdir(parent)).sort()).toEqual([live, unrelated].sort());
  });
});

describe('withTempFile', () => {
  it('removes its directory after use', async () => {
    let seen = '';
    const result = await withTempFile('domain.xml', '<domain/>', async (path) => {
      seen = path;
      return 'done';
    });

    expect(result).toBe('done');
    expect(seen).toContain(`hvbackup-virsh-${process.pid}-`);
    expect((await readdir(tmpdir())).filter((name) => seen.includes(name))).toEqual([]);
  });
});
