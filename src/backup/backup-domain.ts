/**
 * One backup of one domain, end to end. The order of steps is the safety
 * argument: segments are uploaded first, then the detached signature, and
 * the manifest last with a no-overwrite write. A backup whose manifest is
 * missing is unfinished and invisible to restore. The libvirt job or
 * qemu-nbd and the scratch files are released in `finally` on every path.
 */
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';

import { ArchiveWriter } from '../archive/writer.js';
import { signDetached } from '../crypto/index.js';
import { LibvirtError, RefusedError, RepositoryError } from '../errors.js';
import { findActiveBackupJob } from '../libvirt/backup-job.js';
import { checkpointNames, deleteCheckpoint, listCheckpoints } from '../libvirt/checkpoints.js';
import { parseDomainXml, type DiskInfo, type DomainInfo } from '../libvirt/domain.js';
import type { Logger } from '../log/logger.js';
import {
  manifestKey,
  newBackupId,
  signatureKey,
  type BackupRef,
} from '../manifest/layout.js';
import { encodeManifest, MANIFEST_FORMAT, MANIFEST_VERSION, type Manifest } from '../manifest/schema.js';
import { hasJournal, journalPaths } from '../restore/promotion-journal.js';
import { sharedStateDirectory } from '../util/state-dir.js';
import { TOOL_VERSION } from '../version.js';
import {
  diskEntryName,
  produceArchive,
  type ArchiveMetadata,
  type DiskPlan,
} from './archive-contents.js';
import { decideChain, type BackupMode, type ChainDecision } from './chain.js';
import { startAfterPreviousId } from './backup-clock.js';
import { addImageBitmap, checkpointName, imageBitmaps, pruneCheckpoints, removeImageBitmap } from './checkpoints.js';
import type { BackupContext } from './context.js';
import { excludedDiskRecord, selectDisks } from './disk-selection.js';
import { READ_CHUNK_BYTES } from './disk-reader.js';
import { openDiskSource, type DiskSource } from './disk-source.js';
import { dataExtents, dirtyExtents, totalLength } from './extents.js';
import { lockDomain } from './domain-lock.js';
import { ReadBuffers } from './read-buffers.js';
import { uploadSegments } from './segment-pipeline.js';

export interface BackupResult {
  ref: BackupRef;
  manifest: Manifest;
  durationMs: number;
  bytesRead: number;
  bytesStored: number;
}

export interface BackupOptions {
  mode: BackupMode;
  /** Fixed backup id; normally a new one is made from the start time. */
  backupId?: string;
}

export async function backupDomain(context: BackupContext, domainName: string, options: BackupOptions = { mode: 'full' }): Promise<BackupResult> {
  const { config, logger, store } = context;
  const lock = await lockDomain(config.stateDir, domainName);

  try {
    // The id is made under the lock, in a later second than the previous one (see backup-clock.ts).
    let started = new Date();
    if (options.backupId === undefined) {
      const idsDir = await sharedStateDirectory(config.stateDir, 'backup-ids');
      started = await startAfterPreviousId(join(idsDir, `${domainName}.last-second`));
    }
    const ref: BackupRef = { host: config.host, domain: domainName, backupId: options.backupId ?? newBackupId(started) };
    const log = logger.child({ domain: domainName, backupId: ref.backupId });
    if (lock.recoveredStale) log.warn({ lock: lock.path }, 'took over the lock of a run that was killed');

    // A restore killed while promoting this domain may have left its disks half replaced.
    if (await hasJournal(config.stateDir, domainName)) {
      throw new RefusedError(`domain ${domainName} has an unfinished restore promotion (journal ${journalPaths(config.stateDir, domainName).journal})`, {
        hint: 'an administrator runs "hvbackup recover" (or any restore), which rolls it back or finishes it; then run the backup again',
      });
    }
    return await backupLocked(context, ref, options, log, started);
  } finally {
    await lock.release();
  }
}

async function backupLocked(
  context: BackupContext,
  ref: BackupRef,
  options: BackupOptions,
  log: Logger,
  started: Date,
): Promise<BackupResult> {
  const { config, store } = context;
  const domainName = ref.domain;

  // Three independent reads, run at once because every backup waits for them.
  const [existing, domainXml, state] = await Promise.all([
    store.head(manifestKey(ref)),
    context.domains.dumpXml(domainName, { inactive: true, securityInfo: true }),
    context.domains.state(domainName),
  ]);
  if (existing) {
    throw new RepositoryError(`backup ${ref.backupId} of ${domainName} already exists in ${store.description}`, {
      hint: 'run the backup again without a fixed id; a new id is chosen each time',
    });
  }

  const info = parseDomainXml(domainXml);
  const { included: disks, excluded } = selectDisks(info, config.excludeDisks[domainName] ?? [], log);
  const running = state === 'running' || state === 'paused';

  // A job left by a killed run would make backup-begin fail; with the lock held it is certainly stale.
  if (running && (await findActiveBackupJob(context.virsh, domainName))) {
    log.warn({ phase: 'start' }, 'aborting a stale backup job left by an earlier run');
    await context.virsh.run(['domjobabort', domainName]);
  }

  const rawDisks = disks.filter((disk) => disk.format !== 'qcow2').map((disk) => disk.target);
  const qcow2Disks = disks.filter((disk) => disk.format === 'qcow2');
  const chain = await decideChainFor(context, ref, options.mode, running, { disks, excluded }, qcow2Disks.map((disk) => disk.sourcePath!));
  log.info({ phase: 'start', state, type: chain.type, disks: disks.map((disk) => disk.target) }, `${chain.type} backup: ${chain.reason}`);
  if (chain.type === 'incremental' && rawDisks.length > 0) {
    log.info({ disks: rawDisks }, 'raw disks have no dirty bitmaps and are copied in full in every incremental backup');
  }

  // Every backup of a domain with a qcow2 disk creates a checkpoint, so the next one can be incremental.
  const checkpoint = qcow2Disks.length > 0 ? checkpointName(ref.backupId) : undefined;
  if (checkpoint && !running) {
    for (const disk of qcow2Disks) await addImageBitmap(disk.sourcePath!, checkpoint);
  }
  let committed = false;

  try {
    const source = await openDiskSource({
      virsh: context.virsh,
      domain: domainName,
      running,
      disks,
      workDir: join(config.scratchDir, ref.backupId),
      signal: context.signal,
      incrementalFrom: chain.parent?.checkpoint ?? undefined,
      checkpoint: running ? checkpoint : undefined,
      fullDisks: rawDisks,
    });

    let result: BackupResult;
    try {
      result = await writeBackup(context, { ref, info, domainXml, source, excluded, chain, checkpoint, started, log });
      committed = true;
    } finally {
      await source.close();
    }

    // Excluded qcow2 images are pruned too, because backups from before their exclusion may have left bitmaps in them.
    const excludedQcow2 = excluded.filter((disk) => disk.format === 'qcow2' && disk.sourcePath !== undefined);
    await pruneCheckpoints(context.virsh, domainName, {
      keep: checkpoint,
      running,
      qcow2Paths: [...qcow2Disks, ...excludedQcow2].map((disk) => disk.sourcePath!),
      logger: log,
    });
    return result;
  } finally {
    if (!committed && checkpoint) await discardCheckpoint(context, domainName, checkpoint, running, qcow2Disks, log);
  }
}

/**
 * Removes the checkpoint of a backup that did not commit. It must not
 * survive: its bitmap starts at this failed backup, so chaining from it
 * would lose every write between the last committed backup and now.
 * Chains only ever start from checkpoints named in committed manifests, so
 * even a checkpoint left by a killed process is never chained from; this
 * removes it early to keep bitmaps from piling up.
 */
async function discardCheckpoint(
  context: BackupContext,
  domain: string,
  checkpoint: string,
  running: boolean,
  qcow2Disks: DiskInfo[],
  log: Logger,
): Promise<void> {
  try {
    const existing = (await listCheckpoints(context.virsh, domain)).map((item) => item.name);
    if (existing.includes(checkpoint)) await deleteCheckpoint(context.virsh, domain, checkpoint);
    if (!running) {
      for (const disk of qcow2Disks) {
        if ((await imageBitmaps(disk.sourcePath!)).includes(checkpoint)) await removeImageBitmap(disk.sourcePath!, checkpoint);
      }
    }
    log.info({ checkpoint }, 'checkpoint of the failed backup removed');
  } catch (error) {
    log.warn({ checkpoint, err: error }, `cannot remove checkpoint ${checkpoint} of the failed backup; it is never chained from`);
  }
}

async function decideChainFor(
  context: BackupContext,
  ref: BackupRef,
  mode: BackupMode,
  running: boolean,
  selection: { disks: DiskInfo[]; excluded: DiskInfo[] },
  qcow2Paths: string[],
): Promise<ChainDecision> {
  if (mode === 'full') return { type: 'full', reason: 'full backup requested' };

  // Running domains chain from libvirt checkpoints; shut-off ones from bitmaps present in every qcow2 image.
  let checkpoints: string[];
  if (running) {
    // The names alone decide the chain, so no checkpoint's XML is read.
    checkpoints = await checkpointNames(context.virsh, ref.domain);
  } else {
    const perImage = await Promise.all(qcow2Paths.map((path) => imageBitmaps(path)));
    checkpoints = perImage.length === 0 ? [] : perImage.reduce((common, names) => common.filter((name) => names.includes(name)));
  }

  return decideChain({
    store: context.store,
    host: ref.host,
    domain: ref.domain,
    mode,
    limits: context.config.chain,
    hostKey: context.signingKey.toPublic(),
    checkpoints,
    disks: selection.disks.map((disk) => ({ target: disk.target, format: disk.format ?? 'raw' })),
    excludedTargets: selection.excluded.map((disk) => disk.target),
  });
}

interface WriteBackupInput {
  ref: BackupRef;
  info: DomainInfo;
  domainXml: string;
  source: DiskSource;
  /** Disks left out by excludeDisks, recorded in the manifest. */
  excluded: DiskInfo[];
  chain: ChainDecision;
  checkpoint: string | undefined;
  started: Date;
  log: Logger;
}

async function writeBackup(context: BackupContext, input: WriteBackupInput): Promise<BackupResult> {
  const { config, store } = context;
  const { ref, info, domainXml, source, chain, log, started } = input;
  const snapshotAt = new Date();
  const plans = await planDisks(source);
  const nvram = info.nvramPath ? await readNvram(info.nvramPath, ref.domain) : undefined;
  const metadata = buildMetadata(ref, info, plans, snapshotAt, nvram?.fileName ?? null, chain);
  const totalBytes = plans.reduce((sum, plan) => sum + totalLength(plan.extents), 0);
  log.info({ phase: 'snapshot', bytes: totalBytes, source: source.kind, type: chain.type }, 'disks exported, reading extents');

  const progress = context.progress?.start(`backup ${ref.domain}`, totalBytes);
  const writer = new ArchiveWriter({ mtime: snapshotAt });
  const readBuffers = new ReadBuffers(READ_CHUNK_BYTES, config.concurrency.reads);
  // Aborted when the upload fails, so that no read waits for a buffer the splitter will never finish.
  const uploadFailed = new AbortController();
  const producing = produceArchive(writer, {
    metadata,
    domainXml,
    nvram,
    disks: plans,
    readsInFlight: config.concurrency.reads,
    readBuffers,
    signal: AbortSignal.any([context.signal, uploadFailed.signal]),
    onDiskBytes: (bytes) => progress?.advance(bytes),
  });
  producing.catch((error: unknown) => writer.destroy(error as Error));

  let uploaded;
  try {
    uploaded = await uploadSegments(readBuffers.returning(writer.stream), {
      store,
      encryptor: context.encryptor,
      ref,
      segmentSize: config.segmentSize,
      inFlight: context.segmentsInFlight,
      signal: context.signal,
      retention: context.retention(),
      limiter: context.limiter,
    });
  } catch (error) {
    uploadFailed.abort(error);
    writer.destroy(error as Error);
    await producing.catch(() => undefined);
    throw error;
  } finally {
    progress?.finish();
  }
  const checksums = await producing;

  const parent = chain.type === 'incremental' ? chain.parent! : undefined;
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    repositoryId: context.repositoryId,
    backupId: ref.backupId,
    host: ref.host,
    domain: { name: info.name, uuid: info.uuid },
    type: chain.type,
    parent: parent?.backupId ?? null,
    checkpoint: input.checkpoint ?? null,
    chain: parent ? { full: parent.chain.full, length: parent.chain.length + 1 } : { full: ref.backupId, length: 0 },
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
    // Written only when a disk was excluded, so that other manifests keep the keys that older readers accept.
    ...(input.excluded.length > 0 ? { excludedDisks: input.excluded.map(excludedDiskRecord) } : {}),
    nvram: metadata.nvram,
    archiveBytes: uploaded.archiveBytes,
    segmentSize: config.segmentSize,
    segments: uploaded.segments,
    encryption: { recipients: context.recipientFingerprints, seipdVersion: context.seipdVersion },
    signer: context.signerFingerprint,
  };

  context.signal.throwIfAborted();
  await commitManifest(context, ref, manifest);
  const durationMs = Date.now() - started.getTime();
  log.info(
    { phase: 'commit', type: chain.type, bytes: totalBytes, storedBytes: uploaded.storedBytes, segments: uploaded.segments.length, durationMs },
    'backup committed',
  );
  return { ref, manifest, durationMs, bytesRead: totalBytes, bytesStored: uploaded.storedBytes };
}

/** Writes the detached signature, then the manifest; the manifest write never overwrites. */
async function commitManifest(context: BackupContext, ref: BackupRef, manifest: Manifest): Promise<void> {
  const bytes = encodeManifest(manifest);
  const signature = await signDetached(bytes, context.signingKey);
  const options = { ifNoneMatch: true, retention: context.retention() };

  await context.store.put(signatureKey(ref), Buffer.from(signature, 'utf8'), { ...options, contentType: 'application/pgp-signature' });
  await context.store.put(manifestKey(ref), bytes, { ...options, contentType: 'application/json' });
}

async function planDisks(source: DiskSource): Promise<DiskPlan[]> {
  const plans: DiskPlan[] = [];
  for (const { disk, client, dirtyContext } of source.exports) {
    const allocation = await client.mapExtents('base:allocation');
    const changed = dirtyContext ? dirtyExtents(await client.mapExtents(dirtyContext), allocation) : undefined;
    plans.push({
      target: disk.target,
      format: disk.format as 'qcow2' | 'raw',
      sourcePath: disk.sourcePath ?? '',
      virtualSize: client.size,
      extents: changed ? changed.data : dataExtents(allocation),
      zeroExtents: changed ? changed.zero : [],
      fullCopy: changed === undefined,
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
  chain: ChainDecision,
): ArchiveMetadata {
  return {
    format: 'hvbackup-archive',
    version: 1,
    backupId: ref.backupId,
    host: ref.host,
    domain: { name: info.name, uuid: info.uuid },
    type: chain.type,
    parent: chain.parent?.backupId ?? null,
    snapshotAt: snapshotAt.toISOString(),
    disks: plans.map((plan) => ({
      target: plan.target,
      format: plan.format,
      sourcePath: plan.sourcePath,
      virtualSize: plan.virtualSize,
      entry: diskEntryName(plan.target),
      fullCopy: plan.fullCopy,
      storedBytes: totalLength(plan.extents),
      extentCount: plan.extents.length,
      zeroExtents: plan.zeroExtents.map((extent) => [extent.offset, extent.length] as [number, number]),
    })),
    nvram: nvram === null ? null : `nvram/${nvram}`,
  };
}
