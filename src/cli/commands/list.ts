import type { Command } from 'commander';

import { openRepository } from '../../repository/repository.js';
import { listBackups } from '../../restore/catalog.js';
import { backupIdTime, manifestKey, type BackupRef } from '../../manifest/layout.js';
import type { ObjectStore } from '../../repository/store.js';
import { formatByteSize } from '../../segment/size.js';
import { runCommand, type GlobalOptions } from '../run.js';
import { formatTable } from '../table.js';

interface ListOptions {
  host?: string;
  json?: boolean;
  all?: boolean;
}

export function registerList(program: Command): void {
  program
    .command('list')
    .description('list the backups in the repository (no key needed); SIZE counts every object of a backup: its segments, manifest and signature')
    .argument('[domain]', 'only backups of this domain')
    .option('--host <name>', 'only backups taken by this host')
    .option('--all', 'include unfinished backups (no manifest)')
    .option('--json', 'print JSON on stdout')
    .action(async (domain: string | undefined, options: ListOptions, command: Command) => {
      process.exitCode = await runCommand(command.optsWithGlobals<GlobalOptions>(), async ({ loadConfig }) => {
        const config = await loadConfig();
        const { store } = await openRepository(config, { create: false });
        const entries = (await listBackups(store, { host: options.host, domain }))
          .filter((entry) => options.all || entry.committed);

        // The type and parent come from the manifest, read here without checking its
        // signature: list only informs, and restore and verify check every signature.
        const rows = await Promise.all(
          entries.map(async (entry) => {
            const summary = entry.committed ? await readSummary(store, entry) : undefined;
            return {
              host: entry.host,
              domain: entry.domain,
              backupId: entry.backupId,
              type: summary?.type ?? '-',
              parent: summary?.parent ?? null,
              time: backupIdTime(entry.backupId).toISOString(),
              bytes: entry.bytes,
              objects: entry.objects,
              state: entry.committed ? 'committed' : 'unfinished',
            };
          }),
        );

        if (options.json) {
          process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
          return;
        }
        if (rows.length === 0) {
          process.stdout.write(`no backups in ${store.description}\n`);
          return;
        }
        process.stdout.write(
          formatTable(
            ['DOMAIN', 'BACKUP', 'TYPE', 'TIME', 'SIZE', 'STATE', 'HOST'],
            rows.map((row) => [row.domain, row.backupId, row.type, row.time.replace('.000Z', 'Z'), formatByteSize(row.bytes), row.state, row.host]),
          ),
        );
      });
    });
}

async function readSummary(store: ObjectStore, ref: BackupRef): Promise<{ type: string; parent: string | null } | undefined> {
  try {
    const manifest = JSON.parse((await store.get(manifestKey(ref))).toString('utf8')) as { type?: unknown; parent?: unknown };
    return {
      type: typeof manifest.type === 'string' ? manifest.type : '?',
      parent: typeof manifest.parent === 'string' ? manifest.parent : null,
    };
  } catch {
    return { type: '?', parent: null };
  }
}
