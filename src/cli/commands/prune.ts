import type { Command } from 'commander';

import { loadTrustedSigners } from '../../restore/manifest-check.js';
import { openRepository } from '../../repository/repository.js';
import { planPrune, type DomainPlan } from '../../prune/plan.js';
import { executePrune, type PruneOutcome } from '../../prune/prune.js';
import { pruneSettings } from '../../prune/settings.js';
import { formatByteSize } from '../../segment/size.js';
import { runCommand, type GlobalOptions } from '../run.js';

interface PruneOptions {
  dryRun?: boolean;
  json?: boolean;
  host?: string;
}

export function registerPrune(program: Command): void {
  program
    .command('prune')
    .description('remove backups that the "retention" policy no longer keeps, and abandoned unfinished backups')
    .argument('[domain...]', 'only these domains (default: all)')
    .option('--host <name>', 'only backups taken by this host')
    .option('--dry-run', 'print what would be removed and delete nothing')
    .option('--json', 'print JSON on stdout')
    .action(async (domains: string[], options: PruneOptions, command: Command) => {
      process.exitCode = await runCommand(command.optsWithGlobals<GlobalOptions>(), async ({ loadConfig, logger, signal }) => {
        const config = await loadConfig();
        const settings = pruneSettings(config);
        const { store } = await openRepository(config, { create: false });

        // Signatures are checked when the administrator pinned host keys; see src/prune/plan.ts for the trade-off.
        const trustedKeys = config.trustedSigners.length > 0 ? await loadTrustedSigners(store, config.trustedSigners) : undefined;
        if (!trustedKeys) logger.warn('no "trustedSigners" configured: prune decides from manifests whose signatures it does not check');

        const plans = await planPrune(store, { ...settings, host: options.host, domains, now: new Date(), trustedKeys });
        for (const plan of plans) warnAboutPlan(plan, logger);

        if (options.dryRun) {
          printPlan(plans, options.json === true);
          return;
        }

        const outcome = await executePrune(store, plans, {
          signal,
          onBackup: (result) => logger.info({ domain: result.domain, backupId: result.backupId, status: result.status, bytes: result.freedBytes }, 'backup pruned'),
        });
        for (const object of outcome.retained) logger.warn({ key: object.key }, `object kept by the store: ${object.reason}`);
        printOutcome(plans, outcome, options.json === true);
      });
    });
}

function warnAboutPlan(plan: DomainPlan, logger: { warn: (fields: object, message: string) => void }): void {
  for (const broken of plan.missingParents) {
    logger.warn({ domain: plan.domain, backupId: broken.backupId }, `parent ${broken.parent} of kept backup ${broken.backupId} is missing: it cannot be restored`);
  }
  for (const unreadable of plan.unreadable) {
    logger.warn({ domain: plan.domain, backupId: unreadable.backupId }, `kept because its manifest cannot be used: ${unreadable.error}`);
  }
}

function printPlan(plans: DomainPlan[], json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify({ dryRun: true, domains: plans }, null, 2)}\n`);
    return;
  }
  const lines: string[] = [];
  let bytes = 0;
  for (const plan of plans) {
    lines.push(`${plan.host}/${plan.domain}: keep ${plan.keep.length}, remove ${plan.remove.length}`);
    for (const kept of plan.keep) lines.push(`  keep    ${kept.backupId}  ${kept.reasons.join(', ')}`);
    for (const removal of plan.remove) {
      lines.push(`  remove  ${removal.backupId}  ${removal.reason}  ${formatByteSize(removal.bytes)}`);
      bytes += removal.bytes;
    }
  }
  lines.push(`dry run: would free ${formatByteSize(bytes)}; nothing was deleted`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

function printOutcome(plans: DomainPlan[], outcome: PruneOutcome, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify({ dryRun: false, domains: plans, removed: outcome.backups, freedBytes: outcome.freedBytes, retained: outcome.retained }, null, 2)}\n`);
    return;
  }
  const lines = outcome.backups.map(
    (result) => `${result.status.padEnd(8)}  ${result.host}/${result.domain}/${result.backupId}  ${result.reason}  ${formatByteSize(result.freedBytes)}`,
  );
  lines.push(`removed ${outcome.backups.filter((result) => result.status === 'removed').length} backups, freed ${formatByteSize(outcome.freedBytes)}`);
  if (outcome.retained.length > 0) {
    lines.push(`${outcome.retained.length} objects kept by Object Lock retention or permissions:`);
    for (const object of outcome.retained) lines.push(`  ${object.key}: ${object.reason}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
