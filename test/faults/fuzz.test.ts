/**
 * Seeded, bounded fuzzing of the two parsers that read input from outside:
 * `decodeManifest` (manifest bytes from the repository) and `validateConfig`
 * (the configuration file). Every case must either parse or throw the
 * parser's own error class (VerificationError, ConfigError), never another
 * error type, and finish quickly. A failing case is reproducible from the
 * seed and its case number, which the assertion messages print.
 *
 * Also a table of malformed command-line values: each exits with status 2
 * and an error that names the value.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { validateConfig } from '../../src/config/load.js';
import { ConfigError, VerificationError } from '../../src/errors.js';
import { decodeManifest, encodeManifest } from '../../src/manifest/schema.js';
import { runCli } from '../support/cli.js';
import { writeTestConfig } from '../support/config.js';
import { seededRandom } from '../support/fault-proxy.js';
import { validManifest } from '../support/manifest.js';
import { createTestKeys } from '../support/setup-keys.js';

const SEED = 0x5eed_2024;
/** Maximum time for one parse. Cases average a few milliseconds, so only a hang or quadratic work exceeds it. */
const CASE_LIMIT_MS = 1000;
const MiB = 1024 * 1024;

type Random = () => number;

function pick<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

function integer(random: Random, below: number): number {
  return Math.floor(random() * below);
}

/** Values that break assumptions: out-of-range numbers, wrong types, huge and odd strings, deep nesting. */
function hostileValue(random: Random): unknown {
  const choices: (() => unknown)[] = [
    () => -1,
    () => -(2 ** 63),
    () => 2 ** 64,
    () => 1e308,
    () => Number.MAX_SAFE_INTEGER + 2,
    () => 0.5,
    () => 0,
    () => '',
    () => 'x'.repeat(integer(random, 2 * MiB)),
    () => `1${' '.repeat(integer(random, 200_000))}!`,
    () => '\u0000\uffff\ud800',
    () => '../../etc/passwd',
    () => null,
    () => true,
    () => [],
    () => ({}),
    () => ({ __proto__: { polluted: true } }),
    () => JSON.parse('{"__proto__": {"polluted": true}}'),
    () => Array.from({ length: integer(random, 20_000) }, () => 1),
    () => nested(integer(random, 3000)),
  ];
  return pick(random, choices)();
}

function nested(depth: number): unknown {
  let value: unknown = 0;
  for (let level = 0; level < depth; level += 1) value = [value];
  return value;
}

/** Lists the path to every value inside a JSON tree, the root excluded. */
function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== 'object') return [];
  const entries = Array.isArray(value) ? value.map((item, index) => [index, item] as const) : Object.entries(value);
  return entries.flatMap(([key, child]) => [[...prefix, key], ...paths(child, [...prefix, key])]);
}

/** Replaces, deletes or adds one value somewhere in a deep copy of `base`. */
function mutateTree(random: Random, base: unknown): unknown {
  const copy = structuredClone(base) as Record<string | number, unknown>;
  const path = pick(random, paths(copy));
  let parent: Record<string | number, unknown> = copy;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;

  const operation = integer(random, 10);
  if (operation === 0) delete parent[last];
  else if (operation === 1 && !Array.isArray(parent)) parent[`unknown${integer(random, 10)}`] = hostileValue(random);
  else parent[last] = hostileValue(random);
  return copy;
}

/** Corrupts encoded bytes: bit flips, truncation, inserted garbage, a repeated slice or a text-level deep nesting. */
function mutateBytes(random: Random, bytes: Buffer): Buffer {
  const operation = integer(random, 5);
  if (operation === 0) {
    const copy = Buffer.from(bytes);
    const flips = 1 + integer(random, 8);
    for (let flip = 0; flip < flips; flip += 1) {
      const position = integer(random, copy.length);
      copy[position] = copy[position]! ^ (1 << integer(random, 8));
    }
    return copy;
  }
  if (operation === 1) return bytes.subarray(0, integer(random, bytes.length));
  if (operation === 2) {
    const position = integer(random, bytes.length);
    const garbage = Buffer.from(Array.from({ length: 1 + integer(random, 16) }, () => integer(random, 256)));
    return Buffer.concat([bytes.subarray(0, position), garbage, bytes.subarray(position)]);
  }
  if (operation === 3) {
    const start = integer(random, bytes.length);
    const end = start + integer(random, bytes.length - start);
    return Buffer.concat([bytes.subarray(0, end), bytes.subarray(start, end), bytes.subarray(end)]);
  }
  // Nesting written as text, deeper than any recursive parser's stack.
  const depth = 1000 + integer(random, 200_000);
  const text = bytes.toString('utf8').replace('"nvram": null', `"nvram": ${'['.repeat(depth)}${']'.repeat(depth)}`);
  return Buffer.from(text, 'utf8');
}

interface FuzzOutcome {
  accepted: number;
  wrongErrors: string[];
  slowCases: string[];
}

/** Runs `parse` on each case and sorts the outcomes. `expected` is the only error class allowed. */
function fuzz(cases: number, makeCase: (random: Random) => unknown, parse: (input: unknown) => unknown, expected: new (...args: never[]) => Error): FuzzOutcome {
  const random = seededRandom(SEED);
  const outcome: FuzzOutcome = { accepted: 0, wrongErrors: [], slowCases: [] };

  for (let index = 0; index < cases; index += 1) {
    const input = makeCase(random);
    const started = performance.now();
    try {
      parse(input);
      outcome.accepted += 1;
    } catch (error) {
      if (!(error instanceof expected)) {
        outcome.wrongErrors.push(`case ${index}: ${(error as Error)?.constructor?.name}: ${String((error as Error)?.message).slice(0, 200)}`);
      }
    }
    const elapsed = performance.now() - started;
    if (elapsed > CASE_LIMIT_MS) outcome.slowCases.push(`case ${index}: ${elapsed.toFixed(0)} ms`);
  }
  return outcome;
}

describe('decodeManifest fuzzing', () => {
  const base = validManifest();
  const bytes = encodeManifest(base);

  it('valid manifest decodes', () => {
    expect(decodeManifest(bytes, 'm')).toEqual(base);
  });

  it('mutated bytes rejected cleanly', () => {
    const heapBefore = process.memoryUsage().heapUsed;
    const outcome = fuzz(2000, (random) => mutateBytes(random, bytes), (input) => decodeManifest(input as Buffer, 'fuzz/manifest.json'), VerificationError);

    expect(outcome.wrongErrors).toEqual([]);
    expect(outcome.slowCases).toEqual([]);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(512 * MiB);
  });

  it('mutated values rejected cleanly', () => {
    const checks: string[] = [];
    const outcome = fuzz(
      1500,
      (random) => Buffer.from(JSON.stringify(mutateTree(random, base)), 'utf8'),
      (input) => {
        const manifest = decodeManifest(input as Buffer, 'fuzz/manifest.json');
        // An accepted manifest must still satisfy the checks a reader relies on.
        const plain = manifest.segments.reduce((sum, segment) => sum + segment.plainSize, 0);
        if (plain !== manifest.archiveBytes) checks.push(`accepted plainSize sum ${plain} != archiveBytes ${manifest.archiveBytes}`);
        manifest.segments.forEach((segment, index) => {
          if (segment.name !== `${String(index).padStart(6, '0')}.pgp`) checks.push(`accepted segment ${index} named ${segment.name}`);
          if (!Number.isSafeInteger(segment.size) || segment.size < 0) checks.push(`accepted segment size ${segment.size}`);
        });
        return manifest;
      },
      VerificationError,
    );

    expect(outcome.wrongErrors).toEqual([]);
    expect(outcome.slowCases).toEqual([]);
    expect(checks).toEqual([]);
    // Most mutations must be rejected; a fuzzer that accepts everything tests nothing.
    expect(outcome.accepted).toBeLessThan(1500);
  });

  it('deep nesting rejected', () => {
    const depth = 500_000;
    const text = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    expect(() => decodeManifest(Buffer.from(text), 'deep')).toThrow(VerificationError);
  });
});

describe('validateConfig fuzzing', () => {
  const base = {
    host: 'host-a',
    repository: { type: 's3', bucket: 'backups', prefix: 'p', endpoint: 'http://127.0.0.1:7480', region: 'us-east-1', forcePathStyle: true, objectLock: { mode: 'GOVERNANCE', days: 7 } },
    scratchDir: 'scratch',
    stagingDir: '/var/lib/hvbackup/staging',
    stateDir: 'state',
    signingKey: 'host-key.asc',
    recipients: ['admin.pub.asc'],
    trustedSigners: ['A1B2 C3D4 E5F6 0718 293A 4B5C 6D7E 8F90 1234 5678'],
    adminKey: 'admin.asc',
    segmentSize: '16MiB',
    encryption: { aead: false },
    chain: { maxLength: 14, maxAgeDays: 30 },
    concurrency: { workers: 2, uploads: 4, downloads: 3, reads: 4, domains: 1 },
    retention: { keepLast: 3, keepDaily: 7, unfinishedGraceHours: 24 },
    quota: '500GiB',
    metricsFile: 'metrics.prom',
    auditFile: null,
    drill: { sandboxDir: '/var/lib/hvbackup-drill', domains: { web: { rpoSeconds: 3600 } } },
    restore: { maxAgeDays: 30 },
  };

  /** Size strings built from the characters a size may contain, and some that it may not. */
  function sizeText(random: Random): string {
    // A number, a long run of blanks and a stray character: the shape that makes regex backtracking slow.
    if (random() < 0.2) return `${integer(random, 100)}${' '.repeat(integer(random, 200_000))}${pick(random, ['!', 'x!', '\t-', 'MiB!'])}`;

    const alphabet = '0123456789.KMGTiBkmgtb -+eE_\t';
    const length = pick(random, [1, 3, 8, 20, 64, 5000, 100_000]);
    return Array.from({ length }, () => alphabet[integer(random, alphabet.length)]).join('');
  }

  it('valid configuration accepted', () => {
    const config = validateConfig(base, '/etc/hvbackup/config.json');
    expect(config.segmentSize).toBe(16 * MiB);
    expect(config.scratchDir).toBe('/etc/hvbackup/scratch');
  });

  it('mutated settings rejected cleanly', () => {
    const outcome = fuzz(2000, (random) => mutateTree(random, base), (input) => validateConfig(input, '/etc/hvbackup/config.json'), ConfigError);

    expect(outcome.wrongErrors).toEqual([]);
    expect(outcome.slowCases).toEqual([]);
    expect(outcome.accepted).toBeLessThan(2000);
  });

  it('segment size strings rejected cleanly', () => {
    const outcome = fuzz(
      1000,
      (random) => ({ ...base, segmentSize: sizeText(random) }),
      (input) => validateConfig(input, '/etc/hvbackup/config.json'),
      ConfigError,
    );

    expect(outcome.wrongErrors).toEqual([]);
    expect(outcome.slowCases).toEqual([]);
  });

  it('non-objects rejected', () => {
    for (const value of [null, 0, 'config', [], true, undefined]) {
      expect(() => validateConfig(value, '/etc/hvbackup/config.json')).toThrow(ConfigError);
    }
  });
});

describe('malformed command-line values', () => {
  let work: string;
  let config: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hvb-fault-cli-'));
    const keys = await createTestKeys(work);
    config = await writeTestConfig(work, { keys, repository: { type: 'local', path: join(work, 'repo') } });
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  const cases: { name: string; args: (dir: string) => string[]; names: string }[] = [
    { name: 'backup --mode bogus', args: () => ['backup', '--mode', 'bogus', 'hvb-test-any'], names: 'bogus' },
    { name: 'restore --at yesterday', args: () => ['restore', '--yes', '--at', 'yesterday', 'hvb-test-any'], names: 'yesterday' },
    { name: 'unknown command', args: () => ['frobnicate'], names: 'frobnicate' },
    { name: 'restore without argument', args: () => ['restore'], names: 'backup' },
    { name: 'create-admin --name ../x', args: (dir) => ['keys', 'create-admin', '--output', dir, '--name', '../x'], names: '../x' },
    { name: 'backup without domain', args: () => ['backup'], names: 'domain' },
    { name: 'backup --all with names', args: () => ['backup', '--all', 'hvb-test-any'], names: '--all' },
    { name: 'unknown option', args: () => ['list', '--frobnicate'], names: '--frobnicate' },
  ];

  it.each(cases)('$name exits 2', async ({ args, names }) => {
    const output = await mkdtemp(join(work, 'keys-'));
    const result = await runCli(['--config', config, ...args(output)], { timeoutMs: 60_000 });

    expect(result.code).toBe(2);
    expect(result.stderr).toContain(names);
    expect(await readdir(output)).toEqual([]);
  });
});
