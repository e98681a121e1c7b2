/** Helpers of the drill tests: a CLI process that can be signalled, and checks for leftover sandboxes. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';

import { cliPath } from '../support/cli.js';
import { virsh } from '../support/domains.js';

export interface SpawnedCli {
  child: ChildProcess;
  /** Resolves with the first JSON log line on stderr for which `match` returns true. */
  waitForLog(match: (event: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves when the process ends. */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** Starts bin/hvbackup.js with JSON logs, like runCli, but returns at once so the test can signal it. */
export function spawnCli(args: string[]): SpawnedCli {
  const child = spawn(process.execPath, [cliPath, '--log-format', 'json', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const listeners: ((line: string) => void)[] = [];
  let pending = '';

  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    stderr += text;
    pending += text;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) for (const listener of listeners) listener(line);
  });

  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });

  const waitForLog = (match: (event: Record<string, unknown>) => boolean, timeoutMs = 120_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms; stderr so far:\n${stderr}`)), timeoutMs);
      listeners.push((line) => {
        if (!line.startsWith('{')) return;
        const event = JSON.parse(line) as Record<string, unknown>;
        if (match(event)) {
          clearTimeout(timer);
          resolve(event);
        }
      });
      void exit.then(() => {
        clearTimeout(timer);
        reject(new Error(`process ended before a matching log line; stderr:\n${stderr}`));
      });
    });

  return { child, waitForLog, exit };
}

/** Names of defined domains that start with `prefix` (sandboxes of the test domains). */
export async function domainsWithPrefix(prefix: string): Promise<string[]> {
  const names = (await virsh('list', '--all', '--name')).split('\n').map((name) => name.trim());
  return names.filter((name) => name.startsWith(prefix));
}

/** Entries of a sandbox directory; a missing directory counts as empty. */
export async function sandboxEntries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/** Stops and undefines sandboxes of the test domains; only names with the given drill- prefix are touched. */
export async function removeSandboxes(prefix: string): Promise<void> {
  if (!prefix.startsWith('drill-hvb-test-')) throw new Error(`refusing to remove domains with prefix ${prefix}`);
  for (const name of await domainsWithPrefix(prefix)) {
    await virsh('destroy', name).catch(() => undefined);
    await virsh('undefine', name, '--nvram').catch(() => undefined);
  }
}
