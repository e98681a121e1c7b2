import type { Command } from 'commander';

import { anyFailed, runDoctor } from '../../doctor/doctor.js';
import { formatJson, formatResults, formatSummary } from '../../doctor/report.js';
import { ExitCode } from '../../errors.js';
import { runCommand, type GlobalOptions } from '../run.js';

interface DoctorCommandOptions {
  json?: boolean;
  writeTest?: boolean;
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check this host\'s setup: tools, libvirt, domains, keys, directories, repository, roles; exit 1 when a check fails')
    .argument('[domains...]', 'domains to check (default: every defined domain)')
    .option('--json', 'print JSON on stdout')
    .option('--write-test', 'also write and delete a small object under doctor/ in the repository')
    .action(async (domains: string[], options: DoctorCommandOptions, command: Command) => {
      process.exitCode = await runCommand(command.optsWithGlobals<GlobalOptions>(), async ({ loadConfig }) => {
        const results = await runDoctor({
          loadConfig,
          domains,
          writeTest: options.writeTest === true,
          // Text output appears group by group, so a slow check is visible while it runs.
          onResults: options.json ? undefined : (group) => process.stdout.write(formatResults(group)),
        });

        if (options.json) process.stdout.write(formatJson(results));
        else process.stdout.write(formatSummary(results));
        return anyFailed(results) ? ExitCode.failure : ExitCode.ok;
      });
    });
}
