import { describe, expect, it } from 'vitest';

import { formatSeconds, formatSummary, missedTargets, resultJson, type DrillResult } from '../../src/drill/report.js';

function passedResult(overrides: Partial<DrillResult> = {}): DrillResult {
  return {
    domain: 'web1',
    sandbox: 'drill-web1-20261204T020000',
    backupId: '20261204T010000Z-a1b2c3',
    snapshotAt: '2026-12-04T01:00:00.000Z',
    rpoSeconds: 3600,
    restoreSeconds: 12.5,
    rtoSeconds: 14.2,
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

describe('missedTargets', () => {
  it('missedTargets within targets is empty', () => {
    expect(missedTargets('web1', { rpoSeconds: 10, rtoSeconds: 5 }, { rpoSeconds: 10, rtoSeconds: 5 })).toEqual([]);
  });

  it('missedTargets names RTO and values', () => {
    const messages = missedTargets('web1', { rpoSeconds: 1, rtoSeconds: 14.2 }, { rpoSeconds: 60, rtoSeconds: 5 });
    expect(messages).toEqual(['drill of web1 missed the RTO target: measured 14.2 s, target 5 s']);
  });

  it('missedTargets names RPO and values', () => {
    const messages = missedTargets('db', { rpoSeconds: 200_000, rtoSeconds: 1 }, { rpoSeconds: 93_600, rtoSeconds: 5 });
    expect(messages).toEqual(['drill of db missed the RPO target: measured 200000 s, target 93600 s']);
  });

  it('missedTargets reports both misses', () => {
    expect(missedTargets('db', { rpoSeconds: 2, rtoSeconds: 2 }, { rpoSeconds: 1, rtoSeconds: 1 })).toHaveLength(2);
  });
});

describe('formatSeconds', () => {
  it.each([
    [5, '5 s'],
    [14.24, '14.2 s'],
    [0.001, '0.001 s'],
    [0.0123, '0.012 s'],
    [123.6, '124 s'],
  ])('formatSeconds of %s', (seconds, text) => {
    expect(formatSeconds(seconds)).toBe(text);
  });
});

describe('drill report output', () => {
  it('summary table lists domain and result', () => {
    const table = formatSummary([passedResult(), passedResult({ domain: 'db', result: 'failed', rtoSeconds: null, bootCheck: { running: false, runningSeconds: null, guestAgent: 'not-checked' } })]);
    const lines = table.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/^web1 .*14\.2 s \/ 3600 s .*running .*passed$/);
    expect(lines[2]).toMatch(/^db .* - \/ 3600 s .*not running .*failed$/);
  });

  it('JSON joins failures into error', () => {
    const json = resultJson(passedResult({ result: 'target-missed', failures: ['first', 'second'] }));
    expect(json.error).toBe('first; second');
  });

  it('JSON error is null when passed', () => {
    expect(resultJson(passedResult()).error).toBeNull();
  });

  it('JSON carries the measured fields', () => {
    const json = resultJson(passedResult());
    expect(json).toMatchObject({ backupId: '20261204T010000Z-a1b2c3', rpoSeconds: 3600, restoreSeconds: 12.5, rtoSeconds: 14.2, targets: { rpoSeconds: 93_600, rtoSeconds: 3600 }, result: 'passed' });
  });
});
