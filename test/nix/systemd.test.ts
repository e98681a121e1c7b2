/**
 * Checks the generated plain units with systemd-analyze verify and the
 * tmpfiles rules with systemd-tmpfiles --root. Neither needs systemd as
 * PID 1. verify rejects a unit whose ExecStart binary does not exist, and
 * /usr/bin/hvbackup is not installed here, so the units are verified as
 * copies whose ExecStart points at /bin/true; every other line is unchanged.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';

import { toolsAvailable } from './gate.js';

const distDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'nix', 'dist');
const unitNames = ['hvbackup.service', 'hvbackup.timer', 'hvbackup-drill.service', 'hvbackup-drill.timer'];
const workDir = mkdtempSync(join(tmpdir(), 'hvbackup-systemd-'));

afterAll(() => rmSync(workDir, { recursive: true, force: true }));

/** Copies the units into dir with ExecStart pointing at /bin/true. */
function copyUnits(dir: string, edit: (text: string) => string = (text) => text): void {
  mkdirSync(dir, { recursive: true });
  for (const name of unitNames) {
    const text = readFileSync(join(distDir, name), 'utf8').replace(/^ExecStart=\/usr\/bin\/hvbackup /m, 'ExecStart=/bin/true ');
    writeFileSync(join(dir, name), edit(text));
  }
}

/** Runs systemd-analyze verify; it exits 0 on unknown keys, so stderr counts too. */
function verify(dir: string, names: string[]): { status: number | null; output: string } {
  const result = spawnSync('systemd-analyze', ['verify', '--man=no', ...names.map((name) => join(dir, name))], {
    encoding: 'utf8',
    env: { ...process.env, SYSTEMD_LOG_LEVEL: 'notice' },
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

describe.runIf(toolsAvailable('systemd-analyze'))('systemd-analyze verify', () => {
  test('generated units verify cleanly', () => {
    const dir = join(workDir, 'units');
    copyUnits(dir);
    const result = verify(dir, unitNames);
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });

  test('verify reports an unknown key', () => {
    const dir = join(workDir, 'broken');
    copyUnits(dir, (text) => text.replace('ProtectHome=true', 'ProtectHome=true\nProtectHomeTypo=true'));
    expect(verify(dir, ['hvbackup.service']).output).toContain('ProtectHomeTypo');
  });

  test('verify reports a missing binary', () => {
    const dir = join(workDir, 'missing-binary');
    copyUnits(dir, (text) => text.replace('ExecStart=/bin/true ', 'ExecStart=/nonexistent/hvbackup '));
    expect(verify(dir, ['hvbackup.service']).status).not.toBe(0);
  });
});

describe.runIf(toolsAvailable('systemd-tmpfiles'))('systemd-tmpfiles rules', () => {
  const root = join(workDir, 'root');
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\nhvbackup:x:990:990::/:/usr/sbin/nologin\nhvbackup-drill:x:991:991::/:/usr/sbin/nologin\n');
  writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\nhvbackup:x:990:\nhvbackup-drill:x:991:\n');
  const result = spawnSync('systemd-tmpfiles', ['--create', `--root=${root}`, join(distDir, 'hvbackup.conf')], { encoding: 'utf8' });

  test('tmpfiles create succeeds', () => {
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  test.each([
    ['var/lib/hvbackup', 0o750, 990],
    ['var/lib/hvbackup/scratch', 0o2770, 990],
    ['var/lib/hvbackup/staging', 0o700, 990],
    ['var/lib/hvbackup-drill', 0o750, 991],
  ])('tmpfiles creates %s', (path, mode, owner) => {
    const stat = statSync(join(root, path));
    expect(stat.mode & 0o7777).toBe(mode);
    expect(stat.uid).toBe(owner);
    expect(stat.gid).toBe(owner);
  });
});
