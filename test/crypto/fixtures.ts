/**
 * Keys and GnuPG home directories for the crypto tests. Keys are generated
 * fresh for each test file, so no secret key is ever committed.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';

import { generateAdminKey, generateHostKey, type GeneratedKey } from '../../src/crypto/index.js';

export interface TestKey {
  armored: GeneratedKey;
  publicKey: openpgp.PublicKey;
  privateKey: openpgp.PrivateKey;
}

async function parse(armored: GeneratedKey, passphrase?: string): Promise<TestKey> {
  const locked = await openpgp.readPrivateKey({ armoredKey: armored.privateKey });
  const privateKey = passphrase ? await openpgp.decryptKey({ privateKey: locked, passphrase }) : locked;
  return { armored, publicKey: await openpgp.readKey({ armoredKey: armored.publicKey }), privateKey };
}

export async function makeHostKey(name = 'host.example'): Promise<TestKey> {
  return parse(await generateHostKey({ name, email: `backup@${name}` }));
}

export async function makeAdminKey(name: string, passphrase?: string): Promise<TestKey> {
  return parse(await generateAdminKey({ name, email: `${name}@example.org`, passphrase }), passphrase);
}

/** Creates a temporary directory (mode 0700) and returns it with a remover. */
export function makeTempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(path, 0o700);
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export interface CommandResult {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

export function runCommand(command: string, args: string[], input?: Uint8Array | string): CommandResult {
  const result = spawnSync(command, args, { input, timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr.toString('utf8') };
}

/** A GnuPG home in a temporary directory, with its agent stopped on removal. */
export class GnupgHome {
  readonly dir: { path: string; remove(): void };

  constructor() {
    this.dir = makeTempDir('hvb-gpg-');
  }

  gpg(args: string[], input?: Uint8Array | string): CommandResult {
    return runCommand('gpg', ['--batch', '--homedir', this.dir.path, ...args], input);
  }

  importKey(armored: string): void {
    const result = this.gpg(['--import'], armored);
    if (result.status !== 0) throw new Error(`gpg --import failed: ${result.stderr}`);
  }

  writeFile(name: string, data: Uint8Array | string): string {
    const path = join(this.dir.path, name);
    writeFileSync(path, data);
    return path;
  }

  remove(): void {
    runCommand('gpgconf', ['--homedir', this.dir.path, '--kill', 'gpg-agent']);
    this.dir.remove();
  }
}

/** Returns a copy of `bytes` with one bit flipped at `offset`. */
export function flipBit(bytes: Uint8Array, offset: number): Uint8Array {
  const copy = bytes.slice();
  copy[offset] ^= 0x01;
  return copy;
}

/** Returns `length` bytes that differ per `seed`, cheap to make and check. */
export function patternBytes(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let index = 0; index < length; index += 1) bytes[index] = (index * 31 + seed * 7) & 0xff;
  return bytes;
}

/**
 * Returns true when both byte arrays are equal. Faster than vitest's toEqual,
 * which walks large typed arrays element by element.
 */
export function sameBytes(actual: Uint8Array, expected: Uint8Array): boolean {
  return Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(
    Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength),
  );
}
