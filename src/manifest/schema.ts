/**
 * The manifest: the plaintext, signed description of one backup and its
 * commit point. It carries no secrets: ids, times, disk geometry and the
 * SHA-256 of every segment's ciphertext, so anyone holding the host's public
 * key can check a backup is complete without being able to decrypt it.
 */
import { z } from 'zod';

import { VerificationError } from '../errors.js';

export const MANIFEST_FORMAT = 'hvbackup-manifest';
export const MANIFEST_VERSION = 1;

/** Disk target names as `<target dev=...>` gives them, for example `vda`. */
export const DISK_TARGET_PATTERN = /^[a-z][a-z0-9]{1,15}$/;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);
const fingerprint = z.string().regex(/^[0-9A-F]{40}$|^[0-9A-F]{64}$/);
const safeInteger = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const segmentSchema = z
  .object({
    name: z.string().regex(/^\d{6,9}\.pgp$/),
    /** Ciphertext bytes. */
    size: safeInteger,
    /** SHA-256 of the ciphertext, checked before anything is decrypted. */
    sha256,
    /** Plaintext bytes of the tar stream this segment carries. */
    plainSize: safeInteger,
  })
  .strict();

export const diskSchema = z
  .object({
    target: z.string().regex(DISK_TARGET_PATTERN),
    format: z.enum(['qcow2', 'raw']),
    sourcePath: z.string(),
    virtualSize: safeInteger,
    /** Bytes of disk data in the archive (allocated or dirty extents). */
    storedBytes: safeInteger,
    extentCount: safeInteger,
    entry: z.string(),
  })
  .strict();

/** A disk that the configuration's excludeDisks left out. It has no archive entry and no checkpoint bitmap. */
export const excludedDiskSchema = z
  .object({
    target: z.string().regex(DISK_TARGET_PATTERN),
    /** Image format from `<driver type=...>`, `raw` when the XML names none; any format, since the disk is never read. */
    format: z.string().min(1).max(32),
    sourcePath: z.string(),
  })
  .strict();

export const manifestSchema = z
  .object({
    format: z.literal(MANIFEST_FORMAT),
    version: z.literal(MANIFEST_VERSION),
    repositoryId: z.string().uuid(),
    backupId: z.string(),
    host: z.string(),
    domain: z.object({ name: z.string(), uuid: z.string() }).strict(),
    type: z.enum(['full', 'incremental']),
    parent: z.string().nullable(),
    checkpoint: z.string().nullable(),
    /** The full backup this chain starts with, and how many incrementals lead here (0 for a full backup). */
    chain: z.object({ full: z.string(), length: z.number().int().nonnegative() }).strict(),
    startedAt: z.string().datetime(),
    snapshotAt: z.string().datetime(),
    finishedAt: z.string().datetime(),
    tool: z.object({ name: z.literal('hvbackup'), version: z.string() }).strict(),
    disks: z.array(diskSchema),
    /** Absent in manifests of backups that excluded no disk, and in those written before the key existed. */
    excludedDisks: z.array(excludedDiskSchema).optional(),
    nvram: z.string().nullable(),
    archiveBytes: safeInteger,
    segmentSize: safeInteger,
    segments: z.array(segmentSchema),
    encryption: z
      .object({
        recipients: z.array(fingerprint).min(1),
        seipdVersion: z.union([z.literal(1), z.literal(2)]),
      })
      .strict(),
    signer: fingerprint,
  })
  .strict();

export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestDisk = z.infer<typeof diskSchema>;
export type ManifestExcludedDisk = z.infer<typeof excludedDiskSchema>;
export type ManifestSegment = z.infer<typeof segmentSchema>;

/** Serialises a manifest; the signature covers exactly these bytes. */
export function encodeManifest(manifest: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
}

/**
 * Parses manifest bytes that already passed signature verification, and checks
 * the structure a signature cannot: segment names must be consecutive from
 * 000000, so a truncated or reordered list is rejected.
 */
export function decodeManifest(bytes: Uint8Array, objectName: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new VerificationError('manifest-syntax', objectName, `not valid JSON: ${(error as Error).message}`);
  }

  const result = manifestSchema.safeParse(raw);
  if (!result.success) {
    const first = result.error.issues[0];
    throw new VerificationError(
      'manifest-schema',
      objectName,
      `${first.path.join('.') || '(top level)'}: ${first.message}`,
    );
  }

  const manifest = result.data;
  manifest.segments.forEach((segment, index) => {
    const expected = `${String(index).padStart(6, '0')}.pgp`;
    if (segment.name !== expected) {
      throw new VerificationError('segment-order', objectName, `segment ${index} is named ${segment.name}, expected ${expected}`);
    }
  });

  const targets = [...manifest.disks, ...(manifest.excludedDisks ?? [])].map((disk) => disk.target);
  const repeated = targets.find((target, index) => targets.indexOf(target) !== index);
  if (repeated !== undefined) {
    throw new VerificationError('manifest-schema', objectName, `disk target ${repeated} appears more than once in disks and excludedDisks`);
  }

  const plainTotal = manifest.segments.reduce((sum, segment) => sum + segment.plainSize, 0);
  if (plainTotal !== manifest.archiveBytes) {
    throw new VerificationError(
      'segment-list',
      objectName,
      `segments carry ${plainTotal} plaintext bytes but the archive has ${manifest.archiveBytes}`,
    );
  }
  return manifest;
}
