/**
 * The Prometheus textfile: parsed by a strict parser written here from the
 * text exposition format 0.0.4 (metric and label name patterns, escaped
 * label values, HELP and TYPE before the samples of their metric, float
 * values), and replaced atomically.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { beforeEach, describe, expect, it } from 'vitest';

import { temporaryPath } from '../../src/metrics/atomic-write.js';
import { escapeLabelValue } from '../../src/metrics/render.js';
import { metricsStatePath } from '../../src/metrics/state.js';
import { recordBackupResult, type BackupResultMetrics } from '../../src/metrics/textfile.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Parses the text format strictly and throws on the first deviation, naming the line. */
function parseExposition(text: string): Sample[] {
  if (!text.endsWith('\n')) throw new Error('text does not end with a line feed');
  const help = new Set<string>();
  const types = new Map<string, string>();
  const sampled = new Set<string>();
  const samples: Sample[] = [];

  text.slice(0, -1).split('\n').forEach((line, index) => {
    const where = `line ${index + 1} "${line}"`;
    const comment = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (comment) {
      const [, kind, name, rest] = comment;
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: invalid metric name`);
      if (sampled.has(name)) throw new Error(`${where}: ${kind} after samples of ${name}`);
      if (kind === 'HELP') {
        if (help.has(name)) throw new Error(`${where}: second HELP`);
        help.add(name);
      } else {
        if (types.has(name)) throw new Error(`${where}: second TYPE`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`${where}: invalid type`);
        types.set(name, rest);
      }
      return;
    }
    if (line.startsWith('#')) throw new Error(`${where}: unexpected comment`);

    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!sample) throw new Error(`${where}: not a sample`);
    const [, name, , labelText, valueText] = sample;
    if (!help.has(name) || !types.has(name)) throw new Error(`${where}: sample before HELP and TYPE`);
    if (!/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^[+-]?Inf$|^NaN$/.test(valueText)) throw new Error(`${where}: invalid value`);

    samples.push({ name, labels: parseLabels(labelText ?? '', where), value: Number(valueText.replace('Inf', 'Infinity')) });
    sampled.add(name);
  });
  return samples;
}

function parseLabels(text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest.length > 0) {
    const match = /^([^=]+)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)/.exec(rest);
    if (!match) throw new Error(`${where}: invalid labels at "${rest}"`);
    if (!LABEL_NAME.test(match[1])) throw new Error(`${where}: invalid label name ${match[1]}`);
    if (match[1] in labels) throw new Error(`${where}: duplicate label ${match[1]}`);
    labels[match[1]] = match[2].replace(/\\(["\\n])/g, (_all, character: string) => (character === 'n' ? '\n' : character));
    rest = rest.slice(match[0].length);
  }
  return labels;
}

function value(samples: Sample[], name: string, domain?: string): number | undefined {
  return samples.find((sample) => sample.name === name && (domain === undefined || sample.labels.domain === domain))?.value;
}

let dir: string;
let metricsPath: string;
let stateDir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hvbackup-metrics-'));
  metricsPath = join(dir, 'textfile', 'hvbackup.prom');
  stateDir = join(dir, 'state');
  return () => rm(dir, { recursive: true, force: true });
});

function result(overrides: Partial<BackupResultMetrics> = {}): BackupResultMetrics {
  return {
    host: 'hv1',
    domain: 'web',
    ok: true,
    finishedAt: new Date('2025-12-01T02:10:00Z'),
    durationSeconds: 600.5,
    bytesRead: 10_737_418_240,
    bytesStored: 5_368_709_120,
    ...overrides,
  };
}

describe('recordBackupResult', () => {
  it('textfile parses strictly', async () => {
    await recordBackupResult(stateDir, metricsPath, result({ repository: { bytes: 123_456, backups: 7 } }));
    const samples = parseExposition(await readFile(metricsPath, 'utf8'));

    expect(value(samples, 'hvbackup_last_success_timestamp_seconds', 'web')).toBe(Date.parse('2025-12-01T02:10:00Z') / 1000);
    expect(value(samples, 'hvbackup_last_attempt_result', 'web')).toBe(1);
    expect(value(samples, 'hvbackup_last_duration_seconds', 'web')).toBe(600.5);
    expect(value(samples, 'hvbackup_last_bytes_read', 'web')).toBe(10_737_418_240);
    expect(value(samples, 'hvbackup_last_bytes_stored', 'web')).toBe(5_368_709_120);
    expect(value(samples, 'hvbackup_repository_bytes')).toBe(123_456);
    expect(value(samples, 'hvbackup_repository_backups')).toBe(7);
  });

  it('recordBackupResult merges domains', async () => {
    await recordBackupResult(stateDir, metricsPath, result({ domain: 'web' }));
    await recordBackupResult(stateDir, metricsPath, result({ domain: 'db', bytesRead: 42 }));
    const samples = parseExposition(await readFile(metricsPath, 'utf8'));

    expect(value(samples, 'hvbackup_last_bytes_read', 'web')).toBe(10_737_418_240);
    expect(value(samples, 'hvbackup_last_bytes_read', 'db')).toBe(42);
    expect(samples.filter((sample) => sample.name === 'hvbackup_last_attempt_result').length).toBe(2);
  });

  it('failed attempt keeps last success', async () => {
    await recordBackupResult(stateDir, metricsPath, result());
    await recordBackupResult(stateDir, metricsPath, result({ ok: false, finishedAt: new Date('2025-12-02T02:01:00Z') }));
    const samples = parseExposition(await readFile(metricsPath, 'utf8'));

    expect(value(samples, 'hvbackup_last_attempt_result', 'web')).toBe(0);
    expect(value(samples, 'hvbackup_last_success_timestamp_seconds', 'web')).toBe(Date.parse('2025-12-01T02:10:00Z') / 1000);
    expect(value(samples, 'hvbackup_last_attempt_timestamp_seconds', 'web')).toBe(Date.parse('2025-12-02T02:01:00Z') / 1000);
  });

  it('never succeeded has no success sample', async () => {
    await recordBackupResult(stateDir, metricsPath, result({ ok: false }));
    const samples = parseExposition(await readFile(metricsPath, 'utf8'));

    expect(value(samples, 'hvbackup_last_success_timestamp_seconds', 'web')).toBeUndefined();
    expect(value(samples, 'hvbackup_last_attempt_result', 'web')).toBe(0);
  });

  it('label values escaped', async () => {
    expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');

    await recordBackupResult(stateDir, metricsPath, result({ domain: 'odd"name\\x' }));
    const samples = parseExposition(await readFile(metricsPath, 'utf8'));
    expect(samples[0].labels.domain).toBe('odd"name\\x');
  });

  it('damaged state file starts over', async () => {
    await recordBackupResult(stateDir, metricsPath, result({ domain: 'old' }));
    await writeFile(metricsStatePath(stateDir), '{ not json');

    await recordBackupResult(stateDir, metricsPath, result({ domain: 'new' }));
    const samples = parseExposition(await readFile(metricsPath, 'utf8'));

    expect(value(samples, 'hvbackup_last_attempt_result', 'new')).toBe(1);
    expect(value(samples, 'hvbackup_last_attempt_result', 'old')).toBeUndefined();
  });
});

describe('atomic textfile replace', () => {
  it('temporary name never final', () => {
    const temporary = temporaryPath(metricsPath);
    expect(temporary).not.toBe(metricsPath);
    expect(temporary.endsWith('.prom')).toBe(false);
    expect(temporary.startsWith(join(dir, 'textfile', '.hvbackup.prom.'))).toBe(true);
  });

  it('readers never see partial file', async () => {
    await recordBackupResult(stateDir, metricsPath, result());
    let stop = false;
    let reads = 0;
    const reader = (async () => {
      while (!stop) {
        const text = await readFile(metricsPath, 'utf8');
        parseExposition(text);
        expect(text).toContain('hvbackup_last_bytes_stored{');
        reads += 1;
      }
    })();

    for (let round = 0; round < 40; round += 1) {
      await recordBackupResult(stateDir, metricsPath, result({ bytesRead: round, domain: `vm${round % 5}` }));
    }
    stop = true;
    await reader;

    expect(reads).toBeGreaterThan(0);
    expect(await readdir(join(dir, 'textfile'))).toEqual(['hvbackup.prom']);
    expect(await readdir(stateDir)).toEqual(['metrics-state.json']);
  });
});
