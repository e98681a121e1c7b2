import type { Command } from 'commander';

import { requireSetting } from '../../config/load.js';
import { ExitCode, UsageError } from '../../errors.js';
import { openRepository } from '../../repository/repository.js';
import { loadTrustedSigners } from '../../restore/manifest-check.js';
import { formatByteSize } from '../../segment/size.js';
import { selectBackups, verifyBackups } from '../../verify/select.js';
import type { BackupVerification } from '../../verify/verify.js';
import { progressFor } from '../../log/progress.js';
import { prepareDecryption } from '../../restore/decryption.js';
import { checkDecrypted } from '../../verify/decrypt.js';
import { promptPassphrase } from '../passphrase.js';
import { runCommand, type GlobalOptions } from '../run.js';

interface VerifyCommandOptions {
  all?: boolean;
  readData?: boolean;
  json?: boolean;
  host?: string;
  decrypt?: boolean;
  decryptWith?: string;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('check manifest signatures and segments of committed backups (no decryption key needed); exit 4 on any failure')
    .argument('[backup...]', 'backup ids, or domain names meaning their latest backup')
    .option('--all', 'verify every committed backup')
    .option('--host <name>', 'only backups taken by this host')
    .option('--read-data', 'download every segment and check its SHA-256, not only its size')
    .option('--decrypt', 'also decrypt every segment with the admin key and check inner signatures, archive and disk checksums')
    .option('--decrypt-with <method>', 'with --decrypt: key (the adminKey file, default) or gpg (gpg-agent, e.g. a smartcard)', 'key')
    .option('--json', 'print JSON on stdout')
    .action(async (selectors: string[], options: VerifyCommandOptions, command: Command) => {
      process.exitCode = await runCommand(command.optsWithGlobals<GlobalOptions>(), async ({ loadConfig, logger, signal }) => {
        const config = await loadConfig();
        const fingerprints = requireSetting(config.trustedSigners, 'trustedSigners', config, 'verify');
        const { store } = await openRepository(config, { create: false });

        const refs = await selectBackups(store, selectors, { all: options.all === true, host: options.host });
        const trustedKeys = await loadTrustedSigners(store, fingerprints);
        if (options.decryptWith !== 'key' && options.decryptWith !== 'gpg') {
          throw new UsageError(`invalid --decrypt-with "${options.decryptWith}": expected key or gpg`);
        }
        const decryption = options.decrypt
          ? await prepareDecryption(config, { decryptWith: options.decryptWith, signal, passphrase: () => promptPassphrase('admin key') })
          : undefined;

        const results = await verifyBackups(store, refs, trustedKeys, {
          readData: options.readData === true,
          concurrency: config.concurrency.downloads,
          signal,
          progress: progressFor(),
          afterChecks: decryption
            ? async (ref, result) => {
                if (!result.ok) return;
                const failures = await checkDecrypted(store, ref, trustedKeys, {
                  decryption,
                  workers: config.concurrency.workers,
                  readAhead: config.concurrency.downloads,
                  signal,
                });
                result.failures.push(...failures);
                result.ok = failures.length === 0;
                result.decrypted = true;
              }
            : undefined,
          onResult: (result) => {
            for (const failure of result.failures) {
              logger.error({ domain: result.domain, backupId: result.backupId, check: failure.check, key: failure.object }, failure.message);
            }
          },
        });

        printResults(results, options.json === true);
        return results.every((result) => result.ok) ? ExitCode.ok : ExitCode.verification;
      });
    });
}

function printResults(results: BackupVerification[], json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    return;
  }
  const lines: string[] = [];
  for (const result of results) {
    const name = `${result.host}/${result.domain}/${result.backupId}`;
    if (result.ok) {
      const depth = result.decrypted
        ? 'decrypted: inner signatures, archive and disk checksums checked'
        : result.readData
          ? 'hashes checked'
          : 'sizes checked';
      lines.push(`OK      ${name}  ${plural(result.segments, 'segment')}, ${formatByteSize(result.bytes)}, ${depth}`);
      continue;
    }
    lines.push(`FAILED  ${name}`);
    for (const failure of result.failures) lines.push(`  ${failure.check}: ${failure.object}: ${failure.message}`);
  }
  const failed = results.filter((result) => !result.ok).length;
  lines.push(failed === 0 ? `${results.length} backups verified` : `${failed} of ${results.length} backups failed verification`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
