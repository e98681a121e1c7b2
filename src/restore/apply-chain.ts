/**
 * Applies a verified chain to the staging area, oldest first: the full
 * backup creates each staging image, every incremental writes its changed
 * extents (and zero ranges) over it. A disk copied in full inside an
 * incremental (a raw disk, which has no dirty bitmap) starts from a fresh
 * image so that ranges now unallocated read as zeros.
 */
import { readArchive } from '../archive/reader.js';
import type { SegmentDecryptor, SessionKey } from '../crypto/index.js';
import type { Logger } from '../log/logger.js';
import type { Progress } from '../log/progress.js';
import type { ObjectStore } from '../repository/store.js';
import type { RateLimiter } from '../util/rate-limiter.js';
import type { ChainLink } from './chain.js';
import { extractBackup, type ExtractedBackup } from './extract.js';
import { createSegmentBuffers, readSegments } from './segment-source.js';
import type { Staging, StagingDisks } from './staging.js';

export interface ApplyChainOptions {
  store: ObjectStore;
  decryptor: SegmentDecryptor;
  staging: Staging;
  disks: StagingDisks;
  trustedSigners: string[];
  readAhead: number;
  limiter?: RateLimiter;
  signal: AbortSignal;
  /** See SegmentSourceOptions.sessionKeyFor. */
  sessionKeyFor?: (ciphertext: Uint8Array, objectName: string) => Promise<SessionKey>;
  progress?: Progress;
  log: Logger;
}

/** Returns what the newest backup of the chain carried besides disk data (domain XML, NVRAM). */
export async function applyChain(chain: ChainLink[], options: ApplyChainOptions): Promise<ExtractedBackup> {
  let extracted: ExtractedBackup | undefined;

  for (const { ref, manifest } of chain) {
    const totalBytes = manifest.disks.reduce((sum, disk) => sum + disk.storedBytes, 0);
    const progress = options.progress?.start(`restore ${ref.domain} ${ref.backupId}`, totalBytes);
    const buffers = createSegmentBuffers(manifest.segments, options.readAhead);
    const plaintext = readSegments({
      store: options.store,
      decryptor: options.decryptor,
      ref,
      segments: manifest.segments,
      trustedSigners: options.trustedSigners,
      readAhead: options.readAhead,
      buffers,
      limiter: options.limiter,
      signal: options.signal,
      sessionKeyFor: options.sessionKeyFor,
    });

    extracted = await extractBackup(readArchive(plaintext), {
      manifest,
      staging: options.staging,
      onBytes: (bytes) => progress?.advance(bytes),
      memory: buffers,
      openDisk: async (disk, fresh) => (await options.disks.open(disk, { fresh: fresh || manifest.type === 'full' })).client,
    });
    progress?.finish();
    options.log.info(
      { phase: 'verify', backupId: ref.backupId, type: manifest.type, segments: manifest.segments.length, bytes: totalBytes, result: 'ok' },
      'backup applied to staging: segments, signatures and disk checksums verified',
    );
  }
  return extracted!;
}
