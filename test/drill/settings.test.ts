import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { validateConfig } from '../../src/config/load.js';
import { drillKeyPath, drillSettings } from '../../src/drill/settings.js';

const repository = { type: 'local', path: 'repo' };

describe('drillSettings', () => {
  it('targets fall back to defaults', () => {
    const config = validateConfig({ repository }, '/etc/hvbackup/config.json');
    expect(drillSettings(config).targetsOf('web1')).toEqual({ rpoSeconds: 93_600, rtoSeconds: 3600 });
  });

  it('domain target overrides one default', () => {
    const config = validateConfig(
      { repository, drill: { defaults: { rpoSeconds: 100, rtoSeconds: 50 }, domains: { web1: { rtoSeconds: 5 } } } },
      '/etc/hvbackup/config.json',
    );
    expect(drillSettings(config).targetsOf('web1')).toEqual({ rpoSeconds: 100, rtoSeconds: 5 });
  });

  it('relative paths follow the config file', () => {
    const config = validateConfig({ repository, drill: { sandboxDir: 'sandbox', metricsFile: 'prom/hvbackup-drill.prom' } }, '/etc/hvbackup/config.json');
    const settings = drillSettings(config);
    expect(settings.sandboxDir).toBe('/etc/hvbackup/sandbox');
    expect(settings.metricsFile).toBe('/etc/hvbackup/prom/hvbackup-drill.prom');
  });

  it('negative target is rejected', () => {
    expect(() => validateConfig({ repository, drill: { defaults: { rpoSeconds: -1, rtoSeconds: 5 } } }, '/etc/hvbackup/config.json')).toThrow(
      /drill\.defaults\.rpoSeconds/,
    );
  });
});

describe('drillKeyPath', () => {
  let credentials: string;

  beforeAll(async () => {
    credentials = await mkdtemp(join(tmpdir(), 'hvb-drill-credentials-'));
    await writeFile(join(credentials, 'drill-key'), 'key', { mode: 0o400 });
    await chmod(credentials, 0o700);
  });

  afterAll(async () => {
    await rm(credentials, { recursive: true, force: true });
  });

  it('drill.keyFile wins over the credential', async () => {
    const config = validateConfig({ repository, drill: { keyFile: 'drill-key.asc' } }, '/etc/hvbackup/config.json');
    expect(await drillKeyPath(config, { CREDENTIALS_DIRECTORY: credentials })).toBe('/etc/hvbackup/drill-key.asc');
  });

  it('systemd credential used when present', async () => {
    const config = validateConfig({ repository }, '/etc/hvbackup/config.json');
    expect(await drillKeyPath(config, { CREDENTIALS_DIRECTORY: credentials })).toBe(join(credentials, 'drill-key'));
  });

  it('no key file falls back to adminKey', async () => {
    const config = validateConfig({ repository }, '/etc/hvbackup/config.json');
    expect(await drillKeyPath(config, {})).toBeUndefined();
  });
});
