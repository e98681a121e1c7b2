/**
 * `hvbackup drill`: drills of several domains, one after the other, and the
 * metrics file written from their results. Drills run one at a time so that
 * each RTO is measured without another restore competing for the disks,
 * the network and the CPU.
 */
import { readSecretKeyFile } from '../crypto/index.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { Config } from '../config/load.js';
import { describeError, UsageError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { Progress } from '../log/progress.js';
import { openRepository } from '../repository/repository.js';
import { listBackups } from '../restore/catalog.js';
import { drillDomain, initialResult } from './drill-domain.js';
import { writeDrillMetrics } from './metrics.js';
import type { DrillResult } from './report.js';
import { drillKeyPath, drillSettings } from './settings.js';

export interface DrillOptions {
  /** Domains to drill; every domain of this host with a committed backup when `all` is set. */
  domains: string[];
  all: boolean;
  keep: boolean;
  audit: AuditLog;
  logger: Logger;
  signal: AbortSignal;
  progress?: Progress;
}

export interface DrillRun {
  results: DrillResult[];
  /** Where the metrics were written; undefined without drill.metricsFile. */
  metricsFile?: string;
  /** Why the metrics file could not be written; the drills themselves are in `results`. */
  metricsError?: string;
}

/** Runs the drills and writes the metrics file. Returns every result, passed or not; throws only when interrupted or misused. */
export async function runDrills(config: Config, options: DrillOptions): Promise<DrillRun> {
  const settings = drillSettings(config);
  const domains = await selectDomains(config, options);
  const keyPath = await drillKeyPath(config);
  const drillKey = keyPath === undefined ? undefined : await readSecretKeyFile(keyPath);

  const results: DrillResult[] = [];
  for (const domain of domains) {
    options.signal.throwIfAborted();
    try {
      results.push(await drillDomain(config, domain, { settings, drillKey, keep: options.keep, audit: options.audit, logger: options.logger, signal: options.signal, progress: options.progress }));
    } catch (error) {
      if (options.signal.aborted) throw error;
      // drillDomain reports restore and boot failures in its result; what arrives here failed before the sandbox existed.
      options.logger.error({ phase: 'drill', drillOf: domain, err: error }, describeError(error));
      const result = initialResult(domain, '', settings.targetsOf(domain));
      result.failures.push(`drill of ${domain} failed: ${describeError(error)}`);
      result.finishedAt = Date.now() / 1000;
      results.push(result);
    }
  }

  if (settings.metricsFile === undefined) return { results };
  try {
    await writeDrillMetrics(settings.metricsFile, results, config.host);
    return { results, metricsFile: settings.metricsFile };
  } catch (error) {
    const message = `writing drill metrics to ${settings.metricsFile} failed: ${describeError(error)}`;
    options.logger.error({ phase: 'drill-metrics', err: error }, message);
    return { results, metricsError: message };
  }
}

async function selectDomains(config: Config, options: DrillOptions): Promise<string[]> {
  if (options.all && options.domains.length > 0) {
    throw new UsageError('pass either domain names or --all, not both');
  }
  if (!options.all && options.domains.length === 0) {
    throw new UsageError('no domain to drill', { hint: 'name one or more domains, or pass --all for every domain with a backup' });
  }
  if (!options.all) return [...new Set(options.domains)];

  const { store } = await openRepository(config, { create: false });
  const committed = (await listBackups(store, { host: config.host })).filter((entry) => entry.committed);
  const domains = [...new Set(committed.map((entry) => entry.domain))].sort();
  if (domains.length === 0) {
    throw new UsageError(`no committed backup of host ${config.host} in the repository, so --all has nothing to drill`, {
      hint: 'run a backup first, or set "host" in the configuration to the name the backups were taken under',
    });
  }
  return domains;
}
