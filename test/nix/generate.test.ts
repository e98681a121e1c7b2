import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';

const nixDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'nix');
const generator = join(nixDir, 'generate.mjs');
const workDir = mkdtempSync(join(tmpdir(), 'hvbackup-generate-'));

afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function runGenerator(args: string[]): { status: number; stderr: string } {
  try {
    execFileSync(process.execPath, [generator, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    return { status: 0, stderr: '' };
  } catch (error) {
    const failure = error as { status: number; stderr: Buffer };
    return { status: failure.status, stderr: failure.stderr.toString() };
  }
}

describe('nix/generate.mjs', () => {
  const outDir = join(workDir, 'fresh');
  runGenerator(['--out', outDir]);
  const committed = ['units.json', ...readdirSync(join(nixDir, 'dist')).map((name) => join('dist', name))];

  test.each(committed)('generator reproduces %s exactly', (relative) => {
    const generated = readFileSync(join(outDir, relative), 'utf8');
    const stored = readFileSync(join(nixDir, relative), 'utf8');
    expect(generated).toBe(stored);
  });

  test('generator writes no uncommitted file', () => {
    const generated = ['units.json', ...readdirSync(join(outDir, 'dist')).map((name) => join('dist', name))];
    expect(generated.sort()).toEqual(committed.sort());
  });

  test('check mode accepts committed files', () => {
    expect(runGenerator(['--check']).status).toBe(0);
  });

  test('check mode rejects an edited file', () => {
    const copyDir = join(workDir, 'edited');
    runGenerator(['--out', copyDir]);
    const timer = join(copyDir, 'dist', 'hvbackup.timer');
    writeFileSync(timer, readFileSync(timer, 'utf8').replace('Persistent=true', 'Persistent=false'));

    const result = runGenerator(['--check', '--out', copyDir]);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('hvbackup.timer');
  });

  test('units.json matches the plain units', () => {
    const data = JSON.parse(readFileSync(join(nixDir, 'units.json'), 'utf8'));
    const service = readFileSync(join(nixDir, 'dist', 'hvbackup.service'), 'utf8');
    expect(service).toContain(`ExecStart=${data.units['hvbackup.service'].Service.ExecStart}\n`);
    expect(data.units['hvbackup.timer'].Timer.Persistent).toBe('true');
  });
});
