/**
 * `hvbackup restore`: verify, stage, then promote. Nothing outside the
 * staging directory changes until the manifest signature, every segment hash,
 * every inner signature, the archive structure and every disk checksum have
 * passed. A failure at any point removes the staging directory and leaves
 * the host as it was.
 */
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';

import type { PrivateKey } from 'openpgp';

import type { Config } from '../config/load.js';
import { requireSetting } from '../config/load.js';
import { keyInfo, SegmentDecryptor, type PassphraseSource } from '../crypto/index.js';
import { RefusedError, VerificationError } from '../errors.js';
import type { AuditEvent, AuditLog } from '../audit/audit-log.js';
import type { ObjectStore } from '../repository/store.js';
import { rewriteDomainXml } from '../libvirt/clone.js';
import { Domains, parseDomainXml } from '../libvirt/domain.js';
import { RECONNECT_MS, Virsh } from '../libvirt/virsh.js';
import type { Logger } from '../log/logger.js';
import type { Progress } from '../log/progress.js';
import { checkName, manifestKey, type BackupRef } from '../manifest/layout.js';
import type { Manifest } from '../manifest/schema.js';
import { openRepository } from '../repository/repository.js';
import { RateLimiter } from '../util/rate-limiter.js';
import { authorizeAdmin } from './authorize.js';
import { listBackups, resolveBackup } from './catalog.js';
import { applyChain } from './apply-chain.js';
import { loadChain } from './chain.js';
import { prepareDecryption, type DecryptWith } from './decryption.js';
import { checkKeptImagesExist, describeExcludedDisk, logExcludedDisks, planExcludedDisks, type ExcludedDiskPlan } from './excluded-disks.js';
import { loadTrustedSigners } from './manifest-check.js';
import { checkDestinations, promote, type PlacedFile } from './promote.js';
import { recoverPromotions } from './promotion-recovery.js';
import { Staging, StagingDisks } from './staging.js';

export interface RestoreOptions {
  /** A backup id, or a domain name for its latest backup. */
  selector: string;
  host?: string;
  /** With a domain selector: the latest backup started at or before this time. */
  at?: Date;
  /** Restore as a clone with this name: new UUID, MAC addresses and disk paths. */
  as?: string;
  /** Directory for the disks of a clone; defaults to the directory of each original disk. */
  storageDir?: string;
  replace: boolean;
  /**
   * Removes the disks that the backup excluded from the restored definition.
   * Without it an in-place restore keeps them, pointing at their existing
   * images. A clone (`as`) always removes them.
   */
  dropExcludedDisks?: boolean;
  /** The command on whose behalf this restore runs; a drill may also run as the configured drill user. */
  command?: 'restore' | 'drill';
  /** Removes every network interface from the restored definition (drills use this for isolation). */
  removeInterfaces?: boolean;
  /** Allows restoring a backup older than restore.maxAgeDays or older than the domain's latest backup. */
  allowRollback: boolean;
  /** Recorded in the audit trail. */
  reason?: string;
  /**
   * Shows the summary of what will change and returns whether to go on.
   * The command line prompts on a terminal, and --yes confirms for scripts.
   */
  confirm: (summary: string) => Promise<boolean>;
  audit: AuditLog;
  logger: Logger;
  signal: AbortSignal;
  progress?: Progress;
  /** An already unlocked admin key; otherwise the configured key file is read. */
  adminKey?: PrivateKey;
  /** `key` (default): the admin key file; `gpg`: session keys from gpg-agent, the secret key stays in gpg. */
  decryptWith?: DecryptWith;
  /** Passphrase of a protected admin key file; a function is called only when the key is protected. */
  passphrase?: PassphraseSource;
}

export interface RestoreResult {
  ref: BackupRef;
  domain: string;
  disks: { target: string; path: string }[];
  /** Disks the backup excluded, and whether the restored definition kept or dropped each one. */
  excludedDisks: ExcludedDiskPlan[];
  durationMs: number;
}

export async function restoreBackup(config: Config, options: RestoreOptions): Promise<RestoreResult> {
  const started = Date.now();
  const { audit } = options;
  const details = {
    selector: options.selector,
    as: options.as,
    replace: options.replace,
    dropExcludedDisks: options.dropExcludedDisks === true,
    decryptWith: options.decryptWith ?? 'key',
  };
  const request = { reason: options.reason, details };

  try {
    await authorizeAdmin(options.command ?? 'restore', {
      backupUser: config.backupUser,
      adminGroup: config.adminGroup,
      drillUser: config.drillUser,
    });
  } catch (error) {
    await recordAfterFailure(options, { action: 'restore-refused', result: 'refused', ...request, error: (error as Error).message });
    throw error;
  }
  await audit.record({ action: 'restore-request', result: 'started', ...request });

  let ref: BackupRef | undefined;
  try {
    const result = await restoreVerified(config, options, (resolved) => {
      ref = resolved;
    });
    await audit.record({ action: 'restore', result: 'ok', ...request, ...refFields(ref), durationMs: Date.now() - started });
    return result;
  } catch (error) {
    const refused = error instanceof RefusedError || error instanceof VerificationError;
    await recordAfterFailure(options, {
      action: refused ? 'restore-refused' : 'restore',
      result: refused ? 'refused' : 'failed',
      ...request,
      ...refFields(ref),
      check: error instanceof VerificationError ? error.check : undefined,
      object: error instanceof VerificationError ? error.object : undefined,
      error: (error as Error).message,
      durationMs: Date.now() - started,
    });
    throw error;
  }
}

/**
 * Records the event of a restore that stops. A failed audit write is logged
 * and then dropped, so that it cannot hide the error that stopped the
 * restore. For example, a user who may not restore usually cannot write
 * the audit file either, and must still see the role message.
 */
async function recordAfterFailure(options: RestoreOptions, event: AuditEvent): Promise<void> {
  try {
    await options.audit.record(event);
  } catch (auditError) {
    options.logger.error({ audit: true, err: auditError }, `writing the audit event "${event.action} ${event.result}" failed: ${(auditError as Error).message}`);
  }
}

function refFields(ref: BackupRef | undefined): { domain?: string; backupId?: string; host?: string } {
  return ref ? { domain: ref.domain, backupId: ref.backupId, host: ref.host } : {};
}

async function restoreVerified(config: Config, options: RestoreOptions, onResolved: (ref: BackupRef) => void): Promise<RestoreResult> {
  const started = Date.now();
  const decryption = await prepareDecryption(config, {
    decryptWith: options.decryptWith ?? 'key',
    adminKey: options.adminKey,
    passphrase: options.passphrase,
    signal: options.signal,
  });
  const trusted = requireSetting(config.trustedSigners, 'trustedSigners', config, 'restore');
  const virsh = new Virsh({ uri: config.libvirt.uri, reconnectMs: RECONNECT_MS, logger: options.logger });
  const domains = new Domains(virsh);
  // Promotions that killed restores left unfinished are settled before this restore changes anything.
  await recoverPromotions(config, { logger: options.logger, audit: options.audit, libvirt: { virsh, domains } });
  const { store } = await openRepository(config, { create: false });

  const ref = await resolveBackup(store, options.selector, { host: options.host, at: options.at });
  onResolved(ref);
  const log = options.logger.child({ domain: ref.domain, backupId: ref.backupId });
  log.info({ phase: 'restore-request', as: options.as, replace: options.replace }, 'restore requested');

  const trustedKeys = await loadTrustedSigners(store, trusted);
  const chain = await loadChain(store, ref, trustedKeys);
  const manifest = chain[chain.length - 1].manifest;
  for (const link of chain) {
    await options.audit.record({ action: 'verification', result: 'ok', ...refFields(link.ref), check: 'manifest-signature', object: manifestKey(link.ref) });
    checkRecipient(link.manifest, decryption.adminFingerprints, manifestKey(link.ref));
  }
  await checkRollback(store, ref, manifest, { maxAgeDays: config.restore.maxAgeDays, allowed: options.allowRollback });

  const domainName = options.as ? checkName('domain', options.as) : manifest.domain.name;
  const diskDestinations = manifest.disks.map((disk) => ({
    target: disk.target,
    path: options.as ? cloneDiskPath(disk, options.as, options.storageDir) : disk.sourcePath,
  }));
  await checkDestinations(domains, { domainName, replace: options.replace, destinations: diskDestinations.map((d) => d.path) });
  const excludedDisks = planExcludedDisks(manifest.excludedDisks, { clone: options.as !== undefined, drop: options.dropExcludedDisks === true });
  await checkKeptImagesExist(excludedDisks, domainName);

  const summary = describePlan(ref, manifest, domainName, { restored: diskDestinations, excluded: excludedDisks }, options);
  if (!(await options.confirm(summary))) {
    throw new RefusedError('restore cancelled: not confirmed', { hint: 'answer "yes" at the prompt, or pass --yes in scripts' });
  }

  const staging = await Staging.create(config.stagingDir, `${domainName}-${ref.backupId}`);
  const decryptor = await SegmentDecryptor.create({
    decryptionKeys: decryption.decryptionKeys,
    sessionKeys: decryption.sessionKeyFor !== undefined,
    verificationKeys: trustedKeys,
    workers: config.concurrency.workers,
  });
  const stagingDisks = new StagingDisks(staging);

  try {
    const extracted = await applyChain(chain, {
      store,
      decryptor,
      staging,
      disks: stagingDisks,
      trustedSigners: trustedKeys.map((key) => keyInfo(key).fingerprint),
      readAhead: config.concurrency.downloads,
      limiter: config.bandwidthLimit ? new RateLimiter(config.bandwidthLimit) : undefined,
      signal: options.signal,
      sessionKeyFor: decryption.sessionKeyFor,
      progress: options.progress,
      log,
    });
    await stagingDisks.closeAll({ flush: true });
    await options.audit.record({ action: 'verification', result: 'ok', ...refFields(ref), check: 'segments-and-disks', object: manifestKey(ref) });

    const files: PlacedFile[] = diskDestinations.map((destination) => ({
      staged: stagingDisks.path(destination.target),
      destination: destination.path,
    }));
    let domainXml = extracted.domainXml;
    const original = parseDomainXml(domainXml);
    let nvramDestination = original.nvramPath;
    const removeDisks = excludedDisks.filter((disk) => disk.action === 'drop').map((disk) => disk.target);

    if (options.as || options.removeInterfaces) {
      nvramDestination = original.nvramPath ? join(options.storageDir ?? dirname(original.nvramPath), `${domainName}_VARS.fd`) : undefined;
      domainXml = rewriteDomainXml(domainXml, {
        name: domainName,
        regenerateMacs: options.as !== undefined,
        removeInterfaces: options.removeInterfaces === true,
        removeDisks,
        diskPaths: new Map(diskDestinations.map((destination) => [destination.target, destination.path])),
        nvramPath: nvramDestination,
        characterDeviceDir: options.storageDir ?? dirname(diskDestinations[0].path),
      });
    } else if (removeDisks.length > 0) {
      domainXml = rewriteDomainXml(domainXml, { removeDisks });
    }
    if (extracted.nvramPath && nvramDestination) {
      files.push({ staged: extracted.nvramPath, destination: nvramDestination });
    }

    // Staging lasts as long as the download, so the images that the definition keeps are checked again just before promotion.
    await checkKeptImagesExist(excludedDisks, domainName);
    logExcludedDisks(excludedDisks, domainName, log);

    await promote(
      domains,
      virsh,
      { domainName, domainXml, files, replace: options.replace, onDefine: () => log.info({ phase: 'promote', as: domainName }, `disks in place, defining domain ${domainName}`) },
      { stateDir: config.stateDir, suffix: randomBytes(4).toString('hex'), log },
    );
    const durationMs = Date.now() - started;
    log.info({ phase: 'promote', result: 'ok', as: domainName, durationMs }, 'restore promoted');
    await options.audit.record({
      action: 'promotion',
      result: 'ok',
      ...refFields(ref),
      details: { domain: domainName, files: files.map((file) => file.destination), excludedDisks },
    });
    return { ref, domain: domainName, disks: diskDestinations, excludedDisks, durationMs };
  } finally {
    await stagingDisks.closeAll({ flush: false }).catch(() => undefined);
    await decryptor.close();
    await staging.remove();
  }
}

function checkRecipient(manifest: Manifest, adminFingerprints: string[], object: string): void {
  if (!adminFingerprints.some((fingerprint) => manifest.encryption.recipients.includes(fingerprint))) {
    const available = adminFingerprints.length === 0 ? 'none' : adminFingerprints.join(', ');
    throw new VerificationError(
      'manifest-recipients',
      object,
      `backup ${manifest.backupId} is not encrypted to admin key ${available} (recipients: ${manifest.encryption.recipients.join(', ')})`,
      { hint: 'use an admin key listed as a recipient; new admins are added to "recipients" on the backup host and see only later backups' },
    );
  }
}

/**
 * Restoring an old backup brings back old data, old vulnerabilities and old
 * credentials, so it needs --allow-rollback when the backup is older than
 * the configured age or when a newer committed backup of the domain exists.
 */
async function checkRollback(
  store: ObjectStore,
  ref: BackupRef,
  manifest: Manifest,
  options: { maxAgeDays: number; allowed: boolean },
): Promise<void> {
  if (options.allowed) return;

  const ageDays = (Date.now() - Date.parse(manifest.snapshotAt)) / 86_400_000;
  if (ageDays > options.maxAgeDays) {
    throw new RefusedError(
      `backup ${ref.backupId} of ${ref.domain} is ${ageDays.toFixed(1)} days old, more than restore.maxAgeDays (${options.maxAgeDays})`,
      { hint: 'pass --allow-rollback to restore it anyway' },
    );
  }

  const newer = (await listBackups(store, { host: ref.host, domain: ref.domain })).filter(
    (entry) => entry.committed && entry.backupId > ref.backupId,
  );
  if (newer.length > 0) {
    throw new RefusedError(
      `backup ${ref.backupId} of ${ref.domain} is not the latest: ${newer.length} newer ${newer.length === 1 ? 'backup exists' : 'backups exist'}, the latest is ${newer[newer.length - 1].backupId}`,
      { hint: 'pass --allow-rollback to restore an older state, or restore the latest backup' },
    );
  }
}

function describePlan(
  ref: BackupRef,
  manifest: Manifest,
  domainName: string,
  disks: { restored: { target: string; path: string }[]; excluded: ExcludedDiskPlan[] },
  options: RestoreOptions,
): string {
  const lines = [
    `restore backup ${ref.backupId} (${manifest.type}, taken ${manifest.snapshotAt}) of ${ref.host}/${ref.domain}`,
    `  as domain ${domainName}${options.as ? ' (clone: new UUID and MAC addresses)' : ''}${options.replace ? ' (--replace: an existing definition is replaced)' : ''}`,
    ...disks.restored.map((disk) => `  disk ${disk.target} -> ${disk.path}${options.replace ? ' (replaced if present)' : ' (new file)'}`),
    ...disks.excluded.map(describeExcludedDisk),
  ];
  if (manifest.nvram) lines.push('  NVRAM restored');
  if (options.reason) lines.push(`  reason: ${options.reason}`);
  return lines.join('\n');
}

function cloneDiskPath(disk: Manifest['disks'][number], name: string, storageDir: string | undefined): string {
  const directory = storageDir ?? dirname(disk.sourcePath);
  const extension = disk.format === 'qcow2' ? 'qcow2' : 'img';
  return join(directory, `${name}-${disk.target}.${extension}`);
}

