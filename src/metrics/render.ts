/**
 * The Prometheus text exposition format (version 0.0.4), as node_exporter's
 * textfile collector reads it: per metric one "# HELP" and one "# TYPE" line,
 * then its samples.
 */
import type { MetricsState } from './state.js';

interface Family {
  name: string;
  help: string;
  samples: { labels: Record<string, string>; value: number }[];
}

/** Escapes a label value: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export function renderMetrics(state: MetricsState): string {
  const domains = [...state.domains].sort((a, b) => `${a.host}/${a.domain}`.localeCompare(`${b.host}/${b.domain}`));
  const labels = (entry: { host: string; domain: string }) => ({ host: entry.host, domain: entry.domain });

  const families: Family[] = [
    {
      name: 'hvbackup_last_success_timestamp_seconds',
      help: 'Unix time of the last successful backup of the domain.',
      samples: domains.filter((entry) => entry.lastSuccessSeconds !== null).map((entry) => ({ labels: labels(entry), value: entry.lastSuccessSeconds! })),
    },
    {
      name: 'hvbackup_last_attempt_timestamp_seconds',
      help: 'Unix time of the last backup attempt of the domain.',
      samples: domains.map((entry) => ({ labels: labels(entry), value: entry.lastAttemptSeconds })),
    },
    {
      name: 'hvbackup_last_attempt_result',
      help: 'Result of the last backup attempt of the domain: 1 succeeded, 0 failed.',
      samples: domains.map((entry) => ({ labels: labels(entry), value: entry.lastAttemptOk ? 1 : 0 })),
    },
    {
      name: 'hvbackup_last_duration_seconds',
      help: 'Duration of the last backup attempt of the domain.',
      samples: domains.map((entry) => ({ labels: labels(entry), value: entry.lastDurationSeconds })),
    },
    {
      name: 'hvbackup_last_bytes_read',
      help: 'Disk bytes read by the last backup attempt of the domain.',
      samples: domains.map((entry) => ({ labels: labels(entry), value: entry.lastBytesRead })),
    },
    {
      name: 'hvbackup_last_bytes_stored',
      help: 'Bytes written to the repository by the last backup attempt of the domain.',
      samples: domains.map((entry) => ({ labels: labels(entry), value: entry.lastBytesStored })),
    },
  ];
  if (state.repository) {
    families.push(
      { name: 'hvbackup_repository_bytes', help: 'Bytes of all backups in the repository.', samples: [{ labels: {}, value: state.repository.bytes }] },
      { name: 'hvbackup_repository_backups', help: 'Committed backups in the repository.', samples: [{ labels: {}, value: state.repository.backups }] },
    );
  }

  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} gauge`);
    for (const sample of family.samples) lines.push(`${family.name}${formatLabels(sample.labels)} ${formatValue(sample.value)}`);
  }
  return `${lines.join('\n')}\n`;
}

function formatLabels(labels: Record<string, string>): string {
  const pairs = Object.entries(labels).map(([name, value]) => `${name}="${escapeLabelValue(value)}"`);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  return String(value);
}
