/**
 * The entries of a backup's tar stream, in order: the metadata JSON,
 * the domain XML, the NVRAM file when there is one, every disk as a sparse
 * entry, and last the SHA-256 of each disk's stored bytes.
 */
import type { ArchiveWriter } from '../archive/writer.js';
import type { NbdClient } from '../nbd/client.js';
import { readExtents } from './disk-reader.js';
import type { Extent } from './extents.js';
import type { ReadBuffers } from './read-buffers.js';

export const METADATA_ENTRY = 'hvbackup.json';
export const DOMAIN_XML_ENTRY = 'domain.xml';
export const CHECKSUMS_ENTRY = 'checksums.json';

export function diskEntryName(target: string): string {
  return `disks/${target}.img`;
}

export function nvramEntryName(fileName: string): string {
  return `nvram/${fileName}`;
}

export interface DiskPlan {
  target: string;
  format: 'qcow2' | 'raw';
  sourcePath: string;
  virtualSize: number;
  /** Extents whose bytes are stored. */
  extents: Extent[];
  /** Extents that must read as zeros after restore (incremental backups only). */
  zeroExtents: Extent[];
  /** True when the entry contains the whole disk (full backups, and raw disks in incrementals). */
  fullCopy: boolean;
  client: NbdClient;
}

export interface ArchiveMetadata {
  format: 'hvbackup-archive';
  version: 1;
  backupId: string;
  host: string;
  domain: { name: string; uuid: string };
  type: 'full' | 'incremental';
  parent: string | null;
  snapshotAt: string;
  disks: {
    target: string;
    format: string;
    sourcePath: string;
    virtualSize: number;
    entry: string;
    /** The entry contains every allocated extent, so restore starts from an empty image. */
    fullCopy: boolean;
    storedBytes: number;
    extentCount: number;
    zeroExtents: [number, number][];
  }[];
  nvram: string | null;
}

export interface ArchiveChecksums {
  disks: Record<string, { sha256: string; storedBytes: number }>;
}

export interface ProduceArchiveOptions {
  metadata: ArchiveMetadata;
  domainXml: string;
  nvram?: { fileName: string; data: Buffer };
  disks: DiskPlan[];
  readsInFlight: number;
  /** Buffers the disk reads land in; the archive's consumer must go through `readBuffers.returning()`. */
  readBuffers: ReadBuffers;
  /** Ends waits for a free read buffer, for when the consumer has failed. */
  signal?: AbortSignal;
  onDiskBytes?: (bytes: number) => void;
}

/** Writes every entry and finalizes the archive. Returns the checksums it stored. */
export async function produceArchive(writer: ArchiveWriter, options: ProduceArchiveOptions): Promise<ArchiveChecksums> {
  await writer.addFile(METADATA_ENTRY, jsonBytes(options.metadata));
  await writer.addFile(DOMAIN_XML_ENTRY, Buffer.from(options.domainXml, 'utf8'));
  if (options.nvram) {
    await writer.addFile(nvramEntryName(options.nvram.fileName), options.nvram.data);
  }

  const checksums: ArchiveChecksums = { disks: {} };
  for (const disk of options.disks) {
    const data = readExtents(disk.client, disk.extents, {
      inFlight: options.readsInFlight,
      buffers: options.readBuffers,
      signal: options.signal,
      onBytes: options.onDiskBytes,
    });
    const stored = await writer.addSparseFile(diskEntryName(disk.target), {
      realSize: disk.virtualSize,
      extents: disk.extents,
      data,
    });
    checksums.disks[disk.target] = stored;
  }

  await writer.addFile(CHECKSUMS_ENTRY, jsonBytes(checksums));
  await writer.finalize();
  return checksums;
}

function jsonBytes(value: unknown): Buffer {
  return Buffer.from(`${JSON.stringify(value, null, 2)}\n`, 'utf8');
}
