/**
 * Two storage promises: a large, mostly empty disk stores only its
 * allocated data, and a repository over its quota refuses a backup before
 * uploading anything.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { writeTestConfig } from '../support/config.js';
import { createTestDomain, type TestDomain } from '../support/domains.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';

const execFileAsync = promisify(execFile);
const MIB = 1024 * 1024;

describe.skipIf(!available('libvirt', 'qemu-img'))('sparse disks and quota', () => {
  let work: string;
  let keys: TestKeys;
  let domain: TestDomain;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hvb-sparse-'));
    keys = await createTestKeys(work);
    domain = await createTestDomain({ name: 'hvb-test-sparse', kind: 'single', start: false });

    // Replace the fixture disk with 10 GiB virtual and 50 MiB of data in five places.
    const disk = domain.disks[0].path;
    await execFileAsync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '10G']);
    const writes = [0, 2, 4, 7, 9].flatMap((gib, index) => ['-c', `write -P ${0x10 + index} ${gib}G 10M`]);
    await execFileAsync('qemu-io', ['-f', 'qcow2', ...writes, disk]);
  });

  afterAll(async () => {
    await domain?.cleanup().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  it('10 GiB disk stores its 50 MiB', async () => {
    const dir = await mkdtemp(join(work, 'sparse-'));
    const config = await writeTestConfig(dir, { keys, repository: { type: 'local', path: join(dir, 'repo') } });
    const result = await runCli(['--config', config, 'backup', '--json', domain.name]);
    expect(result.code, result.stderr).toBe(0);

    const [summary] = JSON.parse(result.stdout) as { bytesRead: number; bytesStored: number }[];
    expect(summary.bytesRead).toBe(50 * MIB);
    expect(summary.bytesStored).toBeGreaterThanOrEqual(50 * MIB);
    expect(summary.bytesStored).toBeLessThan(51 * MIB);
  });

  it('quota over limit refuses before upload', async () => {
    const dir = await mkdtemp(join(work, 'quota-'));
    const repo = join(dir, 'repo');
    const first = await writeTestConfig(dir, { keys, repository: { type: 'local', path: repo } });
    expect((await runCli(['--config', first, 'backup', domain.name])).code).toBe(0);

    const limited = await writeTestConfig(await mkdtemp(join(work, 'quota-limited-')), {
      keys,
      repository: { type: 'local', path: repo },
      extra: { quota: '40MiB' },
    });
    const [host] = await readdir(join(repo, 'hosts'));
    const before = await readdir(join(repo, 'hosts', host, 'domains', domain.name));

    const result = await runCli(['--config', limited, 'backup', domain.name]);
    expect(result.code).toBe(7);
    expect(result.stderr).toContain('quota');
    expect(await readdir(join(repo, 'hosts', host, 'domains', domain.name))).toEqual(before);
  });
});
