/**
 * Applies one backup's tar stream to the staging area. The stream must
 * contain exactly the entries the signed manifest promises, in the fixed
 * order the backup writes them. Disk data goes through NBD into staging
 * images, and each disk's SHA-256 is compared with the checksums entry at
 * the end.
 * Incremental backups reuse the images of the chain applied before them.
 */
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';

import type { ArchiveEntry } from '../archive/reader.js';
import {
  CHECKSUMS_ENTRY,
  DOMAIN_XML_ENTRY,
  METADATA_ENTRY,
  type ArchiveChecksums,
  type ArchiveMetadata,
} from '../backup/archive-contents.js';
import { VerificationError } from '../errors.js';
import type { Manifest } from '../manifest/schema.js';
import type { NbdClient } from '../nbd/client.js';
import type { SegmentMemory } from './segment-buffers.js';
import type { Staging } from './staging.js';

/** NBD writes kept in flight per disk. */
const WRITES_IN_FLIGHT = 4;

export interface ExtractedBackup {
  metadata: ArchiveMetadata;
  domainXml: string;
  /** Staging path of the NVRAM file, when the backup has one. */
  nvramPath?: string;
}

/** Destination of disk data: an NBD connection to a staging image, or a sink that drops it when only verifying. */
export type DiskWriter = Pick<NbdClient, 'write' | 'writeZeroes'>;

export interface ExtractOptions {
  manifest: Manifest;
  /** Receives the NVRAM file; without it the NVRAM is checked and discarded. */
  staging?: Staging;
  /** Returns the writer of a disk; `fresh` requests a new empty image because the entry contains the whole disk. */
  openDisk: (disk: Manifest['disks'][number], fresh: boolean) => Promise<DiskWriter>;
  onBytes?: (bytes: number) => void;
  /** Owner of the segment buffers that disk data is a view of; each write retains its data until it settles. */
  memory?: SegmentMemory;
}

export async function extractBackup(entries: AsyncIterable<ArchiveEntry>, options: ExtractOptions): Promise<ExtractedBackup> {
  const { manifest } = options;
  const object = `${manifest.backupId} archive`;
  const expected = expectedEntries(manifest);
  const digests = new Map<string, { sha256: string; storedBytes: number }>();
  let metadata: ArchiveMetadata | undefined;
  let domainXml: string | undefined;
  let nvramPath: string | undefined;
  let index = 0;

  for await (const entry of entries) {
    const name = expected[index];
    if (name === undefined || entry.name !== name) {
      throw new VerificationError('archive-entries', object, `entry ${index} is ${entry.name}, expected ${name ?? 'the end of the archive'}`);
    }
    index += 1;

    if (name === METADATA_ENTRY) {
      metadata = parseJson<ArchiveMetadata>(await readFile(entry, object), name, object);
      checkMetadata(metadata, manifest, object);
    } else if (name === DOMAIN_XML_ENTRY) {
      domainXml = (await readFile(entry, object)).toString('utf8');
    } else if (name === manifest.nvram) {
      const nvram = await readFile(entry, object);
      if (options.staging) {
        nvramPath = options.staging.path('nvram.fd');
        await writeFile(nvramPath, nvram, { mode: 0o600 });
      }
    } else if (name === CHECKSUMS_ENTRY) {
      const checksums = parseJson<ArchiveChecksums>(await readFile(entry, object), name, object);
      compareChecksums(checksums, digests, object);
    } else {
      const disk = manifest.disks.find((candidate) => candidate.entry === name)!;
      if (entry.kind !== 'sparse') throw new VerificationError('archive-entries', object, `${name} is not a sparse disk entry`);
      if (entry.realSize !== disk.virtualSize) {
        throw new VerificationError('disk-size', object, `${name} has size ${entry.realSize}, the manifest says ${disk.virtualSize}`);
      }
      const described = metadata?.disks.find((item) => item.target === disk.target);
      const writer = await options.openDisk(disk, described?.fullCopy === true);
      const zeroExtents = described?.zeroExtents ?? [];
      digests.set(disk.target, await writeDisk(entry, writer, zeroExtents, options));
    }
  }

  if (index !== expected.length || !metadata || domainXml === undefined) {
    throw new VerificationError('archive-entries', object, `archive ended after ${index} of ${expected.length} entries`);
  }
  return { metadata, domainXml, nvramPath };
}

function expectedEntries(manifest: Manifest): string[] {
  const names = [METADATA_ENTRY, DOMAIN_XML_ENTRY];
  if (manifest.nvram) names.push(manifest.nvram);
  for (const disk of manifest.disks) names.push(disk.entry);
  names.push(CHECKSUMS_ENTRY);
  return names;
}

async function readFile(entry: ArchiveEntry, object: string): Promise<Buffer> {
  if (entry.kind !== 'file') throw new VerificationError('archive-entries', object, `${entry.name} must be a regular file entry`);
  return entry.read();
}

function parseJson<T>(bytes: Buffer, name: string, object: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (error) {
    throw new VerificationError('archive-metadata', object, `${name} is not valid JSON: ${(error as Error).message}`);
  }
}

function checkMetadata(metadata: ArchiveMetadata, manifest: Manifest, object: string): void {
  if (metadata.backupId !== manifest.backupId || metadata.domain?.uuid !== manifest.domain.uuid || metadata.type !== manifest.type) {
    throw new VerificationError(
      'archive-metadata',
      object,
      `archive belongs to backup ${metadata.backupId} (${metadata.type}) of domain uuid ${metadata.domain?.uuid}, not to this manifest`,
    );
  }
  const targets = (metadata.disks ?? []).map((disk) => disk.target).join(',');
  const expected = manifest.disks.map((disk) => disk.target).join(',');
  if (targets !== expected) {
    throw new VerificationError('archive-metadata', object, `archive lists disks ${targets}, the manifest ${expected}`);
  }
}

function compareChecksums(checksums: ArchiveChecksums, digests: Map<string, { sha256: string; storedBytes: number }>, object: string): void {
  for (const [target, actual] of digests) {
    const recorded = checksums.disks?.[target];
    if (!recorded || recorded.sha256 !== actual.sha256 || recorded.storedBytes !== actual.storedBytes) {
      throw new VerificationError(
        'disk-checksum',
        object,
        `disk ${target}: restored ${actual.storedBytes} bytes with SHA-256 ${actual.sha256}, recorded ${recorded?.storedBytes} bytes ${recorded?.sha256}`,
      );
    }
  }
}

/** Writes a sparse entry's data (and recorded zero ranges) into a staging disk, hashing what it writes. */
async function writeDisk(
  entry: Extract<ArchiveEntry, { kind: 'sparse' }>,
  client: DiskWriter,
  zeroExtents: [number, number][],
  options: Pick<ExtractOptions, 'onBytes' | 'memory'>,
): Promise<{ sha256: string; storedBytes: number }> {
  const { onBytes, memory } = options;
  const hash = createHash('sha256');
  const inFlight: Promise<void>[] = [];
  let storedBytes = 0;

  for await (const { offset, data } of entry.chunks()) {
    hash.update(data);
    storedBytes += data.length;
    // `data` is a view of a segment buffer, which must not be reused while the write may still read it.
    memory?.retain(data);
    const write = client.write(offset, data);
    write.then(
      () => memory?.release(data),
      () => memory?.release(data, { reusable: false }),
    );
    inFlight.push(write);
    if (inFlight.length >= WRITES_IN_FLIGHT) await inFlight.shift();
    onBytes?.(data.length);
  }
  await Promise.all(inFlight);

  for (const [offset, length] of zeroExtents) {
    await client.writeZeroes(offset, length);
  }
  return { sha256: hash.digest('hex'), storedBytes };
}
