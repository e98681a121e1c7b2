/**
 * What a drill of one domain found, how it compares with the targets, and
 * how it is shown: a table for people and JSON for scripts.
 */
import { formatTable } from '../cli/table.js';
import type { DrillTargets } from './settings.js';

export interface BootCheckResult {
  /** The sandbox domain reached the state "running". */
  running: boolean;
  /** Seconds from `virsh start` until "running"; null when it never got there. */
  runningSeconds: number | null;
  guestAgent: 'answered' | 'no-answer' | 'not-checked';
}

export type DrillOutcome = 'passed' | 'target-missed' | 'failed';

export interface DrillResult {
  domain: string;
  /** Name of the sandbox domain the backup was restored as. */
  sandbox: string;
  backupId: string | null;
  /** Point in time of the restored backup (manifest snapshotAt). */
  snapshotAt: string | null;
  /** Drill start minus snapshotAt: the data a disaster at that moment would have lost. */
  rpoSeconds: number | null;
  /** Time restoreBackup took: download, verification, staging and promotion. */
  restoreSeconds: number | null;
  /** Time from the start of the restore until the sandbox passed its boot check. */
  rtoSeconds: number | null;
  bootCheck: BootCheckResult;
  targets: DrillTargets;
  result: DrillOutcome;
  /** Every failure and missed target as one message each; empty when the drill passed. */
  failures: string[];
  /** Unix time in seconds when the drill of this domain ended. */
  finishedAt: number;
  /** The sandbox was left in place (--keep). */
  kept: boolean;
  /** Shell commands that remove a kept sandbox; empty when it was removed. */
  removeCommands: string[];
}

/** Returns one message per missed target, naming the domain, the target and both values. */
export function missedTargets(domain: string, measured: { rpoSeconds: number; rtoSeconds: number }, targets: DrillTargets): string[] {
  const messages: string[] = [];
  if (measured.rpoSeconds > targets.rpoSeconds) {
    messages.push(`drill of ${domain} missed the RPO target: measured ${formatSeconds(measured.rpoSeconds)}, target ${formatSeconds(targets.rpoSeconds)}`);
  }
  if (measured.rtoSeconds > targets.rtoSeconds) {
    messages.push(`drill of ${domain} missed the RTO target: measured ${formatSeconds(measured.rtoSeconds)}, target ${formatSeconds(targets.rtoSeconds)}`);
  }
  return messages;
}

/** Formats seconds with one decimal below 100 s and none above, for example "14.2 s" or "5 s". */
export function formatSeconds(seconds: number): string {
  if (seconds >= 100 || Number.isInteger(seconds)) return `${Math.round(seconds)} s`;
  if (seconds < 0.1) return `${Number(seconds.toPrecision(2))} s`;
  return `${seconds.toFixed(1)} s`;
}

export function formatSummary(results: DrillResult[]): string {
  const cell = (value: number | null) => (value === null ? '-' : formatSeconds(value));
  const rows = results.map((result) => [
    result.domain,
    result.backupId ?? '-',
    `${cell(result.rpoSeconds)} / ${formatSeconds(result.targets.rpoSeconds)}`,
    cell(result.restoreSeconds),
    `${cell(result.rtoSeconds)} / ${formatSeconds(result.targets.rtoSeconds)}`,
    describeBootCheck(result.bootCheck),
    result.result,
  ]);
  return formatTable(['DOMAIN', 'BACKUP', 'RPO / TARGET', 'RESTORE', 'RTO / TARGET', 'BOOT CHECK', 'RESULT'], rows);
}

function describeBootCheck(check: BootCheckResult): string {
  if (!check.running) return 'not running';
  if (check.guestAgent === 'answered') return 'running, agent answered';
  if (check.guestAgent === 'no-answer') return 'running, agent silent';
  return 'running';
}

/** The JSON form of one result, with the fields named in docs/drills.md. */
export function resultJson(result: DrillResult): Record<string, unknown> {
  return {
    domain: result.domain,
    sandbox: result.sandbox,
    backupId: result.backupId,
    snapshotAt: result.snapshotAt,
    rpoSeconds: result.rpoSeconds,
    restoreSeconds: result.restoreSeconds,
    rtoSeconds: result.rtoSeconds,
    bootCheck: result.bootCheck,
    targets: result.targets,
    result: result.result,
    error: result.failures.length > 0 ? result.failures.join('; ') : null,
    kept: result.kept,
    removeCommands: result.removeCommands,
    finishedAt: new Date(result.finishedAt * 1000).toISOString(),
  };
}
