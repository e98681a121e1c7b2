import type { Command } from 'commander';
import PQueue from 'p-queue';

import { AuditLog } from '../../audit/audit-log.js';
import { backupDomain, type BackupResult } from '../../backup/backup-domain.js';
import type { BackupMode } from '../../backup/chain.js';
import { unknownExcludeDomains } from '../../backup/disk-selection.js';
import { createBackupContext, type BackupContext } from '../../backup/context.js';
import type { Config } from '../../config/load.js';
import { ExitCode, RefusedError, UsageError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import { progressFor } from '../../log/progress.js';
import { recordBackupResult } from '../../metrics/textfile.js';
import { formatByteSize } from '../../segment/size.js';
import { checkQuota, quotaBytes, quotaMessage } from '../../usage/quota.js';
import { runCommand, type GlobalOptions } from '../run.js';

interface BackupOptions {
  all?: boolean;
  mode: string;
  json?: boolean;
}

const MODES: BackupMode[] = ['full', 'incremental', 'auto'];

export function registerBackup(program: Command): void {
  program
    .command('backup')
    .description('take encrypted, signed backups of libvirt domains, running or shut off')
    .argument('[domains...]', 'names of the domains to back up')
    .option('--all', 'back up every defined domain')
    .option('--mode <mode>', 'full, incremental, or auto: incremental when a valid chain exists, else full', 'auto')
    .option('--json', 'print the results as JSON on stdout')
    .action(async (names: string[], options: BackupOptions, command: Command) => {
      process.exitCode = await runCommand(command.optsWithGlobals<GlobalOptions>(), async ({ logger, signal, loadConfig }) => {
        if (options.all && names.length > 0) throw new UsageError('pass either --all or domain names, not both');
        if (!options.all && names.length === 0) throw new UsageError('no domain given', { hint: 'name one or more domains, or pass --all' });
        if (!MODES.includes(options.mode as BackupMode)) {
          throw new UsageError(`invalid --mode "${options.mode}": expected one of ${MODES.join(', ')}`);
        }

        const config = await loadConfig();
        const context = await createBackupContext(config, { logger, signal, progress: progressFor() });
        try {
          await enforceQuota(context, logger);
          const defined = await context.domains.list({ all: true });
          warnUnknownExcludeDomains(config, defined, logger);
          const domains = options.all ? defined : names;
          for (const name of domains) {
            // virsh also accepts a domain's UUID or id, which the list of names lacks.
            if (!defined.includes(name) && !(await context.domains.exists(name))) {
              throw new UsageError(`domain ${name} not found in ${config.libvirt.uri}`, {
                hint: `check the name with: virsh -c ${config.libvirt.uri} list --all`,
              });
            }
          }
          return await backupAll(context, config, domains, options.mode as BackupMode, options.json === true);
        } finally {
          await context.close();
        }
      });
    });
}

/** Backs domains up in parallel up to the configured limit; one failure does not stop the others. */
async function backupAll(context: BackupContext, config: Config, domains: string[], mode: BackupMode, json: boolean): Promise<number> {
  const audit = new AuditLog(config.auditFile ?? undefined, context.logger);
  const queue = new PQueue({ concurrency: config.concurrency.domains });
  const results: BackupResult[] = [];
  const failures: { domain: string; error: unknown }[] = [];

  for (const name of domains) {
    void queue.add(async () => {
      const started = Date.now();
      try {
        const result = await backupDomain(context, name, { mode });
        results.push(result);
        await audit.record({ action: 'backup', result: 'ok', domain: name, backupId: result.ref.backupId, host: result.ref.host, durationMs: result.durationMs });
        await recordMetrics(config, context.logger, { domain: name, ok: true, started, result });
      } catch (error) {
        failures.push({ domain: name, error });
        context.logger.error({ domain: name, err: error, phase: 'failed' }, `backup of ${name} failed: ${(error as Error).message}`);
        await audit.record({ action: 'backup', result: 'failed', domain: name, error: (error as Error).message, durationMs: Date.now() - started });
        await recordMetrics(config, context.logger, { domain: name, ok: false, started });
      }
    });
  }
  await queue.onIdle();

  printResults(results, json);
  if (failures.length === 0) return ExitCode.ok;
  if (failures.length === 1 && domains.length === 1) throw failures[0].error;
  return ExitCode.failure;
}

/**
 * Warns about each domain name in excludeDisks that libvirt does not know:
 * a misspelt name would silently back up the disks it means to leave out.
 */
function warnUnknownExcludeDomains(config: Config, defined: string[], logger: Logger): void {
  for (const name of unknownExcludeDomains(config.excludeDisks, defined)) {
    logger.warn(
      { domain: name },
      `excludeDisks names domain ${name}, which is not defined in ${config.libvirt.uri}, so it excludes nothing; check the spelling with: virsh -c ${config.libvirt.uri} list --all`,
    );
  }
}

async function enforceQuota(context: BackupContext, logger: Logger): Promise<void> {
  const quota = quotaBytes(context.config);
  if (quota === undefined) return;

  const check = await checkQuota(context.store, quota);
  const message = quotaMessage(check, context.store.description);
  if (check.level === 'refuse') throw new RefusedError(message);
  if (check.level === 'warn') logger.warn({ usedBytes: check.usedBytes, quotaBytes: check.quotaBytes }, message);
}

async function recordMetrics(
  config: Config,
  logger: Logger,
  outcome: { domain: string; ok: boolean; started: number; result?: BackupResult },
): Promise<void> {
  if (!config.metricsFile) return;
  try {
    await recordBackupResult(config.stateDir, config.metricsFile, {
      host: config.host,
      domain: outcome.domain,
      ok: outcome.ok,
      finishedAt: new Date(),
      durationSeconds: (Date.now() - outcome.started) / 1000,
      bytesRead: outcome.result?.bytesRead ?? 0,
      bytesStored: outcome.result?.bytesStored ?? 0,
    });
  } catch (error) {
    // Metrics must never turn a good backup into a failed run.
    logger.warn({ err: error, metricsFile: config.metricsFile }, `cannot write metrics file ${config.metricsFile}`);
  }
}

function printResults(results: BackupResult[], json: boolean): void {
  if (json) {
    const rows = results.map((result) => ({
      domain: result.ref.domain,
      backupId: result.ref.backupId,
      host: result.ref.host,
      type: result.manifest.type,
      parent: result.manifest.parent,
      bytesRead: result.bytesRead,
      bytesStored: result.bytesStored,
      segments: result.manifest.segments.length,
      durationMs: result.durationMs,
    }));
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  for (const result of results) {
    process.stdout.write(
      `${result.ref.domain}\t${result.ref.backupId}\t${result.manifest.type}\t` +
        `read ${formatByteSize(result.bytesRead)}, stored ${formatByteSize(result.bytesStored)} ` +
        `in ${result.manifest.segments.length} segment${result.manifest.segments.length === 1 ? '' : 's'}, ${(result.durationMs / 1000).toFixed(1)} s\n`,
    );
  }
}
