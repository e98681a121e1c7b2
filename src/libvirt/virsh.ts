/**
 * Runs the `virsh` command-line client. Everything hvbackup does in libvirt
 * goes through here, so there is one place that sets the connection URI, the
 * timeout and the message language, and turns failures into LibvirtError.
 */
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

import { LibvirtError, type HvErrorOptions } from '../errors.js';
import type { Logger } from '../log/logger.js';

export const DEFAULT_URI = 'qemu:///system';

/** Default time limit for one virsh command. Backup jobs start within seconds; 60 s leaves room on a loaded host. */
export const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * How long backups and restores keep retrying a command while libvirtd is
 * unreachable, for example during a daemon restart. In
 * test/faults/libvirtd-restart.test.ts a stop and start takes under 0.5 s
 * on 2 cores, so 60 s leaves room for a slow start on a loaded host.
 */
export const RECONNECT_MS = 60_000;

const RETRY_FIRST_DELAY_MS = 500;
const RETRY_MAX_DELAY_MS = 5_000;

/**
 * Commands that may run twice with the same result, so they are retried even
 * when the connection broke after libvirtd may have received them. Any other
 * command is retried only when virsh could not connect at all.
 */
const REPEATABLE_COMMANDS = new Set([
  'version',
  'list',
  'domuuid',
  'domstate',
  'dominfo',
  'dumpxml',
  'domblklist',
  'domjobinfo',
  'checkpoint-list',
  'checkpoint-dumpxml',
  'capabilities',
  'domcapabilities',
  // A second abort of the same job finds none left, which callers accept.
  'domjobabort',
]);

export interface VirshOptions {
  /** libvirt connection URI. Default: qemu:///system. */
  uri?: string;
  /** Time limit in milliseconds for each command. Default: 60 000. */
  timeoutMs?: number;
  /** How long to keep retrying a command while libvirtd is unreachable, in milliseconds. Default: 0, no retry. */
  reconnectMs?: number;
  /** Receives a warning for every retry. */
  logger?: Logger;
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
  /** True when virsh ended before it reported a result: time limit, abort signal, or killed by a signal. */
  readonly stopped: boolean;

  constructor(message: string, details: { args: string[]; domain: string | undefined; stderr: string; stopped?: boolean }, options?: HvErrorOptions) {
    super(message, options);
    this.args = details.args;
    this.domain = details.domain;
    this.stderr = details.stderr;
    this.stopped = details.stopped ?? false;
  }
}

/** virsh's messages (libvirt 9) when it cannot reach libvirtd, or loses the connection during a call. */
const CONNECTION_FAILURE = /failed to connect to the hypervisor|Failed to connect socket|End of file while reading data|Cannot recv data|Cannot write data|client socket is closed|Disconnected from \S+ due to/;

/** Returns true when virsh could not reach libvirtd or lost the connection to it. */
export function isConnectionFailure(error: unknown): boolean {
  return error instanceof VirshCommandError && CONNECTION_FAILURE.test(error.stderr);
}

/** Returns true when virsh failed before its command reached libvirtd. */
function isConnectFailure(error: unknown): boolean {
  return error instanceof VirshCommandError && /failed to connect to the hypervisor/.test(error.stderr);
}

/**
 * Returns true when virsh failed without libvirtd's verdict on the command,
 * because there was no connection, the connection broke, or virsh was stopped
 * before it reported a result. Such a command may or may not have taken effect.
 */
export function isWithoutVerdict(error: unknown): boolean {
  return error instanceof VirshCommandError && (error.stopped || isConnectionFailure(error));
}

/** Returns true when virsh failed because the domain does not exist. */
export function isDomainNotFound(error: unknown): boolean {
  return error instanceof VirshCommandError && /failed to get domain|Domain not found/.test(error.stderr);
}

export class Virsh {
  readonly uri: string;
  readonly timeoutMs: number;
  readonly reconnectMs: number;
  private readonly logger: Logger | undefined;

  constructor(options: VirshOptions = {}) {
    this.uri = options.uri ?? DEFAULT_URI;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.reconnectMs = options.reconnectMs ?? 0;
    this.logger = options.logger;
  }

  /**
   * Runs `virsh -c URI ARGS...` and returns its standard output. Throws a
   * VirshCommandError naming the command, the domain and virsh's message when
   * virsh exits with a failure, times out or is aborted.
   *
   * While libvirtd is unreachable the command is retried, with growing
   * delays, for up to `reconnectMs`: always when virsh could not connect, and
   * for REPEATABLE_COMMANDS also when the connection broke during the call.
   */
  async run(args: string[], options: VirshRunOptions = {}): Promise<string> {
    const started = Date.now();
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.runOnce(args, options);
      } catch (error) {
        const retryable = isConnectFailure(error) || (isConnectionFailure(error) && REPEATABLE_COMMANDS.has(args[0] ?? ''));
        const remainingMs = started + this.reconnectMs - Date.now();
        if (!retryable || options.signal?.aborted) throw error;
        if (remainingMs <= 0) throw this.withRetries(error as VirshCommandError, attempt, Date.now() - started);

        const delayMs = Math.min(RETRY_FIRST_DELAY_MS * 2 ** (attempt - 1), RETRY_MAX_DELAY_MS, remainingMs);
        this.logger?.warn(
          // The message carries virsh's last line, and the whole error would repeat it in every line.
          { command: args[0], domain: options.domain, attempt, delayMs },
          `libvirtd is unreachable (${(error as VirshCommandError).stderr.trim().split('\n').at(-1)}); retrying virsh ${args[0]} in ${delayMs} ms`,
        );
        await sleep(delayMs, undefined, { signal: options.signal }).catch(() => undefined);
      }
    }
  }

  /** Adds the retries to the error of the last attempt. */
  private withRetries(error: VirshCommandError, attempts: number, elapsedMs: number): VirshCommandError {
    if (attempts === 1) return error;
    return new VirshCommandError(
      `${error.message} (libvirtd unreachable for ${Math.round(elapsedMs / 1000)} s, ${attempts} attempts)`,
      { args: error.args, domain: error.domain, stderr: error.stderr, stopped: error.stopped },
      { hint: error.hint, cause: error.cause },
    );
  }

  private runOnce(args: string[], options: VirshRunOptions): Promise<string> {
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

  private describeFailure(
    args: string[],
    domain: string | undefined,
    error: Error & { code?: unknown; killed?: boolean; signal?: NodeJS.Signals | null },
    stderr: string,
    timeoutMs: number,
  ): VirshCommandError {
    const command = `virsh -c ${this.uri} ${args.join(' ')}`;
    const where = domain === undefined ? '' : ` for domain '${domain}'`;
    const output = stderr.trim().replace(/^error: /gm, '').replace(/\n+/g, '; ');

    let reason: string;
    if (error.name === 'AbortError') reason = 'aborted';
    else if (error.code === 'ENOENT') reason = 'virsh not found in PATH';
    else if (error.killed) reason = `timed out after ${timeoutMs} ms`;
    else if (error.signal) reason = `virsh was killed by ${error.signal}`;
    else reason = output || error.message;

    return new VirshCommandError(
      `${command} failed${where}: ${reason}`,
      { args, domain, stderr, stopped: error.name === 'AbortError' || error.killed === true || Boolean(error.signal) },
      { hint: this.hintFor(stderr, domain, error.code === 'ENOENT'), cause: error },
    );
  }

  private hintFor(stderr: string, domain: string | undefined, missingBinary: boolean): string {
    if (missingBinary) return 'install the libvirt client (Debian: apt-get install libvirt-clients)';
    if (CONNECTION_FAILURE.test(stderr)) return `libvirtd is not responding: start it if it is stopped (systemctl start libvirtd), check it with "virsh -c ${this.uri} version", then run the command again`;
    if (domain !== undefined && /failed to get domain|Domain not found/.test(stderr)) return `check the domain name with: virsh -c ${this.uri} list --all`;
    if (/Permission denied/.test(stderr)) return 'QEMU runs as its own user (libvirt-qemu on Debian): the files and every parent directory must be reachable by it';
    return `run the command by hand to see the full output: virsh -c ${this.uri} ...`;
  }
}
