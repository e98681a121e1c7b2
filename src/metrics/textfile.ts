/**
 * Recording a backup's result for Prometheus: merge it into the state file,
 * then rewrite the textfile from the whole state. Both files are replaced
 * atomically, so node_exporter never reads half a file.
 *
 * NOTE: two processes recording at the same moment can lose one update
 * (read, merge, write without a lock). One backup run records its domains
 * one after another, so this matters only for overlapping runs.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

import { writeFileAtomic } from './atomic-write.js';
import { renderMetrics } from './render.js';
import { metricsStatePath, readMetricsState, writeMetricsState, type MetricsState } from './state.js';

export interface BackupResultMetrics {
  host: string;
  domain: string;
  ok: boolean;
  finishedAt: Date;
  durationSeconds: number;
  bytesRead: number;
  bytesStored: number;
  /** Repository totals after the run, when the caller measured them (for example with summarizeUsage). */
  repository?: { bytes: number; backups: number };
}

/** Merges one domain's result into the state, then rewrites the textfile. Returns the new state. */
export async function recordBackupResult(stateDir: string, metricsPath: string, result: BackupResultMetrics): Promise<MetricsState> {
  const statePath = metricsStatePath(stateDir);
  const state = await readMetricsState(statePath);

  const finished = result.finishedAt.getTime() / 1000;
  const previous = state.domains.find((entry) => entry.host === result.host && entry.domain === result.domain);
  const updated = {
    host: result.host,
    domain: result.domain,
    lastSuccessSeconds: result.ok ? finished : previous?.lastSuccessSeconds ?? null,
    lastAttemptSeconds: finished,
    lastAttemptOk: result.ok,
    lastDurationSeconds: result.durationSeconds,
    lastBytesRead: result.bytesRead,
    lastBytesStored: result.bytesStored,
  };
  state.domains = [...state.domains.filter((entry) => entry !== previous), updated];
  if (result.repository) state.repository = result.repository;

  await mkdir(stateDir, { recursive: true, mode: 0o750 });
  await writeMetricsState(statePath, state);
  await writeMetricsFile(metricsPath, state);
  return state;
}

/** Writes the textfile for a state, creating its directory when needed. */
export async function writeMetricsFile(metricsPath: string, state: MetricsState): Promise<void> {
  await mkdir(dirname(metricsPath), { recursive: true, mode: 0o755 });
  await writeFileAtomic(metricsPath, renderMetrics(state));
}
