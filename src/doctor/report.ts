/** Text and JSON renderings of doctor results for stdout. */
import type { CheckResult, CheckStatus } from './check.js';

const LABELS: Record<CheckStatus, string> = { ok: 'OK', info: 'INFO', warn: 'WARN', fail: 'FAIL' };

/** Formats results as one line each, `STATUS name: detail`, with an indented `fix:` line under every WARN and FAIL. */
export function formatResults(results: CheckResult[]): string {
  let text = '';
  for (const result of results) {
    text += `${LABELS[result.status].padEnd(4)}  ${result.name}: ${result.detail}\n`;
    if (result.fix !== undefined) text += `      fix: ${result.fix}\n`;
  }
  return text;
}

export interface ResultCounts {
  ok: number;
  info: number;
  warn: number;
  fail: number;
}

export function countResults(results: CheckResult[]): ResultCounts {
  const counts: ResultCounts = { ok: 0, info: 0, warn: 0, fail: 0 };
  for (const result of results) counts[result.status] += 1;
  return counts;
}

/** Formats the closing summary line of the text output. */
export function formatSummary(results: CheckResult[]): string {
  const counts = countResults(results);
  return `${counts.fail} failed, ${counts.warn} warnings, ${counts.ok} passed\n`;
}

/** Formats the JSON document: every result plus the counts. */
export function formatJson(results: CheckResult[]): string {
  return `${JSON.stringify({ results, counts: countResults(results) }, null, 2)}\n`;
}
