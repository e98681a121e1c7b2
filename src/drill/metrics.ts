/**
 * Drill results as a Prometheus textfile for node_exporter's textfile
 * collector. The file is replaced by rename, so the collector reads either
 * the old or the new file and never a half-written one. Drill metrics go to
 * their own file (drill.metricsFile) so that drill and backup never
 * overwrite each other's samples.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import type { DrillResult } from './report.js';

interface MetricFamily {
  name: string;
  help: string;
  value: (result: DrillResult) => number | null;
}

const FAMILIES: MetricFamily[] = [
  { name: 'hvbackup_drill_success', help: '1 if the last drill of the domain restored, booted and met its targets, else 0.', value: (r) => (r.result === 'passed' ? 1 : 0) },
  { name: 'hvbackup_drill_rpo_seconds', help: 'Age of the restored backup at the start of the last drill.', value: (r) => r.rpoSeconds },
  { name: 'hvbackup_drill_rto_seconds', help: 'Seconds from the start of the last drill restore until the sandbox passed its boot check.', value: (r) => r.rtoSeconds },
  { name: 'hvbackup_drill_restore_seconds', help: 'Seconds the restore of the last drill took.', value: (r) => r.restoreSeconds },
  { name: 'hvbackup_drill_timestamp_seconds', help: 'Unix time when the last drill of the domain ended.', value: (r) => r.finishedAt },
];

/**
 * Renders the textfile. A value that was not measured (for example the RTO
 * of a failed restore) has no sample, so an alert on it sees the series
 * disappear instead of a made-up number.
 */
export function renderDrillMetrics(results: DrillResult[]): string {
  const lines: string[] = [];
  for (const family of FAMILIES) {
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} gauge`);
    for (const result of results) {
      const value = family.value(result);
      if (value === null) continue;
      lines.push(`${family.name}{domain="${escapeLabelValue(result.domain)}"} ${formatValue(value)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Escapes a label value as the text exposition format requires: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(3);
}

/**
 * Writes `text` to `path` through a temporary file in the same directory,
 * then renames it into place. The temporary name does not end in .prom, so
 * the collector skips it.
 */
export async function writeTextfileAtomic(path: string, text: string): Promise<void> {
  const directory = dirname(path);
  await mkdir(directory, { recursive: true });
  const temporary = join(directory, `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);

  try {
    const file = await open(temporary, 'wx', 0o644);
    try {
      await file.writeFile(text, 'utf8');
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
