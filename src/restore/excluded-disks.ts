/**
 * Restore's handling of the disks that excludeDisks left out of a backup.
 * Their `<disk>` elements are still in the stored domain XML, but no backup
 * contains their data, so restore never writes them.
 *
 * - In place (same domain name), they stay in the definition and point at
 *   their original images, which must exist. `--drop-excluded-disks` removes
 *   them from the definition instead.
 * - In a clone or a drill sandbox, they are always removed from the
 *   definition, because two domains writing one image corrupt it, and a
 *   drill must never open a production image.
 */
import { stat } from 'node:fs/promises';

import { RefusedError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { ManifestExcludedDisk } from '../manifest/schema.js';

export interface ExcludedDiskPlan {
  target: string;
  /** The image the original domain used. Restore neither reads nor writes it. */
  path: string;
  /** `keep` leaves the disk in the restored definition, on the image at `path`. `drop` removes it from the definition. */
  action: 'keep' | 'drop';
}

/** Decides per excluded disk whether the restored definition keeps it. */
export function planExcludedDisks(excluded: ManifestExcludedDisk[] | undefined, options: { clone: boolean; drop: boolean }): ExcludedDiskPlan[] {
  const action = options.clone || options.drop ? 'drop' : 'keep';
  return (excluded ?? []).map((disk) => ({ target: disk.target, path: disk.sourcePath, action }));
}

/**
 * Rejects the restore when an excluded disk that the definition keeps has
 * no image at its path, because the domain would then be defined with a
 * disk it cannot open. Runs before staging and again before promotion.
 */
export async function checkKeptImagesExist(plans: ExcludedDiskPlan[], domainName: string): Promise<void> {
  const problems: string[] = [];
  for (const plan of plans) {
    if (plan.action !== 'keep') continue;
    const problem = await imageProblem(plan.path);
    if (problem !== undefined) problems.push(`disk ${plan.target} was excluded from the backup, and its image ${problem}`);
  }
  if (problems.length === 0) return;

  throw new RefusedError(`cannot restore domain ${domainName} in place: ${problems.join('; ')}`, {
    hint: 'restore writes no data for excluded disks, and the restored domain would use their images as they are; create or restore those images first, or pass --drop-excluded-disks to define the domain without them',
  });
}

/** Logs one line per excluded disk with what the restore does about it. */
export function logExcludedDisks(plans: ExcludedDiskPlan[], domainName: string, log: Logger): void {
  for (const plan of plans) {
    const message =
      plan.action === 'keep'
        ? `disk ${plan.target} was excluded from the backup; domain ${domainName} keeps using its image ${plan.path}, which restore does not write`
        : `disk ${plan.target} was excluded from the backup; removed from the definition of domain ${domainName}`;
    log.info({ phase: 'excluded-disk', target: plan.target, path: plan.path, action: plan.action }, message);
  }
}

/** Returns the line of the restore summary for an excluded disk. */
export function describeExcludedDisk(plan: ExcludedDiskPlan): string {
  return plan.action === 'keep'
    ? `  disk ${plan.target} -> ${plan.path} (excluded from the backup: the existing image is used, not written)`
    : `  disk ${plan.target} (excluded from the backup: removed from the definition)`;
}

async function imageProblem(path: string): Promise<string | undefined> {
  if (path === '') return 'path was not recorded';
  try {
    await stat(path);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? `${path} does not exist` : `${path} cannot be checked (${code ?? (error as Error).message})`;
  }
}
