/**
 * Runs one hvbackup subcommand in this process, the way bin/hvbackup.js
 * would, and captures what it prints on stdout. Used by the tests of the
 * prune, verify, usage and show commands.
 */
import { Command } from 'commander';
import { vi } from 'vitest';

export interface CommandRun {
  exitCode: number;
  stdout: string;
}

export async function runSubcommand(register: (program: Command) => void, args: string[]): Promise<CommandRun> {
  const program = new Command()
    .name('hvbackup')
    .option('-c, --config <file>')
    .option('--log-format <format>')
    .option('-v, --verbose')
    .exitOverride();
  register(program);

  let stdout = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  });
  const previous = process.exitCode;
  try {
    await program.parseAsync(['node', 'hvbackup', '--log-format', 'json', ...args]);
    return { exitCode: typeof process.exitCode === 'number' ? process.exitCode : 0, stdout };
  } finally {
    spy.mockRestore();
    process.exitCode = previous;
  }
}
