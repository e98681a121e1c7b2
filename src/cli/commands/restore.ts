import type { Command } from 'commander';

import { AuditLog } from '../../audit/audit-log.js';
import { restoreBackup } from '../../restore/restore.js';
import { confirmOnTerminal } from '../confirm.js';
import { promptPassphrase, readPassphrase } from '../passphrase.js';
import { UsageError } from '../../errors.js';
import { progressFor } from '../../log/progress.js';
import { runCommand, type GlobalOptions } from '../run.js';

interface RestoreCommandOptions {
  as?: string;
  host?: string;
  at?: string;
  storageDir?: string;
  replace?: boolean;
  dropExcludedDisks?: boolean;
  allowRollback?: boolean;
  yes?: boolean;
  reason?: string;
  json?: boolean;
  decryptWith?: string;
  passphraseFd?: string;
}

export function registerRestore(program: Command): void {
  program
    .command('restore')
    .description('verify a backup completely, restore it into staging, then define the domain (administrators only)')
    .argument('<backup>', 'a backup id, or a domain name for its latest backup')
    .option('--as <name>', 'restore as a clone with this name: new UUID, new MAC addresses, new disk paths')
    .option('--storage-dir <dir>', 'directory for the disks and NVRAM of a clone (default: next to the originals)')
    .option('--at <time>', 'with a domain name: restore the latest backup started at or before this time (ISO 8601, e.g. 2026-12-01T02:00Z)')
    .option('--host <name>', 'the host that took the backup, when several hosts share the repository')
    .option('--replace', 'overwrite an existing domain and its disks (the domain must be shut off)')
    .option(
      '--drop-excluded-disks',
      'remove the disks that the backup left out (configuration key "excludeDisks") from the restored definition. Without it, an in-place restore keeps them on their existing images and fails when an image is missing. A clone (--as) always removes them',
    )
    .option('--allow-rollback', 'allow a backup older than restore.maxAgeDays or older than the latest backup of the domain')
    .option('-y, --yes', 'do not ask for confirmation (for scripts); without it, restore asks on a terminal and refuses elsewhere')
    .option('--reason <text>', 'why this restore is done; recorded in the audit trail')
    .option('--decrypt-with <method>', 'key: read the admin key file ("adminKey"); gpg: let gpg-agent decrypt each session key, so the secret key (or smartcard) stays in gpg', 'key')
    .option('--passphrase-fd <fd>', 'read the passphrase of a protected admin key file from this file descriptor (default: ask on the terminal)')
    .option('--json', 'print the result as JSON on stdout')
    .action(async (selector: string, options: RestoreCommandOptions, command: Command) => {
      process.exitCode = await runCommand(command.optsWithGlobals<GlobalOptions>(), async ({ logger, signal, loadConfig }) => {
        const config = await loadConfig();
        const decryptWith = parseDecryptWith(options.decryptWith);
        const passphraseFd = options.passphraseFd;
        const result = await restoreBackup(config, {
          selector,
          host: options.host,
          at: parseTime(options.at),
          as: options.as,
          storageDir: options.storageDir,
          replace: options.replace === true,
          dropExcludedDisks: options.dropExcludedDisks === true,
          allowRollback: options.allowRollback === true,
          reason: options.reason,
          decryptWith,
          passphrase: passphraseFd === undefined ? promptPassphrase : () => readPassphrase(passphraseFd),
          confirm: (summary) => confirmOnTerminal(summary, options.yes === true),
          audit: new AuditLog(config.auditFile ?? undefined, logger),
          logger,
          signal,
          progress: progressFor(),
        });

        if (options.json) {
          const output = { ...result.ref, restoredAs: result.domain, disks: result.disks, excludedDisks: result.excludedDisks, durationMs: result.durationMs };
          process.stdout.write(`${JSON.stringify(output, null, 2)}\n`);
        } else {
          process.stdout.write(`restored ${result.ref.domain} backup ${result.ref.backupId} as domain ${result.domain}\n`);
          for (const disk of result.disks) process.stdout.write(`  ${disk.target}\t${disk.path}\n`);
          for (const disk of result.excludedDisks) {
            const note = disk.action === 'keep' ? 'excluded from the backup, existing image kept' : 'excluded from the backup, removed from the definition';
            process.stdout.write(`  ${disk.target}\t${disk.path}\t(${note})\n`);
          }
        }
      });
    });
}

function parseDecryptWith(text: string | undefined): 'key' | 'gpg' {
  if (text === undefined || text === 'key' || text === 'gpg') return text ?? 'key';
  throw new UsageError(`invalid --decrypt-with "${text}": expected "key" or "gpg"`);
}

function parseTime(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const time = new Date(text);
  if (Number.isNaN(time.getTime())) {
    throw new UsageError(`invalid --at "${text}": expected an ISO 8601 time such as 2026-12-01T02:00:00Z`);
  }
  return time;
}
