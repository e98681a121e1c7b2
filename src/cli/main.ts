import { Command, CommanderError } from 'commander';

import { ExitCode } from '../errors.js';
import { TOOL_VERSION } from '../version.js';
import { registerBackup } from './commands/backup.js';
import { registerDoctor } from './commands/doctor.js';
import { registerDrill } from './commands/drill.js';
import { registerKeys } from './commands/keys.js';
import { registerList } from './commands/list.js';
import { registerPrune } from './commands/prune.js';
import { registerRecover } from './commands/recover.js';
import { registerRestore } from './commands/restore.js';
import { registerShow } from './commands/show.js';
import { registerUsage } from './commands/usage.js';
import { registerVerify } from './commands/verify.js';

export function buildProgram(): Command {
  const program = new Command()
    .name('hvbackup')
    .description('encrypted, signed backups of libvirt/QEMU domains, and verified restores')
    .version(TOOL_VERSION)
    .option('-c, --config <file>', 'configuration file (default: $HVBACKUP_CONFIG or /etc/hvbackup/config.json)')
    .option('--log-format <format>', 'log format on stderr: json or human (default: human on a terminal, else json)')
    .option('-v, --verbose', 'log debug events')
    .showHelpAfterError()
    .exitOverride();

  registerBackup(program);
  registerRestore(program);
  registerRecover(program);
  registerDrill(program);
  registerList(program);
  registerShow(program);
  registerVerify(program);
  registerPrune(program);
  registerUsage(program);
  registerKeys(program);
  registerDoctor(program);
  return program;
}

/** Runs the command line and returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    throw error;
  }
}
