/**
 * A qemu-nbd process serving one image over a unix socket. Backups of shut-off
 * domains read through it (read-only, which also takes QEMU's shared image
 * lock, so the domain cannot start and write while the backup reads), and
 * restore writes staging images through it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

import { NbdError } from '../errors.js';

/** util-linux setpriv, present on every Debian and NixOS system; without it servers are not tied to our lifetime. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv', '/run/current-system/sw/bin/setpriv'].find((path) => existsSync(path));

export interface QemuNbdOptions {
  imagePath: string;
  format: string;
  socketPath: string;
  exportName: string;
  readOnly: boolean;
  /** Persistent dirty bitmap to export as `qemu:dirty-bitmap:<name>`. */
  bitmap?: string;
  /** Milliseconds to wait for the socket. */
  startTimeoutMs?: number;
}

export class QemuNbdServer {
  private stderr = '';
  private exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  private constructor(
    private readonly child: ChildProcess,
    readonly options: QemuNbdOptions,
  ) {
    child.stderr?.on('data', (chunk: Buffer) => {
      if (this.stderr.length < 8192) this.stderr += chunk.toString('utf8');
    });
    child.on('exit', (code, signal) => {
      this.exited = { code, signal };
    });
  }

  static async start(options: QemuNbdOptions): Promise<QemuNbdServer> {
    const args = [
      `--socket=${options.socketPath}`,
      `--format=${options.format}`,
      `--export-name=${options.exportName}`,
      '--persistent',
      '--shared=8',
      '--cache=none',
      '--aio=threads',
    ];
    if (options.readOnly) args.push('--read-only');
    else args.push('--discard=unmap', '--detect-zeroes=unmap');
    if (options.bitmap) args.push(`--bitmap=${options.bitmap}`);
    args.push(options.imagePath);

    // setpriv --pdeathsig makes the kernel kill qemu-nbd when hvbackup dies, even by
    // SIGKILL; an orphaned server would keep the image locked and block the next run.
    const child = SETPRIV
      ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', 'qemu-nbd', ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn('qemu-nbd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const server = new QemuNbdServer(child, options);
    await server.waitForSocket(options.startTimeoutMs ?? 30_000);
    return server;
  }

  private async waitForSocket(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let spawnError: Error | undefined;
    this.child.once('error', (error) => {
      spawnError = error;
    });

    while (Date.now() < deadline) {
      if (spawnError) {
        throw new NbdError(`cannot run qemu-nbd for ${this.options.imagePath}: ${spawnError.message}`, {
          hint: 'install qemu-utils (Debian) or qemu (NixOS) so qemu-nbd is on PATH',
          cause: spawnError,
        });
      }
      if (this.exited) {
        throw new NbdError(
          `qemu-nbd for ${this.options.imagePath} exited with status ${this.exited.code ?? this.exited.signal}: ${this.stderr.trim()}`,
          { hint: 'check that the image exists, has the expected format and is not in use by a running domain' },
        );
      }
      // The socket file can exist a moment before qemu-nbd listens on it, so probe with a connection.
      if (await acceptsConnections(this.options.socketPath)) return;
      await sleep(20);
    }
    await this.stop();
    throw new NbdError(`qemu-nbd for ${this.options.imagePath} did not open ${this.options.socketPath} within ${timeoutMs} ms`);
  }

  /** Stops the server and waits for it to exit. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

function acceptsConnections(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
