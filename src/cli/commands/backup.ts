import type { Command } from 'commander';
import PQueue from 'p-queue';

import { backupDomain, type BackupResult } from '../../backup/backup-domain.js';
import { createBackupContext } from '../../backup/context.js';
import { ExitCode, UsageError } from '../../errors.js';
import { progressFor } from '../../log/progress.js';
import { formatByteSize } from '../../segment/size.js';
import { runCommand, type GlobalOptions } from '../run.js';

interface BackupOptions {
  all?: boolean;
  json?: boolean;
}

export function registerBackup(program: Command): void {
  program
    .command('backup')
    .description('take an encrypted, signed full backup of libvirt domains (running or shut off)')
    .argument('[domains...]', 'names of the domains to back up')
    .option('--all', 'back up every defined domain')
    .option('--json', 'print the results as JSON on stdout')
    .action(async (names: string[], options: BackupOptions, command: Command) => {
      process.exitCode = await runCommand(command.optsWithGlobals<GlobalOptions>(), async ({ logger, signal, loadConfig }) => {
        if (options.all && names.length > 0) throw new UsageError('pass either --all or domain names, not both');
        if (!options.all && names.length === 0) throw new UsageError('no domain given', { hint: 'name one or more domains, or pass --all' });

        const config = await loadConfig();
        const context = await createBackupContext(config, { logger, signal, progress: progressFor() });
        try {
          const domains = options.all ? await context.domains.list({ all: true }) : names;
          for (const name of domains) {
            if (!(await context.domains.exists(name))) {
              throw new UsageError(`domain ${name} not found in ${config.libvirt.uri}`, {
                hint: `check the name with: virsh -c ${config.libvirt.uri} list --all`,
              });
            }
          }

          // Domains run in parallel up to the configured limit; one failure does not stop the others.
          const queue = new PQueue({ concurrency: config.concurrency.domains });
          const results: BackupResult[] = [];
          const failures: { domain: string; error: unknown }[] = [];
          for (const name of domains) {
            void queue.add(async () => {
              try {
                results.push(await backupDomain(context, name));
              } catch (error) {
                failures.push({ domain: name, error });
                logger.error({ domain: name, err: error, phase: 'failed' }, `backup of ${name} failed: ${(error as Error).message}`);
              }
            });
          }
          await queue.onIdle();

          printResults(results, options.json === true);
          if (failures.length > 0) {
            if (failures.length === 1 && domains.length === 1) throw failures[0].error;
            return ExitCode.failure;
          }
          return ExitCode.ok;
        } finally {
          await context.close();
        }
      });
    });
}

function printResults(results: BackupResult[], json: boolean): void {
  if (json) {
    const rows = results.map((result) => ({
      domain: result.ref.domain,
      backupId: result.ref.backupId,
      host: result.ref.host,
      type: result.manifest.type,
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
        `in ${result.manifest.segments.length} segments, ${(result.durationMs / 1000).toFixed(1)} s\n`,
    );
  }
}
