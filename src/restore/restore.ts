/**
 * `hvbackup restore`: verify, stage, then promote. Nothing outside the
 * staging directory changes until the manifest signature, every segment hash,
 * every inner signature, the archive structure and every disk checksum have
 * passed; a failure at any point removes the staging directory and leaves
 * the host as it was.
 */
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';

import type { PrivateKey } from 'openpgp';

import { readArchive } from '../archive/reader.js';
import type { Config } from '../config/load.js';
import { requireSetting } from '../config/load.js';
import { keyInfo, readSecretKeyFile, SegmentDecryptor } from '../crypto/index.js';
import { RefusedError } from '../errors.js';
import { rewriteDomainXml } from '../libvirt/clone.js';
import { Domains, parseDomainXml } from '../libvirt/domain.js';
import { Virsh } from '../libvirt/virsh.js';
import type { Logger } from '../log/logger.js';
import type { Progress } from '../log/progress.js';
import { checkName, type BackupRef } from '../manifest/layout.js';
import type { Manifest } from '../manifest/schema.js';
import { openRepository } from '../repository/repository.js';
import { resolveBackup } from './catalog.js';
import { extractBackup } from './extract.js';
import { loadTrustedManifest, loadTrustedSigners } from './manifest-check.js';
import { checkDestinations, promote, type PlacedFile } from './promote.js';
import { readSegments } from './segment-source.js';
import { Staging, StagingDisk } from './staging.js';

export interface RestoreOptions {
  /** A backup id, or a domain name for its latest backup. */
  selector: string;
  host?: string;
  /** Restore as a clone with this name: new UUID, MAC addresses and disk paths. */
  as?: string;
  /** Directory for the disks of a clone; defaults to the directory of each original disk. */
  storageDir?: string;
  replace: boolean;
  logger: Logger;
  signal: AbortSignal;
  progress?: Progress;
  /** An already unlocked admin key; otherwise the configured key file is read. */
  adminKey?: PrivateKey;
}

export interface RestoreResult {
  ref: BackupRef;
  domain: string;
  disks: { target: string; path: string }[];
  durationMs: number;
}

export async function restoreBackup(config: Config, options: RestoreOptions): Promise<RestoreResult> {
  const started = Date.now();
  const adminKey = options.adminKey ?? (await readSecretKeyFile(requireSetting(config.adminKey, 'adminKey', config, 'restore')));
  const trusted = requireSetting(config.trustedSigners, 'trustedSigners', config, 'restore');
  const { store } = await openRepository(config, { create: false });

  const ref = await resolveBackup(store, options.selector, { host: options.host });
  const log = options.logger.child({ domain: ref.domain, backupId: ref.backupId });
  log.info({ phase: 'restore-request', as: options.as, replace: options.replace }, 'restore requested');

  const trustedKeys = await loadTrustedSigners(store, trusted);
  const { manifest } = await loadTrustedManifest(store, ref, trustedKeys);
  log.info({ phase: 'verify', check: 'manifest-signature', result: 'ok' }, 'manifest signature verified');
  checkRecipient(manifest, adminKey);

  const domainName = options.as ? checkName('domain', options.as) : manifest.domain.name;
  const diskDestinations = manifest.disks.map((disk) => ({
    target: disk.target,
    path: options.as ? cloneDiskPath(disk, options.as, options.storageDir) : disk.sourcePath,
  }));
  const virsh = new Virsh({ uri: config.libvirt.uri });
  const domains = new Domains(virsh);
  await checkDestinations(domains, { domainName, replace: options.replace, destinations: diskDestinations.map((d) => d.path) });

  const staging = await Staging.create(config.stagingDir, `${domainName}-${ref.backupId}`);
  const stagingDisks = new Map<string, StagingDisk>();
  const decryptor = await SegmentDecryptor.create({
    decryptionKeys: [adminKey],
    verificationKeys: trustedKeys,
    workers: config.concurrency.workers,
  });

  try {
    const totalBytes = manifest.disks.reduce((sum, disk) => sum + disk.storedBytes, 0);
    const progress = options.progress?.start(`restore ${ref.domain}`, totalBytes);
    const plaintext = readSegments({
      store,
      decryptor,
      ref,
      segments: manifest.segments,
      trustedSigners: trustedKeys.map((key) => keyInfo(key).fingerprint),
      readAhead: config.concurrency.downloads,
      signal: options.signal,
    });

    const extracted = await extractBackup(readArchive(plaintext), {
      manifest,
      staging,
      onBytes: (bytes) => progress?.advance(bytes),
      openDisk: async (disk) => {
        const staged = await StagingDisk.create({
          path: staging.path(`${disk.target}.${disk.format}`),
          format: disk.format,
          virtualSize: disk.virtualSize,
          socketPath: staging.path(`${disk.target}.sock`),
        });
        stagingDisks.set(disk.target, staged);
        return staged;
      },
    });
    progress?.finish();

    for (const disk of stagingDisks.values()) await disk.close({ flush: true });
    log.info({ phase: 'verify', result: 'ok', segments: manifest.segments.length, bytes: totalBytes }, 'all segments, signatures and disk checksums verified');

    const files: PlacedFile[] = diskDestinations.map((destination) => ({
      staged: stagingDisks.get(destination.target)!.path,
      destination: destination.path,
    }));
    let domainXml = extracted.domainXml;
    const original = parseDomainXml(domainXml);
    let nvramDestination = original.nvramPath;

    if (options.as) {
      nvramDestination = original.nvramPath ? join(options.storageDir ?? dirname(original.nvramPath), `${domainName}_VARS.fd`) : undefined;
      domainXml = rewriteDomainXml(domainXml, {
        name: domainName,
        regenerateMacs: true,
        diskPaths: new Map(diskDestinations.map((destination) => [destination.target, destination.path])),
        nvramPath: nvramDestination,
      });
    }
    if (extracted.nvramPath && nvramDestination) {
      files.push({ staged: extracted.nvramPath, destination: nvramDestination });
    }

    await promote(domains, { domainName, domainXml, files, replace: options.replace }, randomBytes(4).toString('hex'));
    const durationMs = Date.now() - started;
    log.info({ phase: 'promote', result: 'ok', as: domainName, durationMs }, 'restore promoted');
    return { ref, domain: domainName, disks: diskDestinations, durationMs };
  } finally {
    await Promise.allSettled([...stagingDisks.values()].map((disk) => disk.close({ flush: false })));
    await decryptor.close();
    await staging.remove();
  }
}

function checkRecipient(manifest: Manifest, adminKey: PrivateKey): void {
  const fingerprint = keyInfo(adminKey).fingerprint;
  if (!manifest.encryption.recipients.includes(fingerprint)) {
    throw new RefusedError(
      `backup ${manifest.backupId} is not encrypted to admin key ${fingerprint} (recipients: ${manifest.encryption.recipients.join(', ')})`,
      { hint: 'use an admin key listed as a recipient; new admins are added to "recipients" on the backup host and see only later backups' },
    );
  }
}

function cloneDiskPath(disk: Manifest['disks'][number], name: string, storageDir: string | undefined): string {
  const directory = storageDir ?? dirname(disk.sourcePath);
  const extension = disk.format === 'qcow2' ? 'qcow2' : 'img';
  return join(directory, `${name}-${disk.target}.${extension}`);
}

