/**
 * The retention policy: which backups of one domain to keep. The rules follow
 * restic's `forget` command (ApplyPolicy in restic's
 * internal/data/snapshot_policy.go):
 *
 * - Backups are walked newest first. `keepLast: N` keeps the N newest.
 * - `keepHourly`, `keepDaily`, `keepWeekly`, `keepMonthly` and `keepYearly`
 *   each keep the newest backup of each of the N most recent hours, days,
 *   ISO 8601 weeks (Monday to Sunday), months or years that have a backup.
 *   Periods without a backup do not count.
 * - When a rule still has counts left after the walk, the oldest backup is
 *   kept as well ("oldest monthly", for example), which keeps the longest
 *   history the counts allow.
 * - -1 means no limit: one backup of every period.
 * - A backup matched by several rules is kept once, with all its reasons.
 *
 * Every period is taken in UTC, whatever the host's time zone. Restic uses the
 * time zone stored with each snapshot, so a backup near midnight may fall into
 * another day here than it would in restic.
 *
 * Two additions restic does not have:
 * - Chain safety: every backup that a kept incremental depends on (through
 *   `parent`, transitively) is kept too, with the reason "parent of <id>".
 * - A backup dated after `now` (a host clock that ran ahead) is kept, with the
 *   reason "newer than now", and fills no period, so it cannot push a real
 *   backup out of `keepLast`.
 */
import { ConfigError } from '../errors.js';

export interface PolicyBackup {
  id: string;
  time: Date;
  type: 'full' | 'incremental';
  /** Backup id this incremental applies on top of, or null for a full backup. */
  parent: string | null;
}

/** Counts per rule. A missing rule or 0 keeps nothing by that rule, and -1 keeps every period. */
export interface RetentionPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
}

export interface RetentionDecision {
  /** Kept backup ids, each with the reasons in rule order. */
  keep: Map<string, string[]>;
  /** Removed backup ids, newest first, so children are deleted before the backups they depend on. */
  remove: string[];
  /** Kept incrementals whose parent is not among the backups given: their chain is already broken. */
  missingParents: { id: string; parent: string }[];
}

interface Rule {
  name: string;
  count: number;
  period: (time: Date, index: number) => string;
}

const RULE_KEYS = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;

/** Applies the policy to the backups of one domain. Throws ConfigError for a policy that keeps nothing. */
export function selectKept(backups: PolicyBackup[], policy: RetentionPolicy, now: Date): RetentionDecision {
  const rules = buildRules(policy);

  const keep = new Map<string, string[]>();
  const addReason = (id: string, reason: string) => {
    const reasons = keep.get(id);
    if (reasons === undefined) keep.set(id, [reason]);
    else if (!reasons.includes(reason)) reasons.push(reason);
  };

  const future = backups.filter((backup) => backup.time > now);
  for (const backup of future) addReason(backup.id, 'newer than now');

  const past = backups.filter((backup) => backup.time <= now).sort(newestFirst);
  applyRules(past, rules, addReason);

  const missingParents = keepParents(backups, keep, addReason);

  const remove = [...backups]
    .sort(newestFirst)
    .map((backup) => backup.id)
    .filter((id) => !keep.has(id));
  return { keep, remove, missingParents };
}

function buildRules(policy: RetentionPolicy): Rule[] {
  for (const key of RULE_KEYS) {
    const value = policy[key];
    if (value !== undefined && (!Number.isInteger(value) || value < -1)) {
      throw new ConfigError(`invalid retention.${key} ${value}: expected a whole number, 0 or more, or -1 for no limit`);
    }
  }

  const rules: Rule[] = [
    { name: 'last', count: policy.keepLast ?? 0, period: (_time, index) => String(index) },
    { name: 'hourly', count: policy.keepHourly ?? 0, period: (time) => time.toISOString().slice(0, 13) },
    { name: 'daily', count: policy.keepDaily ?? 0, period: (time) => time.toISOString().slice(0, 10) },
    { name: 'weekly', count: policy.keepWeekly ?? 0, period: isoWeek },
    { name: 'monthly', count: policy.keepMonthly ?? 0, period: (time) => time.toISOString().slice(0, 7) },
    { name: 'yearly', count: policy.keepYearly ?? 0, period: (time) => String(time.getUTCFullYear()) },
  ];
  const active = rules.filter((rule) => rule.count !== 0);

  // restic's forget rejects an empty policy too, because applying it would delete every backup.
  if (active.length === 0) {
    throw new ConfigError('the retention policy keeps nothing: every keep count is 0 or missing', {
      hint: 'set at least one of retention.keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly or keepYearly',
    });
  }
  return active;
}

/** Walks `sorted` (newest first) and keeps the newest backup of each new period while a rule has counts left. */
function applyRules(sorted: PolicyBackup[], rules: Rule[], addReason: (id: string, reason: string) => void): void {
  const remaining = rules.map((rule) => rule.count);
  const lastPeriod: (string | undefined)[] = rules.map(() => undefined);

  sorted.forEach((backup, index) => {
    const isOldest = index === sorted.length - 1;

    rules.forEach((rule, ruleIndex) => {
      if (remaining[ruleIndex] === 0) return;

      const period = rule.period(backup.time, index);
      const newPeriod = period !== lastPeriod[ruleIndex];
      if (!newPeriod && !isOldest) return;

      addReason(backup.id, newPeriod ? rule.name : `oldest ${rule.name}`);
      lastPeriod[ruleIndex] = period;
      if (remaining[ruleIndex] > 0) remaining[ruleIndex] -= 1;
    });
  });
}

/**
 * Keeps the parent of every kept incremental, then the parent of every
 * incremental kept that way, and so on down to the full backup.
 */
function keepParents(
  backups: PolicyBackup[],
  keep: Map<string, string[]>,
  addReason: (id: string, reason: string) => void,
): { id: string; parent: string }[] {
  const byId = new Map(backups.map((backup) => [backup.id, backup]));
  const pending = [...keep.keys()];
  const missing: { id: string; parent: string }[] = [];

  while (pending.length > 0) {
    const id = pending.pop()!;
    const backup = byId.get(id);
    if (backup === undefined || backup.type !== 'incremental' || backup.parent === null) continue;

    const parent = byId.get(backup.parent);
    if (parent === undefined) {
      missing.push({ id, parent: backup.parent });
      continue;
    }

    const newlyKept = !keep.has(parent.id);
    addReason(parent.id, `parent of ${id}`);
    if (newlyKept) pending.push(parent.id);
  }
  return missing.sort((a, b) => compareIds(b.id, a.id));
}

/** ISO 8601 week of a UTC time as "2025-W01": weeks start on Monday, and week 1 contains the year's first Thursday. */
export function isoWeek(time: Date): string {
  const day = Date.UTC(time.getUTCFullYear(), time.getUTCMonth(), time.getUTCDate());
  const weekday = (time.getUTCDay() + 6) % 7; // Monday 0 ... Sunday 6
  const thursday = new Date(day + (3 - weekday) * 86_400_000);

  const year = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * 86_400_000)) + 1;
  return `${year}-W${String(week).padStart(2, '0')}`;
}

function newestFirst(a: PolicyBackup, b: PolicyBackup): number {
  return b.time.getTime() - a.time.getTime() || compareIds(b.id, a.id);
}

function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}
