import type { Command } from 'commander';

import { AuditLog } from '../../audit/audit-log.js';
import type { Config } from '../../config/load.js';
import { runDrills } from '../../drill/drill.js';
import { formatSummary, resultJson } from '../../drill/report.js';
import { ExitCode } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import { progressFor } from '../../log/progress.js';
import { authorizeAdmin } from '../../restore/authorize.js';
import { runCommand, type GlobalOptions } from '../run.js';

interface DrillCommandOptions {
  all?: boolean;
  keep?: boolean;
  json?: boolean;
}

export function registerDrill(program: Command): void {
  program
    .command('drill')
    .description('restore the latest backup of each domain into a sandbox without network, boot it, measure RPO and RTO, then remove it')
    .argument('[domains...]', 'domains to drill')
    .option('--all', 'drill every domain of this host that has a committed backup')
    .option('--keep', 'leave the sandbox domain and its disks for inspection and print how to remove them')
    .option('--json', 'print the results as JSON on stdout')
    .addHelpText('after', '\nExit status 1 when a restore or boot check fails or a target is missed; drill.metricsFile receives the results either way.')
    .action(async (domains: string[], options: DrillCommandOptions, command: Command) => {
      process.exitCode = await runCommand(command.optsWithGlobals<GlobalOptions>(), async ({ logger, signal, loadConfig }) => {
        const config = await loadConfig();
        const audit = new AuditLog(config.auditFile ?? undefined, logger);
        await authorizeDrill(config, audit, logger);
        const run = await runDrills(config, {
          domains,
          all: options.all === true,
          keep: options.keep === true,
          audit,
          logger,
          signal,
          progress: options.json ? undefined : progressFor(),
        });

        if (options.json) {
          process.stdout.write(`${JSON.stringify({ drills: run.results.map(resultJson), metricsFile: run.metricsFile ?? null }, null, 2)}\n`);
        } else {
          process.stdout.write(formatSummary(run.results));
          for (const result of run.results.filter((item) => item.kept)) {
            process.stdout.write(`\nsandbox ${result.sandbox} kept; remove it with:\n  ${result.removeCommands.join('\n  ')}\n`);
          }
        }

        const failures = run.results.flatMap((result) => result.failures);
        for (const failure of failures) logger.error({ phase: 'drill' }, failure);
        return failures.length > 0 || run.metricsError !== undefined ? ExitCode.failure : ExitCode.ok;
      });
    });
}

/**
 * Checks the role before a drill creates its sandbox or reads the drill key,
 * so that the backup user is rejected with the role message and nothing is
 * touched. A failed audit write is logged and does not hide the rejection.
 */
async function authorizeDrill(config: Config, audit: AuditLog, logger: Logger): Promise<void> {
  try {
    await authorizeAdmin('drill', { backupUser: config.backupUser, adminGroup: config.adminGroup, drillUser: config.drillUser });
  } catch (error) {
    await audit.record({ action: 'drill', result: 'refused', error: (error as Error).message }).catch((auditError: unknown) => {
      logger.error({ audit: true, err: auditError }, `writing the audit event "drill refused" failed: ${(auditError as Error).message}`);
    });
    throw error;
  }
}
