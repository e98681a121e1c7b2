/** Turning the configuration's `retention` key into prune's plan options. */
import type { Config } from '../config/load.js';
import { ConfigError } from '../errors.js';
import type { RetentionPolicy } from './policy.js';

export const DEFAULT_UNFINISHED_GRACE_HOURS = 24;

export interface PruneSettings {
  policy: RetentionPolicy;
  unfinishedGraceMs: number;
}

/** Reads `retention` from the configuration. Throws ConfigError when it is missing, because prune without a policy would guess. */
export function pruneSettings(config: Config): PruneSettings {
  const retention = config.retention;
  if (retention === undefined) {
    throw new ConfigError(`configuration ${config.path} has no "retention", which prune needs`, {
      hint: 'add for example "retention": { "keepDaily": 7, "keepWeekly": 4, "keepMonthly": 12 }; docs/operations.md explains the rules',
    });
  }

  const { unfinishedGraceHours, ...policy } = retention;
  const hours = unfinishedGraceHours ?? DEFAULT_UNFINISHED_GRACE_HOURS;
  return { policy, unfinishedGraceMs: hours * 60 * 60 * 1000 };
}
