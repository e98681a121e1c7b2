import type { Command } from 'commander';

import { openRepository } from '../../repository/repository.js';
import { resolveBackup } from '../../restore/catalog.js';
import { loadTrustedSigners } from '../../restore/manifest-check.js';
import { formatByteSize } from '../../segment/size.js';
import { summarizeBackup, type BackupSummary } from '../../verify/summary.js';
import { runCommand, type GlobalOptions } from '../run.js';

export function registerShow(program: Command): void {
  program
    .command('show')
    .description('print the manifest summary of a backup and its chain of parents (no decryption key needed)')
    .argument('<backup>', 'backup id, or a domain name meaning its latest backup')
    .option('--host <name>', 'only backups taken by this host')
    .option('--json', 'print JSON on stdout')
    .action(async (selector: string, options: { host?: string; json?: boolean }, command: Command) => {
      process.exitCode = await runCommand(command.optsWithGlobals<GlobalOptions>(), async ({ loadConfig, logger }) => {
        const config = await loadConfig();
        const { store } = await openRepository(config, { create: false });
        const ref = await resolveBackup(store, selector, { host: options.host });

        const trustedKeys = config.trustedSigners.length > 0 ? await loadTrustedSigners(store, config.trustedSigners) : undefined;
        if (!trustedKeys) logger.warn('no "trustedSigners" configured: the manifests shown are not signature-checked');
        const summary = await summarizeBackup(store, ref, { trustedKeys, now: new Date() });

        process.stdout.write(options.json ? `${JSON.stringify(summary, null, 2)}\n` : formatSummary(summary));
      });
    });
}

function formatSummary(summary: BackupSummary): string {
  const chain = summary.chain.map((link) => `${link.backupId} (${link.type})`).join(' <- ');
  const lines = [
    `backup      ${summary.host}/${summary.domain}/${summary.backupId}`,
    `type        ${summary.type}`,
    `chain       ${chain}${summary.chainComplete ? '' : '  INCOMPLETE: no full backup at its end'}`,
    `started     ${summary.startedAt}`,
    `snapshot    ${summary.snapshotAt} (the state a restore returns to)`,
    `finished    ${summary.finishedAt}`,
    `age         ${formatAge(summary.ageSeconds)}`,
    `archive     ${formatByteSize(summary.archiveBytes)} in ${summary.segments} segment${summary.segments === 1 ? '' : 's'}, ${formatByteSize(summary.storedBytes)} stored`,
    ...summary.disks.map((disk) => `disk        ${disk.target} (${disk.format}) ${formatByteSize(disk.virtualSize)}, ${formatByteSize(disk.storedBytes)} stored`),
    ...summary.excludedDisks.map((disk) => `excluded    ${disk.target} (${disk.format}) ${disk.sourcePath}, not stored`),
    `signer      ${summary.signer}${summary.signatureChecked ? ' (signature verified)' : ' (signature not checked)'}`,
  ];
  return `${lines.join('\n')}\n`;
}

function formatAge(seconds: number): string {
  const days = Math.floor(seconds / 86_400);
  const hours = Math.floor((seconds % 86_400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  return days > 0 ? `${days}d ${hours}h` : `${hours}h ${minutes}m`;
}
