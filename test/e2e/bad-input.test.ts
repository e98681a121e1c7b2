/**
 * Bad input through the command line: every case exits non-zero with an
 * error that names the value and the fix, and leaves nothing behind.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli } from '../support/cli.js';
import { available } from '../support/components.js';
import { writeTestConfig } from '../support/config.js';
import { createTestDomain, type TestDomain } from '../support/domains.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';
import { virsh } from './helpers.js';

let work: string;
let keys: TestKeys;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'hvb-bad-input-'));
  keys = await createTestKeys(work);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('configuration errors', () => {
  it('missing config file named', async () => {
    const result = await runCli(['--config', join(work, 'absent.json'), 'list']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('absent.json');
  });

  it('invalid JSON config rejected', async () => {
    const path = join(work, 'broken.json');
    await writeFile(path, '{ "repository": ');
    const result = await runCli(['--config', path, 'list']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('not valid JSON');
  });

  it('unknown key named', async () => {
    const path = join(work, 'unknown-key.json');
    await writeFile(path, JSON.stringify({ repository: { type: 'local', path: work }, segmentSise: '8MiB' }));
    const result = await runCli(['--config', path, 'list']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('segmentSise');
  });

  it('wrong type names key', async () => {
    const path = join(work, 'wrong-type.json');
    await writeFile(path, JSON.stringify({ repository: { type: 'local', path: work }, concurrency: { uploads: 'many' } }));
    const result = await runCli(['--config', path, 'list']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('concurrency.uploads');
  });

  it('invalid segment size named', async () => {
    const path = join(work, 'segment-size.json');
    await writeFile(path, JSON.stringify({ repository: { type: 'local', path: work }, segmentSize: '12 parsecs' }));
    const result = await runCli(['--config', path, 'list']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('12 parsecs');
  });

  it('missing signing key file named', async () => {
    const dir = await mkdtemp(join(work, 'nokey-'));
    const config = await writeTestConfig(dir, {
      keys: { ...keys, hostSecret: join(dir, 'no-such-key.asc') },
      repository: { type: 'local', path: join(dir, 'repo') },
    });
    const result = await runCli(['--config', config, 'backup', 'any-domain']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('no-such-key.asc');
  });
});

describe('repository errors', () => {
  it('unreachable S3 endpoint named', async () => {
    const dir = await mkdtemp(join(work, 's3-down-'));
    const config = await writeTestConfig(dir, {
      keys,
      repository: { type: 's3', bucket: 'nowhere', endpoint: 'http://127.0.0.1:9', region: 'us-east-1', forcePathStyle: true },
    });
    const result = await runCli(['--config', config, 'list'], {
      env: { AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', AWS_EC2_METADATA_DISABLED: 'true' },
      timeoutMs: 120_000,
    });
    expect(result.code).toBe(5);
    expect(result.stderr).toContain('127.0.0.1:9');
    expect(result.stderr).not.toContain('"y"');
  });

  it('list of empty directory fails clearly', async () => {
    const dir = await mkdtemp(join(work, 'empty-'));
    const config = await writeTestConfig(dir, { keys, repository: { type: 'local', path: join(dir, 'repo') } });
    const result = await runCli(['--config', config, 'list']);
    expect(result.code).toBe(5);
    expect(result.stderr).toContain('no hvbackup repository');
  });
});

describe.skipIf(!available('libvirt'))('libvirt input errors', () => {
  let domain: TestDomain;
  let config: string;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(work, 'libvirt-'));
    config = await writeTestConfig(dir, { keys, repository: { type: 'local', path: join(dir, 'repo') } });
    domain = await createTestDomain({ name: 'hvb-test-bad-input', kind: 'single', start: true });
  });

  afterAll(async () => {
    await domain?.cleanup().catch(() => undefined);
  });

  it('unknown domain named', async () => {
    const result = await runCli(['--config', config, 'backup', 'hvb-test-no-such-domain']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('hvb-test-no-such-domain');
  });

  it('restore with non-recipient key refused', async () => {
    const backup = await runCli(['--config', config, 'backup', domain.name]);
    expect(backup.code, backup.stderr).toBe(0);

    const otherKeys = await createTestKeys(await mkdtemp(join(work, 'other-')), 'mallory');
    const otherConfig = await writeTestConfig(await mkdtemp(join(work, 'other-config-')), {
      keys: { ...keys, adminSecret: otherKeys.adminSecret },
      repository: { type: 'local', path: join(dir, 'repo') },
    });
    const result = await runCli(['--config', otherConfig, 'restore', '--yes', domain.name, '--as', 'hvb-test-bad-input-clone']);
    expect(result.code).toBe(4);
    expect(result.stderr).toContain(otherKeys.adminFingerprint);
    expect((await virsh('list', '--all', '--name')).split('\n')).not.toContain('hvb-test-bad-input-clone');
  });

  it('backup to missing repository directory fails', async () => {
    const missing = join(dir, 'unmounted', 'repo');
    const missingConfig = await writeTestConfig(await mkdtemp(join(work, 'missing-repo-')), {
      keys,
      repository: { type: 'local', path: missing },
      createRepository: false,
    });
    const result = await runCli(['--config', missingConfig, 'backup', domain.name]);
    expect(result.code).toBe(5);
    expect(result.stderr).toContain(missing);
    await expect(readdir(join(dir, 'unmounted'))).rejects.toThrow();
  });

  it('restore onto existing domain refused', async () => {
    const result = await runCli(['--config', config, 'restore', '--yes', domain.name]);
    expect(result.code).toBe(7);
    expect(result.stderr).toContain('--replace');
    const staging = await readdir(join(dir, 'staging')).catch(() => []);
    expect(staging).toEqual([]);
  });
});
