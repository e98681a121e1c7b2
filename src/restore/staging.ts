/**
 * The staging area of one restore: a private directory under the configured
 * staging directory that receives every restored file before anything on
 * the host changes. It is removed on every exit path, so a failed or
 * interrupted restore leaves nothing behind.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { HvError, ExitCode } from '../errors.js';
import { QemuNbdServer } from '../backup/qemu-nbd.js';
import { NbdClient } from '../nbd/client.js';
import { isProcessRunning } from '../util/process.js';

const execFileAsync = promisify(execFile);

const OWNER_FILE = 'owner.pid';

/**
 * Removes staging directories left by restores that were killed (SIGKILL,
 * power loss), whose `finally` never ran: those whose owner.pid names a
 * process that no longer runs. Directories without that file are left alone.
 */
async function removeStaleStaging(root: string): Promise<void> {
  for (const name of await readdir(root)) {
    const dir = join(root, name);
    const pid = Number.parseInt(await readFile(join(dir, OWNER_FILE), 'utf8').catch(() => ''), 10);
    if (!Number.isInteger(pid) || pid <= 0 || isProcessRunning(pid)) continue;
    await rm(dir, { recursive: true, force: true });
  }
}

export class Staging {
  private constructor(
    readonly dir: string,
    private readonly socketDir: string,
  ) {}

  static async create(root: string, label: string): Promise<Staging> {
    try {
      await mkdir(root, { recursive: true, mode: 0o700 });
      await removeStaleStaging(root);
      const dir = await mkdtemp(join(root, `${label}-`));
      // The owner's PID lets a later restore remove this directory if this process is killed.
      await writeFile(join(dir, OWNER_FILE), `${process.pid}\n`);
      // Unix socket paths must stay under 108 bytes, which a deep staging directory can exceed.
      const socketDir = await mkdtemp(join(tmpdir(), 'hvb-restore-'));
      return new Staging(dir, socketDir);
    } catch (error) {
      throw new HvError('staging', `cannot create a staging directory under ${root}: ${(error as Error).message}`, ExitCode.failure, {
        hint: 'set "stagingDir" in the configuration to a writable directory with room for the restored disks',
        cause: error,
      });
    }
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** Returns a unix socket path for a qemu-nbd server of this restore. */
  socketPath(name: string): string {
    return join(this.socketDir, `${name}.sock`);
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    await rm(this.socketDir, { recursive: true, force: true });
  }
}

/**
 * A staging disk image opened for writing through qemu-nbd, so qcow2 and raw
 * are written the same way and holes stay holes.
 */
export class StagingDisk {
  private constructor(
    readonly path: string,
    private readonly server: QemuNbdServer,
    readonly client: NbdClient,
  ) {}

  static async create(options: { path: string; format: 'qcow2' | 'raw'; virtualSize: number; socketPath: string }): Promise<StagingDisk> {
    await runQemuImg(['create', '-q', '-f', options.format, options.path, String(options.virtualSize)], `qemu-img create of ${options.path}`);
    return StagingDisk.serve(options);
  }

  /**
   * Changes the size of an existing staging image and serves it again. An
   * incremental backup of a disk resized since its parent carries the new
   * size. Its bitmap tracks the writes to the new space, and space that no
   * backup wrote reads as zeros, as on the resized disk.
   */
  static async resize(options: { path: string; format: 'qcow2' | 'raw'; virtualSize: number; socketPath: string }): Promise<StagingDisk> {
    await runQemuImg(['resize', '-q', '--shrink', '-f', options.format, options.path, String(options.virtualSize)], `qemu-img resize of ${options.path}`);
    return StagingDisk.serve(options);
  }

  private static async serve(options: { path: string; format: 'qcow2' | 'raw'; socketPath: string }): Promise<StagingDisk> {
    const server = await QemuNbdServer.start({
      imagePath: options.path,
      format: options.format,
      socketPath: options.socketPath,
      // The image path as export name puts the staging file into every NBD error, such as ENOSPC on a write.
      exportName: options.path,
      readOnly: false,
    });
    try {
      const client = await NbdClient.connect({ socketPath: options.socketPath, exportName: options.path });
      return new StagingDisk(options.path, server, client);
    } catch (error) {
      await server.stop();
      throw error;
    }
  }

  /** Flushes, disconnects and stops qemu-nbd. Safe to call twice. */
  async close(options: { flush: boolean }): Promise<void> {
    try {
      if (options.flush) await this.client.flush();
    } finally {
      await this.client.close().catch(() => undefined);
      await this.server.stop();
    }
  }
}

/**
 * The staging images of one restore, one per disk target, kept open across
 * the backups of a chain.
 */
export class StagingDisks {
  private readonly open_ = new Map<string, StagingDisk>();
  private readonly paths = new Map<string, string>();

  constructor(private readonly staging: Staging) {}

  async open(disk: { target: string; format: 'qcow2' | 'raw'; virtualSize: number }, options: { fresh: boolean }): Promise<StagingDisk> {
    const existing = this.open_.get(disk.target);
    if (existing && !options.fresh && existing.client.size === disk.virtualSize) return existing;

    const path = this.staging.path(`${disk.target}.${disk.format}`);
    const image = { path, format: disk.format, virtualSize: disk.virtualSize, socketPath: this.staging.socketPath(disk.target) };
    let staged: StagingDisk;
    if (existing && !options.fresh) {
      // qemu-nbd must let go of the image before qemu-img may change its size.
      this.open_.delete(disk.target);
      await existing.close({ flush: true });
      staged = await StagingDisk.resize(image);
    } else {
      if (existing) {
        this.open_.delete(disk.target);
        await existing.close({ flush: false });
      }
      await rm(path, { force: true });
      staged = await StagingDisk.create(image);
    }
    this.open_.set(disk.target, staged);
    this.paths.set(disk.target, path);
    return staged;
  }

  /** Staging image path of a disk target. */
  path(target: string): string {
    const path = this.paths.get(target);
    if (!path) throw new Error(`no staging image for disk ${target}`);
    return path;
  }

  async closeAll(options: { flush: boolean }): Promise<void> {
    const disks = [...this.open_.values()];
    this.open_.clear();
    const results = await Promise.allSettled(disks.map((disk) => disk.close(options)));
    const failed = results.find((result) => result.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }
}

async function runQemuImg(args: string[], description: string): Promise<void> {
  try {
    await execFileAsync('qemu-img', args);
  } catch (error) {
    throw new HvError('staging', `${description} failed: ${(error as { stderr?: string }).stderr ?? (error as Error).message}`, ExitCode.failure, {
      hint: 'check free space in the staging directory and that qemu-img is installed',
      cause: error,
    });
  }
}
