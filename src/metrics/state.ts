/**
 * The metrics state file (stateDir/metrics-state.json): the last result of
 * every domain, so a run that backs up only some domains still writes a
 * textfile with all of them.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { writeFileAtomic } from './atomic-write.js';

export const METRICS_STATE_NAME = 'metrics-state.json';

export interface DomainMetrics {
  host: string;
  domain: string;
  /** Unix seconds of the last successful backup, or null when none succeeded yet. */
  lastSuccessSeconds: number | null;
  lastAttemptSeconds: number;
  lastAttemptOk: boolean;
  lastDurationSeconds: number;
  lastBytesRead: number;
  lastBytesStored: number;
}

export interface MetricsState {
  version: 1;
  domains: DomainMetrics[];
  repository: { bytes: number; backups: number } | null;
}

export function metricsStatePath(stateDir: string): string {
  return join(stateDir, METRICS_STATE_NAME);
}

/** Reads the state file. A missing or unreadable file starts an empty state, because the next backup rewrites it whole. */
export async function readMetricsState(path: string): Promise<MetricsState> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
    throw error;
  }

  try {
    const parsed = JSON.parse(text) as MetricsState;
    if (parsed.version === 1 && Array.isArray(parsed.domains)) return parsed;
  } catch {
    // fall through: a damaged state file only loses the history of the metrics
  }
  return emptyState();
}

export async function writeMetricsState(path: string, state: MetricsState): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(state, null, 2)}\n`, 0o640);
}

function emptyState(): MetricsState {
  return { version: 1, domains: [], repository: null };
}
