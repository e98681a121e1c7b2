import type { Command } from 'commander';

import { openRepository } from '../../repository/repository.js';
import { formatByteSize } from '../../segment/size.js';
import { checkQuota, quotaBytes, quotaMessage, type QuotaCheck } from '../../usage/quota.js';
import { summarizeUsage } from '../../usage/usage.js';
import { runCommand, type GlobalOptions } from '../run.js';
import { formatTable } from '../table.js';

export function registerUsage(program: Command): void {
  program
    .command('usage')
    .description('print bytes and backup counts per host and domain, and the quota use (no key needed)')
    .option('--json', 'print JSON on stdout')
    .action(async (options: { json?: boolean }, command: Command) => {
      process.exitCode = await runCommand(command.optsWithGlobals<GlobalOptions>(), async ({ loadConfig }) => {
        const config = await loadConfig();
        const { store } = await openRepository(config, { create: false });
        const usage = await summarizeUsage(store);
        const quota = quotaBytes(config);
        const check: QuotaCheck | undefined = quota === undefined ? undefined : await checkQuota(store, quota);

        if (options.json) {
          process.stdout.write(`${JSON.stringify({ ...usage, quota: check ?? null }, null, 2)}\n`);
          return;
        }
        const rows = usage.domains.map((domain) => [domain.domain, domain.host, String(domain.backups), String(domain.unfinished), formatByteSize(domain.bytes)]);
        rows.push(['TOTAL', '', String(usage.backups), String(usage.unfinished), formatByteSize(usage.bytes)]);
        process.stdout.write(formatTable(['DOMAIN', 'HOST', 'BACKUPS', 'UNFINISHED', 'SIZE'], rows));
        if (check) process.stdout.write(`${quotaMessage(check, store.description)}\n`);
      });
    });
}
