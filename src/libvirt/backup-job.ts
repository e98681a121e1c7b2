/**
 * A pull-mode backup job: libvirt makes QEMU export each selected disk, as
 * it was when the job began, over NBD on a unix socket. The reader (our NBD
 * client) pulls the blocks it wants. The job stays open until it is aborted,
 * so every caller must call end(), also on failure paths.
 */
import { rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { LibvirtError } from '../errors.js';
import { checkpointCreateXml, pullBackupXml, scratchPath } from './backup-xml.js';
import { backupDisks, parseDomainXml } from './domain.js';
import { prepareJobDirectory, qemuGroupId } from './job-directory.js';
import { withTempFile } from './temp-file.js';
import { isDomainNotFound, VirshCommandError, type Virsh } from './virsh.js';

/** Linux limit for a unix socket path (sun_path is 108 bytes, including the final NUL). */
const MAX_SOCKET_PATH_BYTES = 107;

const SOCKET_WAIT_MS = 30_000;
const JOB_END_WAIT_MS = 60_000;
const POLL_INTERVAL_MS = 100;

export interface PullBackupOptions {
  domain: string;
  /** Absolute path of the NBD unix socket that QEMU creates. */
  socketPath: string;
  /** Absolute directory for the scratch files, one per disk. */
  scratchDir: string;
  /** Disk targets to export, for example `['vda']`. */
  disks: string[];
  /** Checkpoint to back up changes from. Without it the job exports full disks. */
  incrementalFrom?: string;
  /**
   * Disks read in full every time, for example raw disks, which cannot hold
   * dirty bitmaps. They get no bitmap in a new checkpoint and, in an
   * incremental job, are exported whole without a dirty bitmap context.
   */
  fullDisks?: string[];
  /** Checkpoint to create when the job begins, recording a dirty bitmap for each exported disk except `fullDisks`. */
  checkpoint?: { name: string; description?: string };
}

/** Parses `virsh domjobinfo` output into its job type and operation. */
function parseJobInfo(output: string): { type: string; operation: string | undefined } {
  const type = /^Job type:\s*(.+?)\s*$/m.exec(output)?.[1] ?? 'None';
  const operation = /^Operation:\s*(.+?)\s*$/m.exec(output)?.[1];
  return { type, operation };
}

/** Returns true when the domain has a backup job open, for example one left behind by a crashed run. */
export async function findActiveBackupJob(virsh: Virsh, domain: string): Promise<boolean> {
  let output: string;
  try {
    output = await virsh.run(['domjobinfo', domain], { domain });
  } catch (error) {
    // A domain that stopped (destroyed mid-backup, for example) has no job left to end.
    if (error instanceof VirshCommandError && /domain is not running/.test(error.stderr)) return false;
    throw error;
  }
  const info = parseJobInfo(output);
  return info.type !== 'None' && info.operation === 'Backup';
}

function validateOptions(options: PullBackupOptions): void {
  if (options.disks.length === 0) {
    throw new LibvirtError(`pull backup of domain '${options.domain}' has no disks to export`, { hint: 'pass at least one disk target, for example vda' });
  }
  for (const [name, path] of [['socketPath', options.socketPath], ['scratchDir', options.scratchDir]] as const) {
    if (!isAbsolute(path)) {
      throw new LibvirtError(`${name} '${path}' is invalid: libvirt needs an absolute path`, { hint: 'pass an absolute path' });
    }
  }
  if (Buffer.byteLength(options.socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new LibvirtError(`socket path '${options.socketPath}' is ${Buffer.byteLength(options.socketPath)} bytes, more than the ${MAX_SOCKET_PATH_BYTES} bytes a unix socket path may have`, {
      hint: 'use a shorter directory for the socket, for example under /run',
    });
  }
}

async function isSocket(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isSocket();
  } catch {
    return false;
  }
}

export class PullBackupJob {
  readonly domain: string;
  readonly socketPath: string;
  readonly disks: readonly string[];
  readonly scratchFiles: readonly string[];
  private ending: Promise<void> | undefined;

  private constructor(private readonly virsh: Virsh, options: PullBackupOptions) {
    this.domain = options.domain;
    this.socketPath = options.socketPath;
    this.disks = [...options.disks];
    this.scratchFiles = options.disks.map((target) => scratchPath(options.scratchDir, target));
  }

  /**
   * Begins a pull backup and returns once the NBD socket accepts connections.
   * Throws LibvirtError when the domain is unknown or not running, already has
   * a backup job, or a requested disk cannot be backed up. When the socket
   * does not appear, the job is aborted before the error is thrown.
   */
  static async begin(virsh: Virsh, options: PullBackupOptions): Promise<PullBackupJob> {
    validateOptions(options);
    const { domain } = options;

    if (await findActiveBackupJob(virsh, domain)) {
      throw new LibvirtError(`domain '${domain}' already has a backup job running`, {
        hint: `if no other hvbackup run owns it, end it with: virsh -c ${virsh.uri} domjobabort ${domain}`,
      });
    }

    const liveXml = await virsh.run(['dumpxml', domain], { domain });
    const info = parseDomainXml(liveXml);
    const eligible = backupDisks(info).map((disk) => disk.target);
    for (const target of options.disks) {
      if (!eligible.includes(target)) {
        throw new LibvirtError(`disk '${target}' of domain '${domain}' cannot be backed up: it is missing, read-only, shareable, removable or not a file or block device`, {
          hint: `disks that can be backed up: ${eligible.join(', ') || 'none'}`,
        });
      }
    }

    const groupId = qemuGroupId(liveXml);
    await prepareJobDirectory(dirname(options.socketPath), groupId);
    await prepareJobDirectory(options.scratchDir, groupId);

    const job = new PullBackupJob(virsh, options);
    await job.removeLeftovers();

    const allTargets = info.disks.map((disk) => disk.target);
    const backupXml = pullBackupXml({ ...options, allTargets });
    const checkpointXml = options.checkpoint === undefined ? undefined : checkpointCreateXml({ ...options.checkpoint, disks: options.disks, allTargets, fullDisks: options.fullDisks });

    await withTempFile('backup.xml', backupXml, async (backupPath) => {
      if (checkpointXml === undefined) {
        await virsh.run(['backup-begin', domain, backupPath], { domain });
        return;
      }
      await withTempFile('checkpoint.xml', checkpointXml, (checkpointPath) => virsh.run(['backup-begin', domain, backupPath, checkpointPath], { domain }));
    });

    try {
      await job.waitForSocket();
    } catch (error) {
      await job.end();
      throw error;
    }
    return job;
  }

  /** Returns the NBD export name of a disk, which libvirt sets to the disk target. */
  exportName(target: string): string {
    return target;
  }

  /** Returns the NBD metadata context that lists blocks changed since `incrementalFrom`. It exists only in incremental jobs. */
  dirtyBitmapContext(target: string): string {
    return `qemu:dirty-bitmap:backup-${target}`;
  }

  /**
   * Aborts the job and waits until libvirt reports no job for the domain, then
   * removes the scratch files and the socket. Safe to call more than once and
   * when the job or the domain is already gone.
   */
  end(): Promise<void> {
    this.ending ??= this.abortAndWait();
    return this.ending;
  }

  private async abortAndWait(): Promise<void> {
    try {
      await this.virsh.run(['domjobabort', this.domain], { domain: this.domain });
    } catch (error) {
      const noJob = error instanceof VirshCommandError && /no job is active|domain is not running/.test(error.stderr);
      if (!noJob && !isDomainNotFound(error)) throw error;
    }

    const deadline = Date.now() + JOB_END_WAIT_MS;
    for (;;) {
      let active: boolean;
      try {
        active = await findActiveBackupJob(this.virsh, this.domain);
      } catch (error) {
        if (isDomainNotFound(error)) break;
        throw error;
      }
      if (!active) break;

      if (Date.now() > deadline) {
        throw new LibvirtError(`backup job of domain '${this.domain}' still active ${JOB_END_WAIT_MS / 1000} s after domjobabort`, {
          hint: `check with: virsh -c ${this.virsh.uri} domjobinfo ${this.domain}`,
        });
      }
      await sleep(POLL_INTERVAL_MS);
    }

    await this.removeLeftovers();
  }

  /** Removes scratch files and socket. libvirt usually removes them itself when the job ends. */
  private async removeLeftovers(): Promise<void> {
    for (const path of [...this.scratchFiles, this.socketPath]) await rm(path, { force: true });
  }

  private async waitForSocket(): Promise<void> {
    const deadline = Date.now() + SOCKET_WAIT_MS;
    while (!(await isSocket(this.socketPath))) {
      if (Date.now() > deadline) {
        throw new LibvirtError(`NBD socket ${this.socketPath} of the backup job of domain '${this.domain}' did not appear within ${SOCKET_WAIT_MS / 1000} s`, {
          hint: `check the job with: virsh -c ${this.virsh.uri} domjobinfo ${this.domain}`,
        });
      }
      await sleep(POLL_INTERVAL_MS);
    }
  }
}
