import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { renderDrillMetrics, writeDrillMetrics } from '../../src/drill/metrics.js';
import type { DrillResult } from '../../src/drill/report.js';

function result(domain: string, overrides: Partial<DrillResult> = {}): DrillResult {
  return {
    domain,
    sandbox: `drill-${domain}-20261204T020000`,
    backupId: '20261204T010000Z-a1b2c3',
    snapshotAt: '2026-12-04T01:00:00.000Z',
    rpoSeconds: 3600.25,
    restoreSeconds: 12,
    rtoSeconds: 14,
    bootCheck: { running: true, runningSeconds: 0.4, guestAgent: 'not-checked' },
    targets: { rpoSeconds: 93_600, rtoSeconds: 3600 },
    result: 'passed',
    failures: [],
    finishedAt: 1_796_346_000,
    kept: false,
    removeCommands: [],
    ...overrides,
  };
}

describe('renderDrillMetrics', () => {
  const text = renderDrillMetrics([result('web1'), result('db"2', { result: 'failed', rtoSeconds: null })], 'hv1');
  const lines = text.trimEnd().split('\n');

  it('metrics have HELP and TYPE lines', () => {
    for (const name of ['hvbackup_drill_success', 'hvbackup_drill_rpo_seconds', 'hvbackup_drill_rto_seconds', 'hvbackup_drill_timestamp_seconds']) {
      expect(lines).toContain(`# TYPE ${name} gauge`);
      expect(lines.some((line) => line.startsWith(`# HELP ${name} `))).toBe(true);
    }
  });

  it('metrics success is 1 when passed', () => {
    expect(lines).toContain('hvbackup_drill_success{host="hv1",domain="web1"} 1');
  });

  it('metrics success is 0 when failed', () => {
    expect(lines).toContain('hvbackup_drill_success{host="hv1",domain="db\\"2"} 0');
  });

  it('metrics omit values not measured', () => {
    expect(lines.filter((line) => line.startsWith('hvbackup_drill_rto_seconds{'))).toEqual(['hvbackup_drill_rto_seconds{host="hv1",domain="web1"} 14']);
  });

  it('metrics keep fractional seconds', () => {
    expect(lines).toContain('hvbackup_drill_rpo_seconds{host="hv1",domain="web1"} 3600.250');
  });

  it('metrics text ends with newline', () => {
    expect(text.endsWith('\n')).toBe(true);
  });
});

describe('writeDrillMetrics', () => {
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hvb-drill-metrics-'));
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('writeDrillMetrics replaces file, no leftovers', async () => {
    const path = join(work, 'textfile', 'hvbackup-drill.prom');
    await writeDrillMetrics(path, [result('web1')], 'hv1');
    await writeDrillMetrics(path, [result('db')], 'hv1');

    const text = await readFile(path, 'utf8');
    expect(text).toContain('domain="db"');
    expect(text).not.toContain('domain="web1"');
    expect(await readdir(join(work, 'textfile'))).toEqual(['hvbackup-drill.prom']);
  });
});
