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

describe('excludeDisks', () => {
  /** Returns the ConfigError message for an excludeDisks value, or fails when the value is accepted. */
  function rejection(excludeDisks: unknown): string {
    try {
      validateConfig({ ...minimal, excludeDisks }, '/x/config.json');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error(`excludeDisks ${JSON.stringify(excludeDisks)} was accepted`);
  }

  it('defaults to no exclusions', () => {
    expect(validateConfig(minimal, '/x/config.json').excludeDisks).toEqual({});
  });

  it('accepts targets per domain', () => {
    const config = validateConfig({ ...minimal, excludeDisks: { web1: ['vdb', 'sdc'], 'db-2.prod': [] } }, '/x/config.json');
    expect(config.excludeDisks).toEqual({ web1: ['vdb', 'sdc'], 'db-2.prod': [] });
  });

  it('rejects upper-case target naming value', () => {
    const message = rejection({ web1: ['VDB'] });
    expect(message).toContain('excludeDisks.web1.0');
    expect(message).toContain('(got "VDB")');
    expect(message).toContain('virsh domblklist');
  });

  it('rejects device path as target', () => {
    const message = rejection({ web1: ['/dev/vdb'] });
    expect(message).toContain('excludeDisks.web1.0');
    expect(message).toContain('for example "vdb"');
  });

  it('rejects number as target', () => {
    const message = rejection({ web1: [1] });
    expect(message).toContain('excludeDisks.web1.0');
    expect(message).toContain('expected a disk target in quotes, for example "vdb" (got 1)');
  });

  it('rejects repeated target', () => {
    const message = rejection({ web1: ['vdb', 'vdc', 'vdb'] });
    expect(message).toContain('excludeDisks.web1');
    expect(message).toContain('disk target "vdb" is listed more than once');
  });

  it('rejects string instead of list', () => {
    const message = rejection({ web1: 'vdb' });
    expect(message).toContain('excludeDisks.web1');
    expect(message).toContain('expected a list of disk targets, for example ["vdb"]');
  });

  it('rejects list instead of object', () => {
    const message = rejection(['vdb']);
    expect(message).toContain('excludeDisks');
    expect(message).toContain('maps domain names to lists of disk targets');
  });

  it('rejects invalid domain name', () => {
    const message = rejection({ 'web 1': ['vdb'] });
    expect(message).toContain('invalid domain name "web 1"');
    expect(message).toContain('virsh list --all');
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
