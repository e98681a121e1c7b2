/**
 * Drill results as a Prometheus textfile for node_exporter's textfile
 * collector. The file is replaced by rename, so the collector reads either
 * the old or the new file and never a half-written one. Drill metrics go to
 * their own file (drill.metricsFile, for example hvbackup-drill.prom) so
 * that drill and backup never overwrite each other's samples.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

import { writeFileAtomic } from '../metrics/atomic-write.js';
import { escapeLabelValue } from '../metrics/render.js';
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
 * Renders the textfile with the labels host and domain, as the backup
 * metrics have. A value that was not measured (for example the RTO of a
 * failed restore) has no sample, so an alert on it sees the series
 * disappear instead of a made-up number.
 *
 * NOTE: the file holds only the domains of this run, so a drill of one
 * domain removes the series of the others until the next `drill --all`.
 */
export function renderDrillMetrics(results: DrillResult[], host: string): string {
  const lines: string[] = [];
  for (const family of FAMILIES) {
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} gauge`);
    for (const result of results) {
      const value = family.value(result);
      if (value === null) continue;
      lines.push(`${family.name}{host="${escapeLabelValue(host)}",domain="${escapeLabelValue(result.domain)}"} ${formatValue(value)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

function formatValue(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(3);
}

/** Writes the textfile atomically, creating its directory when missing. */
export async function writeDrillMetrics(path: string, results: DrillResult[], host: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, renderDrillMetrics(results, host));
}
