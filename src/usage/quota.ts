/**
 * The repository quota: a size limit the backup command checks before it
 * starts. At 80% of the quota it warns, at 95% it refuses to write another
 * backup, leaving room for prune to run and for a backup already under way.
 */
import type { Config } from '../config/load.js';
import { ConfigError, HvError } from '../errors.js';
import type { ObjectStore } from '../repository/store.js';
import { formatByteSize, parseByteSize } from '../segment/size.js';

export const QUOTA_WARN_FRACTION = 0.8;
export const QUOTA_REFUSE_FRACTION = 0.95;

export type QuotaLevel = 'ok' | 'warn' | 'refuse';

export interface QuotaCheck {
  usedBytes: number;
  quotaBytes: number;
  /** usedBytes / quotaBytes; above 1 when the repository is already over its quota. */
  fraction: number;
  level: QuotaLevel;
}

/** Returns the configured quota in bytes, or undefined when `quota` is not set. */
export function quotaBytes(config: Config): number | undefined {
  if (config.quota === undefined) return undefined;
  if (typeof config.quota === 'number') return config.quota;
  try {
    return parseByteSize(config.quota, 'quota');
  } catch (error) {
    throw new ConfigError(`invalid configuration in ${config.path}: ${(error as HvError).message}`, {
      hint: 'set "quota" to a number of bytes or a size such as "500GiB"',
      cause: error,
    });
  }
}

/** Sums the size of every object in the store (keys and marker included) and compares it with the quota. */
export async function checkQuota(store: ObjectStore, quota: number): Promise<QuotaCheck> {
  if (!Number.isSafeInteger(quota) || quota <= 0) {
    throw new ConfigError(`invalid quota ${quota}: expected a positive whole number of bytes`);
  }

  let usedBytes = 0;
  for await (const object of store.list('')) usedBytes += object.size;

  const fraction = usedBytes / quota;
  return { usedBytes, quotaBytes: quota, fraction, level: quotaLevel(fraction) };
}

export function quotaLevel(fraction: number): QuotaLevel {
  if (fraction >= QUOTA_REFUSE_FRACTION) return 'refuse';
  if (fraction >= QUOTA_WARN_FRACTION) return 'warn';
  return 'ok';
}

/** Builds the line backup logs for a quota check, naming the repository, the use and what to do. */
export function quotaMessage(check: QuotaCheck, repository: string): string {
  const use = `${formatByteSize(check.usedBytes)} of the ${formatByteSize(check.quotaBytes)} quota (${(check.fraction * 100).toFixed(1)}%)`;
  switch (check.level) {
    case 'ok':
      return `repository ${repository} uses ${use}`;
    case 'warn':
      return `repository ${repository} uses ${use}, over the ${QUOTA_WARN_FRACTION * 100}% warning level: run \`hvbackup prune\` or raise "quota"`;
    case 'refuse':
      return `repository ${repository} uses ${use}, over the ${QUOTA_REFUSE_FRACTION * 100}% limit: no new backup is written until \`hvbackup prune\` frees space or "quota" is raised`;
  }
}
