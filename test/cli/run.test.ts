/**
 * Exit codes of runCommand when SIGTERM arrives, with real signals: each
 * case runs the built runCommand in a child process that signals itself.
 */
import { spawnSync } from 'node:child_process';

import { describe, expect, it } from 'vitest';

const runModule = JSON.stringify(new URL('../../dist/cli/run.js', import.meta.url).href);

/** Runs a command body in a child process that sends itself SIGTERM first, and returns its exit code and stderr. */
function runWithSignal(body: string): { code: number | null; stderr: string } {
  const script = `const { runCommand } = await import(${runModule});
    process.exitCode = await runCommand({ logFormat: 'json' }, async () => {
      process.kill(process.pid, 'SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 200));
      ${body}
    });`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  return { code: child.status, stderr: child.stderr };
}

describe('runCommand after SIGTERM', () => {
  it('finished work exits 0 with warning', () => {
    const { code, stderr } = runWithSignal('return 0;');
    expect(code, stderr).toBe(0);
    expect(stderr).toContain('SIGTERM arrived too late to stop the command, which finished its work');
  });

  it('failed work exits 130', () => {
    const { code, stderr } = runWithSignal('return 1;');
    expect(code, stderr).toBe(130);
  });

  it('aborted work exits 130', () => {
    const { code, stderr } = runWithSignal("throw new Error('stopped');");
    expect(code, stderr).toBe(130);
    expect(stderr).toContain('interrupted by SIGTERM');
  });
});
