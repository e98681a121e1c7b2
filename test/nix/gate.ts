/**
 * Test gate for the tools the nix/ tests run. A missing tool skips the test
 * file on a developer machine, but under CI=true it throws, so a missing
 * install step fails the run instead of passing as green.
 */
import { execFileSync } from 'node:child_process';

export type NixTool = 'nix-instantiate' | 'systemd-analyze' | 'systemd-tmpfiles';

function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v "$1"', 'sh', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Returns true when every tool is on PATH; under CI=true a missing tool throws. */
export function toolsAvailable(...tools: NixTool[]): boolean {
  const missing = tools.filter((tool) => !hasCommand(tool));
  if (missing.length === 0) return true;

  if (process.env.CI === 'true') {
    throw new Error(`required test tool missing under CI: ${missing.join(', ')}; install nix-bin and systemd from Debian in .ci/run`);
  }
  return false;
}
