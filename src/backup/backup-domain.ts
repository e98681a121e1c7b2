/**
 * One backup of one domain, end to end. The order of steps is the safety
 * argument: segments are uploaded first, then the detached signature, and
 * the manifest last with a no-overwrite write. A backup whose manifest is
 * missing is unfinished and invisible to restore; the libvirt job or
 * qemu-nbd and the scratch files are released in `finally` whatever happens.
 */
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';

import { ArchiveWriter } from '../archive/writer.js';
import { signDetached } from '../crypto/index.js';
import { LibvirtError, RepositoryError } from '../errors.js';
import { backupDisks, parseDomainXml, type DiskInfo } from '../libvirt/domain.js';
import {
  manifestKey,
  newBackupId,
  signatureKey,
  type BackupRef,
} from '../manifest/layout.js';
import { encodeManifest, MANIFEST_FORMAT, MANIFEST_VERSION, type Manifest } from '../manifest/schema.js';
import { TOOL_VERSION } from '../version.js';
import {
  diskEntryName,
  produceArchive,
  type ArchiveMetadata,
  type DiskPlan,
} from './archive-contents.js';
import type { BackupContext } from './context.js';
import { openDiskSource, type DiskSource } from './disk-source.js';
import { dataExtents, totalLength } from './extents.js';
import { uploadSegments } from './segment-pipeline.js';

export interface BackupResult {
  ref: BackupRef;
  manifest: Manifest;
  durationMs: number;
  bytesRead: number;
  bytesStored: number;
}

export async function backupDomain(context: BackupContext, domainName: string): Promise<BackupResult> {
  const started = new Date();
  const { config, logger, store } = context;
  const ref: BackupRef = { host: config.host, domain: domainName, backupId: newBackupId(started) };
  const log = logger.child({ domain: domainName, backupId: ref.backupId });

  const domainXml = await context.domains.dumpXml(domainName, { inactive: true, securityInfo: true });
  const info = parseDomainXml(domainXml);
  const disks = selectDisks(domainName, backupDisks(info));
  const state = await context.domains.state(domainName);
  const running = state === 'running' || state === 'paused';

  if (await store.head(manifestKey(ref))) {
    throw new RepositoryError(`backup ${ref.backupId} of ${domainName} already exists in ${store.description}`, {
      hint: 'run the backup again; a new id is chosen each time',
    });
  }

  log.info({ phase: 'start', state, disks: disks.map((disk) => disk.target) }, 'backup started');
  const source = await openDiskSource({
    virsh: context.virsh,
    domain: domainName,
    running,
    disks,
    workDir: join(config.scratchDir, `${domainName}-${ref.backupId}`),
    signal: context.signal,
  });

  try {
    const snapshotAt = new Date();
    const plans = await planDisks(source);
    const nvram = info.nvramPath ? await readNvram(info.nvramPath, domainName) : undefined;
    const metadata = buildMetadata(ref, info, plans, snapshotAt, nvram?.fileName ?? null);
    const totalBytes = plans.reduce((sum, plan) => sum + totalLength(plan.extents), 0);
    log.info({ phase: 'snapshot', bytes: totalBytes, source: source.kind }, 'disks exported, reading allocated extents');

    const progress = context.progress?.start(`backup ${domainName}`, totalBytes);
    const writer = new ArchiveWriter({ mtime: snapshotAt });
    const producing = produceArchive(writer, {
      metadata,
      domainXml,
      nvram,
      disks: plans,
      readsInFlight: config.concurrency.reads,
      onDiskBytes: (bytes) => progress?.advance(bytes),
    });
    producing.catch((error: unknown) => writer.destroy(error as Error));

    let uploaded;
    try {
      uploaded = await uploadSegments(writer.stream, {
        store,
        encryptor: context.encryptor,
        ref,
        segmentSize: config.segmentSize,
        inFlight: context.segmentsInFlight,
        signal: context.signal,
        retention: context.retention(),
      });
    } catch (error) {
      writer.destroy(error as Error);
      await producing.catch(() => undefined);
      throw error;
    } finally {
      progress?.finish();
    }
    const checksums = await producing;

    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      repositoryId: context.repositoryId,
      backupId: ref.backupId,
      host: ref.host,
      domain: { name: info.name, uuid: info.uuid },
      type: 'full',
      parent: null,
      checkpoint: null,
      startedAt: started.toISOString(),
      snapshotAt: snapshotAt.toISOString(),
      finishedAt: new Date().toISOString(),
      tool: { name: 'hvbackup', version: TOOL_VERSION },
      disks: plans.map((plan) => ({
        target: plan.target,
        format: plan.format,
        sourcePath: plan.sourcePath,
        virtualSize: plan.virtualSize,
        storedBytes: checksums.disks[plan.target].storedBytes,
        extentCount: plan.extents.length,
        entry: diskEntryName(plan.target),
      })),
      nvram: metadata.nvram,
      archiveBytes: uploaded.archiveBytes,
      segmentSize: config.segmentSize,
      segments: uploaded.segments,
      encryption: { recipients: context.recipientFingerprints, seipdVersion: context.seipdVersion },
      signer: context.signerFingerprint,
    };

    await commitManifest(context, ref, manifest);
    const durationMs = Date.now() - started.getTime();
    log.info(
      { phase: 'commit', bytes: totalBytes, storedBytes: uploaded.storedBytes, segments: uploaded.segments.length, durationMs },
      'backup committed',
    );
    return { ref, manifest, durationMs, bytesRead: totalBytes, bytesStored: uploaded.storedBytes };
  } finally {
    await source.close();
  }
}

/** Writes the detached signature, then the manifest; the manifest write never overwrites. */
async function commitManifest(context: BackupContext, ref: BackupRef, manifest: Manifest): Promise<void> {
  const bytes = encodeManifest(manifest);
  const signature = await signDetached(bytes, context.signingKey);
  const options = { ifNoneMatch: true, retention: context.retention() };

  await context.store.put(signatureKey(ref), Buffer.from(signature, 'utf8'), { ...options, contentType: 'application/pgp-signature' });
  await context.store.put(manifestKey(ref), bytes, { ...options, contentType: 'application/json' });
}

function selectDisks(domainName: string, disks: DiskInfo[]): DiskInfo[] {
  if (disks.length === 0) {
    throw new LibvirtError(`domain ${domainName} has no disk that can be backed up`, {
      hint: 'only writable file or block disks are backed up; check `virsh domblklist --details ' + domainName + '`',
    });
  }
  for (const disk of disks) {
    if (disk.format !== 'qcow2' && disk.format !== 'raw') {
      throw new LibvirtError(`disk ${disk.target} of domain ${domainName} has format ${disk.format ?? '(none)'}`, {
        hint: 'only qcow2 and raw disks are supported; set <driver type="qcow2"/> or "raw" in the domain XML',
      });
    }
  }
  return disks;
}

async function planDisks(source: DiskSource): Promise<DiskPlan[]> {
  const plans: DiskPlan[] = [];
  for (const { disk, client } of source.exports) {
    const allocation = await client.mapExtents('base:allocation');
    plans.push({
      target: disk.target,
      format: disk.format as 'qcow2' | 'raw',
      sourcePath: disk.sourcePath ?? '',
      virtualSize: client.size,
      extents: dataExtents(allocation),
      zeroExtents: [],
      client,
    });
  }
  return plans;
}

async function readNvram(path: string, domainName: string): Promise<{ fileName: string; data: Buffer }> {
  try {
    return { fileName: basename(path), data: await readFile(path) };
  } catch (error) {
    throw new LibvirtError(`cannot read NVRAM file ${path} of domain ${domainName}: ${(error as Error).message}`, {
      hint: 'the backup user needs read access to the NVRAM file (see docs/install.md)',
      cause: error,
    });
  }
}

function buildMetadata(
  ref: BackupRef,
  info: { name: string; uuid: string },
  plans: DiskPlan[],
  snapshotAt: Date,
  nvram: string | null,
): ArchiveMetadata {
  return {
    format: 'hvbackup-archive',
    version: 1,
    backupId: ref.backupId,
    host: ref.host,
    domain: { name: info.name, uuid: info.uuid },
    type: 'full',
    parent: null,
    snapshotAt: snapshotAt.toISOString(),
    disks: plans.map((plan) => ({
      target: plan.target,
      format: plan.format,
      sourcePath: plan.sourcePath,
      virtualSize: plan.virtualSize,
      entry: diskEntryName(plan.target),
      storedBytes: totalLength(plan.extents),
      extentCount: plan.extents.length,
      zeroExtents: plan.zeroExtents.map((extent) => [extent.offset, extent.length] as [number, number]),
    })),
    nvram: nvram === null ? null : `nvram/${nvram}`,
  };
}
