/**
 * The source a backup reads its disks from. A running domain is exported by
 * libvirt's pull-mode backup job, a point-in-time view while the guest keeps
 * running. A shut-off domain's images are exported read-only by qemu-nbd.
 * Both give one NBD export per disk target, so the rest of the backup does
 * not care which one it has.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

import type { DiskInfo } from '../libvirt/domain.js';
import { PullBackupJob } from '../libvirt/backup-job.js';
import type { Virsh } from '../libvirt/virsh.js';
import { NbdClient } from '../nbd/client.js';
import { LibvirtError } from '../errors.js';
import { QemuNbdServer } from './qemu-nbd.js';

export interface DiskExport {
  disk: DiskInfo;
  client: NbdClient;
  /** Block status context with the changes since the parent checkpoint; absent for a full read of this disk. */
  dirtyContext?: string;
}

export interface DiskSource {
  readonly kind: 'pull-backup' | 'qemu-nbd';
  exports: DiskExport[];
  /** Ends the backup job or stops qemu-nbd, closes every connection and removes the work directory. Safe to call twice. */
  close(): Promise<void>;
}

export interface OpenDiskSourceOptions {
  virsh: Virsh;
  domain: string;
  running: boolean;
  disks: DiskInfo[];
  /** A directory of its own for this backup, under the configured scratch directory. */
  workDir: string;
  signal: AbortSignal;
  /** Checkpoint (or offline bitmap) the changed extents are read against; absent for a full backup. */
  incrementalFrom?: string;
  /** Checkpoint to create with a running domain's backup job. */
  checkpoint?: string;
  /** Disks that cannot carry dirty bitmaps (raw) and are read in full every time. */
  fullDisks: string[];
}

const ALLOCATION = 'base:allocation';

/** Maximum unix socket path length on Linux: sun_path is 108 bytes including the final NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

export async function openDiskSource(options: OpenDiskSourceOptions): Promise<DiskSource> {
  const longest = join(options.workDir, `${'x'.repeat(16)}.sock`);
  if (Buffer.byteLength(longest) > MAX_SOCKET_PATH_BYTES) {
    throw new LibvirtError(`NBD socket paths under ${options.workDir} would exceed ${MAX_SOCKET_PATH_BYTES} bytes, the unix socket limit`, {
      hint: 'set "scratchDir" in the configuration to a shorter path such as /var/lib/hvbackup/scratch',
    });
  }
  // QEMU runs as its own user and must create the socket and scratch files here.
  await mkdir(options.workDir, { recursive: true, mode: 0o711 });
  return options.running ? openPullBackup(options) : openImages(options);
}

async function openPullBackup(options: OpenDiskSourceOptions): Promise<DiskSource> {
  const socketPath = join(options.workDir, 'nbd.sock');
  const job = await PullBackupJob.begin(options.virsh, {
    domain: options.domain,
    socketPath,
    scratchDir: options.workDir,
    disks: options.disks.map((disk) => disk.target),
    incrementalFrom: options.incrementalFrom,
    checkpoint: options.checkpoint ? { name: options.checkpoint, description: 'hvbackup' } : undefined,
    fullDisks: options.fullDisks,
  });

  const exports: DiskExport[] = [];
  const close = once(async () => {
    await Promise.allSettled(exports.map((entry) => entry.client.close()));
    await job.end();
    await rm(options.workDir, { recursive: true, force: true });
  });

  try {
    for (const disk of options.disks) {
      const dirtyContext = readsChanges(options, disk) ? job.dirtyBitmapContext(disk.target) : undefined;
      exports.push(await connectExport(disk, job.socketPath, job.exportName(disk.target), dirtyContext, options.signal));
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { kind: 'pull-backup', exports, close };
}

async function openImages(options: OpenDiskSourceOptions): Promise<DiskSource> {
  const servers: QemuNbdServer[] = [];
  const exports: DiskExport[] = [];
  const close = once(async () => {
    await Promise.allSettled(exports.map((entry) => entry.client.close()));
    await Promise.allSettled(servers.map((server) => server.stop()));
    await rm(options.workDir, { recursive: true, force: true });
  });

  try {
    for (const disk of options.disks) {
      if (!disk.sourcePath) {
        throw new LibvirtError(`disk ${disk.target} of domain ${options.domain} has no source path`, {
          hint: 'only file and block disks can be backed up while the domain is shut off',
        });
      }
      const socketPath = join(options.workDir, `${disk.target}.sock`);
      const bitmap = readsChanges(options, disk) ? options.incrementalFrom : undefined;
      const server = await QemuNbdServer.start({
        imagePath: disk.sourcePath,
        format: disk.format ?? 'raw',
        socketPath,
        exportName: disk.target,
        readOnly: true,
        bitmap,
      });
      servers.push(server);
      const dirtyContext = bitmap ? `qemu:dirty-bitmap:${bitmap}` : undefined;
      exports.push(await connectExport(disk, socketPath, disk.target, dirtyContext, options.signal));
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { kind: 'qemu-nbd', exports, close };
}

/** True when this disk is read as changed extents only (an incremental, and a disk with dirty bitmaps). */
function readsChanges(options: OpenDiskSourceOptions, disk: DiskInfo): boolean {
  return options.incrementalFrom !== undefined && !options.fullDisks.includes(disk.target);
}

async function connectExport(
  disk: DiskInfo,
  socketPath: string,
  exportName: string,
  dirtyContext: string | undefined,
  signal: AbortSignal,
): Promise<DiskExport> {
  const metaContexts = dirtyContext ? [ALLOCATION, dirtyContext] : [ALLOCATION];
  const client = await NbdClient.connect({ socketPath, exportName, metaContexts, signal });
  return { disk, client, dirtyContext };
}

function once(action: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= action());
}
