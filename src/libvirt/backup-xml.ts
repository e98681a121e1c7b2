/**
 * Builds the XML documents for `virsh backup-begin`: the pull-mode
 * <domainbackup> and the optional <domaincheckpoint> created with it.
 * Formats: https://libvirt.org/formatbackup.html and
 * https://libvirt.org/formatcheckpoint.html.
 */
import { join } from 'node:path';

import { escapeXml } from './xml.js';

export interface BackupXmlOptions {
  socketPath: string;
  scratchDir: string;
  /** Targets to export, for example `['vda']`. */
  disks: string[];
  /** Every disk target of the domain. Those not in `disks` are listed with backup='no', because libvirt includes unlisted disks. */
  allTargets: string[];
  incrementalFrom?: string;
  /** Targets exported in full even in an incremental job, for example raw disks, which cannot hold dirty bitmaps. */
  fullDisks?: string[];
}

/** Returns the scratch file for a disk. QEMU keeps there the old content of blocks the guest overwrites during the job. */
export function scratchPath(scratchDir: string, target: string): string {
  return join(scratchDir, `${target}.scratch`);
}

export function pullBackupXml(options: BackupXmlOptions): string {
  const lines = [`<domainbackup mode='pull'>`];
  if (options.incrementalFrom !== undefined) lines.push(`  <incremental>${escapeXml(options.incrementalFrom)}</incremental>`);
  lines.push(`  <server transport='unix' socket='${escapeXml(options.socketPath)}'/>`);
  lines.push('  <disks>');

  for (const target of options.allTargets) {
    if (options.disks.includes(target)) {
      // backupmode='full' makes libvirt export this disk whole and without a dirty bitmap context.
      const mode = options.incrementalFrom !== undefined && options.fullDisks?.includes(target) ? ` backupmode='full'` : '';
      lines.push(`    <disk name='${escapeXml(target)}' backup='yes'${mode} type='file'>`);
      lines.push(`      <scratch file='${escapeXml(scratchPath(options.scratchDir, target))}'/>`);
      lines.push('    </disk>');
    } else {
      lines.push(`    <disk name='${escapeXml(target)}' backup='no'/>`);
    }
  }

  lines.push('  </disks>', '</domainbackup>', '');
  return lines.join('\n');
}

export interface CheckpointXmlOptions {
  name: string;
  description?: string;
  disks: string[];
  allTargets: string[];
  /** Targets that get no bitmap, because their format cannot hold one (raw). */
  fullDisks?: string[];
}

/** Builds a checkpoint that records a dirty bitmap for each disk in `disks`, except `fullDisks`, and none for the others. */
export function checkpointCreateXml(options: CheckpointXmlOptions): string {
  const lines = ['<domaincheckpoint>', `  <name>${escapeXml(options.name)}</name>`];
  if (options.description !== undefined) lines.push(`  <description>${escapeXml(options.description)}</description>`);
  lines.push('  <disks>');

  for (const target of options.allTargets) {
    const mode = options.disks.includes(target) && !options.fullDisks?.includes(target) ? 'bitmap' : 'no';
    lines.push(`    <disk name='${escapeXml(target)}' checkpoint='${mode}'/>`);
  }

  lines.push('  </disks>', '</domaincheckpoint>', '');
  return lines.join('\n');
}
