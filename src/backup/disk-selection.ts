/**
 * Selection of the disks that a backup reads. backupDisks() leaves out the kinds
 * a restore cannot recreate. The configuration's `excludeDisks` leaves out
 * further disks by target. They are neither exported nor checkpointed, and
 * the manifest lists them, so restore can tell that they were left out on
 * purpose.
 */
import { ConfigError, LibvirtError } from '../errors.js';
import { backupDisks, type DiskInfo, type DomainInfo } from '../libvirt/domain.js';
import type { Logger } from '../log/logger.js';
import type { ManifestExcludedDisk } from '../manifest/schema.js';

export interface DiskSelection {
  /** Disks the backup exports, reads and checkpoints. */
  included: DiskInfo[];
  /** Disks that `excludeDisks` leaves out, in domain XML order. */
  excluded: DiskInfo[];
}

/**
 * Splits the disks that a backup can read (backupDisks) into those it reads
 * and those `excludeTargets` leaves out, without logging or checks.
 */
export function partitionDisks(info: DomainInfo, excludeTargets: readonly string[]): DiskSelection {
  const eligible = backupDisks(info);
  return {
    included: eligible.filter((disk) => !excludeTargets.includes(disk.target)),
    excluded: eligible.filter((disk) => excludeTargets.includes(disk.target)),
  };
}

/** Returns the targets of `excludeTargets` that the domain has no disk for. */
export function unknownTargets(info: DomainInfo, excludeTargets: readonly string[]): string[] {
  return excludeTargets.filter((target) => !info.disks.some((disk) => disk.target === target));
}

/** Returns the domain names in excludeDisks that are not among `defined`: a misspelt name excludes nothing. */
export function unknownExcludeDomains(excludeDisks: Record<string, string[]>, defined: string[]): string[] {
  return Object.keys(excludeDisks).filter((name) => !defined.includes(name));
}

/**
 * Splits the disks of a domain into those backed up and those excluded by
 * target. A listed target that the domain lacks is logged and ignored, so a
 * disk unplugged since the configuration was written does not fail the run.
 */
export function selectDisks(info: DomainInfo, excludeTargets: readonly string[], log: Logger): DiskSelection {
  const domainName = info.name;
  const allTargets = info.disks.map((disk) => disk.target);
  for (const target of unknownTargets(info, excludeTargets)) {
    log.warn(
      { target, disks: allTargets },
      `excludeDisks lists disk ${target} for domain ${domainName}, which has no such disk (its disks: ${allTargets.join(', ') || 'none'}); ignoring that entry`,
    );
  }

  const { included, excluded } = partitionDisks(info, excludeTargets);
  for (const disk of info.disks) {
    // A listed disk that backupDisks leaves out anyway, so it is not among the excluded ones.
    if (excludeTargets.includes(disk.target) && !excluded.includes(disk)) {
      log.info(
        { target: disk.target, device: disk.device, type: disk.type },
        `excludeDisks lists disk ${disk.target} of domain ${domainName}, which is never backed up: it is removable, read-only, shareable or not a file or block device`,
      );
    }
  }

  for (const disk of excluded) {
    log.info({ target: disk.target, sourcePath: disk.sourcePath }, `disk ${disk.target} (${disk.sourcePath ?? 'no source'}) excluded from the backup by excludeDisks`);
  }

  if (included.length === 0 && excluded.length > 0) {
    throw new ConfigError(`every disk of domain ${domainName} that can be backed up is excluded (${excluded.map((disk) => disk.target).join(', ')})`, {
      hint: `remove a target from "excludeDisks"."${domainName}" in the configuration, or leave ${domainName} out of the backup run`,
    });
  }
  checkFormats(domainName, included);
  return { included, excluded };
}

/** Returns the manifest's record of an excluded disk. */
export function excludedDiskRecord(disk: DiskInfo): ManifestExcludedDisk {
  // A disk without <driver type=...> is recorded as raw, which is how the chain comparison in backup-domain.ts counts it.
  return { target: disk.target, format: disk.format ?? 'raw', sourcePath: disk.sourcePath ?? '' };
}

function checkFormats(domainName: string, disks: DiskInfo[]): void {
  if (disks.length === 0) {
    throw new LibvirtError(`domain ${domainName} has no disk that can be backed up`, {
      hint: 'only writable file or block disks are backed up; check `virsh domblklist --details ' + domainName + '`',
    });
  }
  for (const disk of disks) {
    if (disk.format !== 'qcow2' && disk.format !== 'raw') {
      throw new LibvirtError(`disk ${disk.target} of domain ${domainName} has format ${disk.format ?? '(none)'}`, {
        hint: `only qcow2 and raw disks are supported; set <driver type="qcow2"/> or "raw" in the domain XML, or list ${disk.target} in "excludeDisks"."${domainName}" to leave it out`,
      });
    }
  }
}
