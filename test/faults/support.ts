/**
 * Shared steps of the fault tests that run real backups. They start a CLI
 * process that a test can kill or signal, and check what a fault may leave
 * behind: repository objects, libvirt jobs, checkpoints, bitmaps, staging.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { cliPath } from '../support/cli.js';
import { virsh } from '../support/domains.js';

const execFileAsync = promisify(execFile);

/** A CLI run that the test controls: it can be killed or signalled while it works. */
export interface CliProcess {
  child: ChildProcess;
  /** Resolves when the process has exited, with its status or the signal that ended it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/**
 * Starts the CLI in its own process group (its PID is the group id), so a
 * test can wait for children such as virsh or qemu-nbd that outlive a
 * killed CLI process.
 */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(process.execPath, [cliPath, '--log-format', 'json', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, exited };
}

/** Waits until no process of the CLI's process group is left, or throws after `timeoutMs`. */
export async function waitForProcessGroup(process_: CliProcess, timeoutMs = 60_000): Promise<void> {
  const group = process_.child.pid!;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      process.kill(-group, 0);
    } catch {
      return;
    }
    if (Date.now() > deadline) throw new Error(`processes of group ${group} still run after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Resolves once `stderr` of the process contains `text`, or rejects after `timeoutMs`. */
export function waitForLog(process: CliProcess, text: string, timeoutMs = 60_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`no log line containing ${JSON.stringify(text)} within ${timeoutMs} ms; stderr:\n${seen}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      seen += chunk.toString('utf8');
      if (seen.includes(text)) {
        clearTimeout(timer);
        process.child.stderr!.off('data', onData);
        resolve();
      }
    };
    process.child.stderr!.on('data', onData);
    process.exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`process exited before logging ${JSON.stringify(text)}; stderr:\n${seen}`));
    });
  });
}

export interface RepositoryBackup {
  backupId: string;
  dir: string;
  committed: boolean;
  /** Problems of a committed backup: a segment missing or of another size than its manifest records. */
  problems: string[];
}

/** Reads every backup of a domain in a local repository and checks each committed manifest against its segments. */
export async function inspectLocalRepository(repository: string, host: string, domain: string): Promise<RepositoryBackup[]> {
  const domainDir = join(repository, 'hosts', host, 'domains', domain);
  const ids = await readdir(domainDir).catch(() => [] as string[]);
  const backups: RepositoryBackup[] = [];

  for (const backupId of ids.sort()) {
    const dir = join(domainDir, backupId);
    const manifestText = await readFile(join(dir, 'manifest.json'), 'utf8').catch(() => undefined);
    const backup: RepositoryBackup = { backupId, dir, committed: manifestText !== undefined, problems: [] };
    backups.push(backup);
    if (manifestText === undefined) continue;

    const manifest = JSON.parse(manifestText) as { segments: { name: string; size: number }[] };
    for (const segment of manifest.segments) {
      const size = await stat(join(dir, 'segments', segment.name)).then(
        (info) => info.size,
        () => undefined,
      );
      if (size === undefined) backup.problems.push(`${backupId}: segment ${segment.name} missing`);
      else if (size !== segment.size) backup.problems.push(`${backupId}: segment ${segment.name} has ${size} bytes, manifest records ${segment.size}`);
    }
    const signature = await stat(join(dir, 'manifest.json.sig')).catch(() => undefined);
    if (!signature) backup.problems.push(`${backupId}: manifest.json.sig missing`);
  }
  return backups;
}

/** Returns the job type that `virsh domjobinfo` reports ('None' when no job runs). */
export async function domainJobType(domain: string): Promise<string> {
  let output: string;
  try {
    output = await virsh('domjobinfo', domain);
  } catch (error) {
    // libvirt rejects domjobinfo on a shut-off domain, which cannot have a job.
    if ((error as Error).message.includes('domain is not running')) return 'None';
    throw error;
  }
  const line = output.split('\n').find((text) => text.startsWith('Job type:'));
  return line ? line.slice('Job type:'.length).trim() : 'None';
}

export async function checkpointNames(domain: string): Promise<string[]> {
  const output = await virsh('checkpoint-list', '--name', domain);
  return output
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}

/** Lists the persistent bitmaps of a qcow2 image. --force-share reads it while QEMU has it open. */
export async function imageBitmapNames(path: string): Promise<string[]> {
  const { stdout } = await execFileAsync('qemu-img', ['info', '--force-share', '--output=json', path]);
  const info = JSON.parse(stdout) as { 'format-specific'?: { data?: { bitmaps?: { name: string }[] } } };
  return (info['format-specific']?.data?.bitmaps ?? []).map((bitmap) => bitmap.name);
}

/** Returns null when both images have the same guest-visible content, else qemu-img's explanation. */
export async function compareDisks(reference: string, candidate: string): Promise<string | null> {
  try {
    await execFileAsync('qemu-img', ['compare', '--force-share', reference, candidate]);
    return null;
  } catch (error) {
    const failure = error as { stdout?: string; stderr?: string; message: string };
    return `${failure.stdout ?? ''}${failure.stderr ?? ''}`.trim() || failure.message;
  }
}

export async function definedDomains(): Promise<string[]> {
  return (await virsh('list', '--all', '--name'))
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}

/** Lists the entries of a directory, or [] when it does not exist. */
export async function entries(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
