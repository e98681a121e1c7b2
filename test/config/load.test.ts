import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { credentialFile, loadConfig, validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

const minimal = { repository: { type: 'local', path: 'repo' } };

describe('validateConfig', () => {
  it('resolves relative paths against the file', () => {
    const config = validateConfig({ ...minimal, signingKey: 'keys/host.asc' }, '/etc/hvbackup/config.json');
    expect(config.repository).toEqual({ type: 'local', path: '/etc/hvbackup/repo' });
    expect(config.signingKey).toBe('/etc/hvbackup/keys/host.asc');
  });

  it('applies defaults', () => {
    const config = validateConfig(minimal, '/x/config.json');
    expect(config.segmentSize).toBe(16 * 1024 * 1024);
    expect(config.libvirt.uri).toBe('qemu:///system');
    expect(config.chain).toEqual({ maxLength: 14, maxAgeDays: 30 });
  });

  it('normalises fingerprints', () => {
    const fingerprint = 'ab12 cd34 ef56 ab12 cd34  ef56 ab12 cd34 ef56 ab12';
    const config = validateConfig({ ...minimal, trustedSigners: [fingerprint] }, '/x/config.json');
    expect(config.trustedSigners).toEqual(['AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12']);
  });

  it('rejects short fingerprint naming key', () => {
    expect(() => validateConfig({ ...minimal, trustedSigners: ['ABCD'] }, '/x/config.json')).toThrow(/trustedSigners\.0/);
  });

  it('rejects unknown repository type', () => {
    expect(() => validateConfig({ repository: { type: 'ftp', path: '/' } }, '/x/config.json')).toThrow(ConfigError);
  });

  it('rejects segment size outside range', () => {
    expect(() => validateConfig({ ...minimal, segmentSize: '4KiB' }, '/x/config.json')).toThrow(/segmentSize/);
  });
});

describe('loadConfig', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hvb-config-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('names the file on JSON errors', async () => {
    const path = join(dir, 'bad.json');
    await writeFile(path, '{');
    await expect(loadConfig(path)).rejects.toThrow(path);
  });

  it('finds the host key credential', async () => {
    await writeFile(join(dir, 'host-key'), 'x', { mode: 0o600 });
    process.env.HVBACKUP_CREDENTIALS_DIR = dir;
    try {
      expect(credentialFile('host-key')).toBe(join(dir, 'host-key'));
      expect(validateConfig(minimal, join(dir, 'config.json')).signingKey).toBe(join(dir, 'host-key'));
      expect(credentialFile('drill-key')).toBeUndefined();
    } finally {
      delete process.env.HVBACKUP_CREDENTIALS_DIR;
    }
  });
});
