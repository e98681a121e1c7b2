import type { Command } from 'commander';

import { AuditLog } from '../../audit/audit-log.js';
import { ExitCode } from '../../errors.js';
import { Domains } from '../../libvirt/domains.js';
import { RECONNECT_MS, Virsh } from '../../libvirt/virsh.js';
import { authorizeAdmin } from '../../restore/authorize.js';
import { recoverPromotions } from '../../restore/promotion-recovery.js';
import { runCommand, type GlobalOptions } from '../run.js';

export function registerRecover(program: Command): void {
  program
    .command('recover')
    .description('roll back, or finish, restore promotions that a killed restore or drill left unfinished; every restore does this first (administrators only)')
    .option('--json', 'print the outcome per domain as JSON on stdout')
    .addHelpText('after', '\nExit status 1 when a journal is invalid or not trusted; hvbackup leaves it for an administrator.')
    .action(async (options: { json?: boolean }, command: Command) => {
      process.exitCode = await runCommand(command.optsWithGlobals<GlobalOptions>(), async ({ logger, loadConfig }) => {
        const config = await loadConfig();
        await authorizeAdmin('recover', { backupUser: config.backupUser, adminGroup: config.adminGroup, drillUser: config.drillUser });
        const virsh = new Virsh({ uri: config.libvirt.uri, reconnectMs: RECONNECT_MS, logger });
        const libvirt = { virsh, domains: new Domains(virsh) };
        const outcomes = await recoverPromotions(config, { logger, audit: new AuditLog(config.auditFile ?? undefined, logger), libvirt });

        // A journal that recovery cannot use still needs an administrator.
        const status = outcomes.some((outcome) => outcome.result === 'unusable') ? ExitCode.failure : ExitCode.ok;
        if (options.json) {
          process.stdout.write(`${JSON.stringify({ outcomes }, null, 2)}\n`);
          return status;
        }
        if (outcomes.length === 0) process.stdout.write('no unfinished promotion\n');
        for (const outcome of outcomes) {
          process.stdout.write(`${outcome.domain}\t${outcome.result}\n`);
          for (const action of outcome.actions) process.stdout.write(`  ${action}\n`);
          if (outcome.error !== undefined) process.stdout.write(`  ${outcome.error}\n`);
        }
        return status;
      });
    });
}
