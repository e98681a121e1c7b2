/**
 * Starts real NBD servers (qemu-nbd, nbdkit) on unix sockets in fresh temp
 * dirs for the NBD tests, and builds test images with qemu-img and qemu-io.
 * Every server is stopped by its PID.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';

export interface RunningServer {
  socketPath: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Creates a fresh temp dir; the caller removes it with removeTempDir. */
export function makeTempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `hvbackup-${prefix}-`));
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Runs a command and returns its stdout; throws with stderr when it fails. */
export function run(command: string, args: string[]): string {
  return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Creates a qcow2 image of `size` (qemu-img syntax, such as 64M). */
export function createQcow2(path: string, size: string): void {
  run('qemu-img', ['create', '-q', '-f', 'qcow2', path, size]);
}

/** Runs qemu-io commands such as 'write -P 0xab 1M 64k' on a qcow2 image. */
export function qemuIo(path: string, commands: string[]): string {
  return run('qemu-io', ['-f', 'qcow2', ...commands.flatMap((command) => ['-c', command]), path]);
}

/**
 * Returns true when qemu-io finds `pattern` in every byte of the range. It
 * opens the image read-only and shares the lock of a running qemu-nbd.
 */
export function hasPattern(path: string, pattern: number, offset: number, length: number): boolean {
  const output = run('qemu-io', ['-r', '-U', '-f', 'qcow2', '-c', `read -P ${pattern} ${offset} ${length}`, path]);
  return !output.includes('Pattern verification failed');
}

/** Starts qemu-nbd on `image`; `extraArgs` such as ['-r'] or ['-B', 'bm0']. */
export function startQemuNbd(dir: string, image: string, extraArgs: string[] = []): Promise<RunningServer> {
  const socketPath = join(dir, `qemu-nbd-${Date.now()}-${Math.random().toString(16).slice(2)}.sock`);
  const args = [`--socket=${socketPath}`, '--format=qcow2', '--persistent', '--shared=4', ...extraArgs, image];
  return startServer('qemu-nbd', args, socketPath);
}

/** Starts nbdkit in the foreground, for example with ['memory', '64M']. */
export function startNbdkit(dir: string, args: string[], options: string[] = []): Promise<RunningServer> {
  const socketPath = join(dir, `nbdkit-${Date.now()}-${Math.random().toString(16).slice(2)}.sock`);
  return startServer('nbdkit', ['--unix', socketPath, '--foreground', '--exit-with-parent', ...options, ...args], socketPath);
}

/**
 * Spawns a server and waits, for at most 10 s, until its socket accepts a
 * connection. The socket file appears at bind(), before listen(), so its
 * existence alone does not mean that connections succeed.
 */
async function startServer(command: string, args: string[], socketPath: string): Promise<RunningServer> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });

  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;

  while (!existsSync(socketPath) || !(await accepts(socketPath))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      if (child.exitCode === null) child.kill();
      throw new Error(`${command} ${args.join(' ')} did not create ${socketPath}: ${stderr.trim() || 'no output'}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }

  return {
    socketPath,
    process: child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      const pid = child.pid;
      process.kill(pid, 'SIGTERM');

      // qemu-nbd may take a few seconds to exit on SIGTERM; SIGKILL after 5 s keeps a stuck server from outliving the tests.
      const timer = setTimeout(() => process.kill(pid, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Returns true when a connection to the unix socket succeeds; the probe connection is closed at once. */
function accepts(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect({ path: socketPath });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}
