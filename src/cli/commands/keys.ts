import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';

import type { Command } from 'commander';

import { generateAdminKey, generateHostKey, keyInfo, readPublicKeyFile } from '../../crypto/index.js';
import { HvError, ExitCode, UsageError } from '../../errors.js';
import { runCommand, type GlobalOptions } from '../run.js';
import { readPassphrase } from '../passphrase.js';

interface CreateOptions {
  output: string;
  name?: string;
  email?: string;
  passphraseFd?: string;
  force?: boolean;
}

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('create keys for a first setup and print fingerprints');

  keys
    .command('create-host')
    .description('create the host signing key (unencrypted, for unattended backups): host-key.asc and host-key.pub.asc')
    .requiredOption('-o, --output <dir>', 'directory to write the key files into')
    .option('--name <name>', 'user id name of the key', 'hvbackup host')
    .option('--email <email>', 'user id email of the key')
    .option('--force', 'overwrite existing key files')
    .action(async (options: CreateOptions, command: Command) => {
      process.exitCode = await runCommand(command.optsWithGlobals<GlobalOptions>(), async () => {
        const key = await generateHostKey({ name: options.name ?? 'hvbackup host', email: options.email });
        await writeKeyPair(options.output, 'host-key', key, options.force === true);
        process.stdout.write(`host key ${key.fingerprint}\n  secret: ${join(options.output, 'host-key.asc')}\n  public: ${join(options.output, 'host-key.pub.asc')}\n`);
        process.stdout.write(`add the fingerprint to "trustedSigners" in every administrator's configuration\n`);
      });
    });

  keys
    .command('create-admin')
    .description('create an administrator key pair: admin-NAME.asc (secret) and admin-NAME.pub.asc (public, for "recipients")')
    .requiredOption('-o, --output <dir>', 'directory to write the key files into')
    .requiredOption('--name <name>', 'administrator name; also used in the file names')
    .option('--email <email>', 'user id email of the key')
    .option('--passphrase-fd <fd>', 'read a passphrase for the secret key from this file descriptor (default: none)')
    .option('--force', 'overwrite existing key files')
    .action(async (options: CreateOptions, command: Command) => {
      process.exitCode = await runCommand(command.optsWithGlobals<GlobalOptions>(), async () => {
        const name = options.name ?? '';
        if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) {
          throw new UsageError(`invalid --name "${name}": use 1 to 64 letters, digits, ".", "_" or "-"`);
        }
        const passphrase = options.passphraseFd === undefined ? undefined : await readPassphrase(options.passphraseFd);
        const key = await generateAdminKey({ name, email: options.email, passphrase });
        await writeKeyPair(options.output, `admin-${name}`, key, options.force === true);
        process.stdout.write(`admin key ${key.fingerprint}\n  secret: ${join(options.output, `admin-${name}.asc`)}\n  public: ${join(options.output, `admin-${name}.pub.asc`)}\n`);
        process.stdout.write(`add the public file to "recipients" on every backup host\n`);
      });
    });

  keys
    .command('show')
    .description('print the fingerprint and user ids of key files')
    .argument('<files...>', 'OpenPGP key files (public or secret)')
    .action(async (files: string[], _options: unknown, command: Command) => {
      process.exitCode = await runCommand(command.optsWithGlobals<GlobalOptions>(), async () => {
        for (const file of files) {
          const info = keyInfo(await readPublicKeyFile(file));
          process.stdout.write(`${info.fingerprint}  ${info.userIds.join(', ')}  ${file}\n`);
        }
      });
    });
}

async function writeKeyPair(
  directory: string,
  baseName: string,
  key: { publicKey: string; privateKey: string },
  force: boolean,
): Promise<void> {
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const flag = force ? 'w' : 'wx';
  try {
    await writeFile(join(directory, `${baseName}.asc`), key.privateKey, { mode: 0o600, flag });
    await writeFile(join(directory, `${baseName}.pub.asc`), key.publicKey, { mode: 0o644, flag });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new HvError('exists', `key file ${join(directory, baseName)}.asc or .pub.asc already exists`, ExitCode.usage, {
        hint: 'choose another --output directory, or pass --force to replace the keys (backups made with the old key stay readable only with it)',
      });
    }
    throw error;
  }
}
