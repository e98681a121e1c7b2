/**
 * Runs the `virsh` command-line client. Everything hvbackup does in libvirt
 * goes through here, so there is one place that sets the connection URI, the
 * timeout and the message language, and turns failures into LibvirtError.
 */
import { execFile } from 'node:child_process';

import { LibvirtError, type HvErrorOptions } from '../errors.js';

export const DEFAULT_URI = 'qemu:///system';

/** Default time limit for one virsh command. Backup jobs start within seconds; 60 s leaves room on a loaded host. */
export const DEFAULT_TIMEOUT_MS = 60_000;

export interface VirshOptions {
  /** libvirt connection URI. Default: qemu:///system. */
  uri?: string;
  /** Time limit in milliseconds for each command. Default: 60 000. */
  timeoutMs?: number;
}

export interface VirshRunOptions {
  /** Text written to virsh's standard input. */
  input?: string;
  signal?: AbortSignal;
  /** Time limit in milliseconds for this command, replacing the default. */
  timeoutMs?: number;
  /** Domain the command acts on, named in the error message. */
  domain?: string;
}

/** A virsh command that exited with a failure. Keeps virsh's standard error for callers that classify failures. */
export class VirshCommandError extends LibvirtError {
  readonly args: string[];
  readonly domain: string | undefined;
  readonly stderr: string;

  constructor(message: string, details: { args: string[]; domain: string | undefined; stderr: string }, options?: HvErrorOptions) {
    super(message, options);
    this.args = details.args;
    this.domain = details.domain;
    this.stderr = details.stderr;
  }
}

/** Returns true when virsh failed because the domain does not exist. */
export function isDomainNotFound(error: unknown): boolean {
  return error instanceof VirshCommandError && /failed to get domain|Domain not found/.test(error.stderr);
}

export class Virsh {
  readonly uri: string;
  readonly timeoutMs: number;

  constructor(options: VirshOptions = {}) {
    this.uri = options.uri ?? DEFAULT_URI;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /**
   * Runs `virsh -c URI ARGS...` and returns its standard output. Throws a
   * VirshCommandError naming the command, the domain and virsh's message when
   * virsh exits with a failure, times out or is aborted.
   */
  run(args: string[], options: VirshRunOptions = {}): Promise<string> {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const argv = ['-c', this.uri, ...args];

    return new Promise((resolve, reject) => {
      // LC_ALL=C keeps libvirt's messages in English, because callers match
      // them (for example "domain is not running").
      const child = execFile(
        'virsh',
        argv,
        { env: { ...process.env, LC_ALL: 'C' }, timeout: timeoutMs, signal: options.signal, maxBuffer: 64 * 1024 * 1024 },
        (error, stdout, stderr) => {
          if (!error) {
            resolve(stdout);
            return;
          }
          reject(this.describeFailure(args, options.domain, error, stderr, timeoutMs));
        },
      );

      if (options.input !== undefined) child.stdin?.end(options.input);
      else child.stdin?.end();
    });
  }

  private describeFailure(args: string[], domain: string | undefined, error: Error & { code?: unknown; killed?: boolean }, stderr: string, timeoutMs: number): VirshCommandError {
    const command = `virsh -c ${this.uri} ${args.join(' ')}`;
    const where = domain === undefined ? '' : ` for domain '${domain}'`;
    const output = stderr.trim().replace(/^error: /gm, '').replace(/\n+/g, '; ');

    let reason: string;
    if (error.name === 'AbortError') reason = 'aborted';
    else if (error.code === 'ENOENT') reason = 'virsh not found in PATH';
    else if (error.killed) reason = `timed out after ${timeoutMs} ms`;
    else reason = output || error.message;

    return new VirshCommandError(
      `${command} failed${where}: ${reason}`,
      { args, domain, stderr },
      { hint: this.hintFor(stderr, domain, error.code === 'ENOENT'), cause: error },
    );
  }

  private hintFor(stderr: string, domain: string | undefined, missingBinary: boolean): string {
    if (missingBinary) return 'install the libvirt client (Debian: apt-get install libvirt-clients)';
    if (/failed to connect|Failed to connect socket/.test(stderr)) return `is libvirtd running? try: virsh -c ${this.uri} version`;
    if (domain !== undefined && /failed to get domain|Domain not found/.test(stderr)) return `check the domain name with: virsh -c ${this.uri} list --all`;
    if (/Permission denied/.test(stderr)) return 'QEMU runs as its own user (libvirt-qemu on Debian): the files and every parent directory must be reachable by it';
    return `run the command by hand to see the full output: virsh -c ${this.uri} ...`;
  }
}
