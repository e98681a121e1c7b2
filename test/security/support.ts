/**
 * Shared steps of the security tests: an RGW bucket per test file, copies of
 * a backup's objects to another prefix (each tamper case works on its own
 * copy), host snapshots to prove nothing changed, and audit file reading.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

import { S3Store } from '../../src/repository/s3.js';
import type { ObjectStore } from '../../src/repository/store.js';
import { cliPath } from '../support/cli.js';
import type { TestRepository } from '../support/config.js';

const execFileAsync = promisify(execFile);

/** Creates an RGW client with explicit endpoint and credentials, so nothing falls back to another host. */
function s3Client(): S3Client {
  return new S3Client({
    endpoint: process.env.HVBACKUP_TEST_S3_ENDPOINT,
    region: process.env.HVBACKUP_TEST_S3_REGION ?? 'us-east-1',
    forcePathStyle: true,
    credentials: {
      accessKeyId: process.env.HVBACKUP_TEST_S3_ACCESS_KEY ?? '',
      secretAccessKey: process.env.HVBACKUP_TEST_S3_SECRET_KEY ?? '',
    },
  });
}

/** Creates a bucket with a random suffix and returns its name. */
export async function createTestBucket(label: string): Promise<string> {
  const name = `hvb-sec-${label}-${randomBytes(4).toString('hex')}`;
  const client = s3Client();
  try {
    await client.send(new CreateBucketCommand({ Bucket: name }));
  } finally {
    client.destroy();
  }
  return name;
}

export function s3Repository(bucket: string, prefix: string): TestRepository & { type: 's3' } {
  return {
    type: 's3',
    bucket,
    prefix,
    endpoint: process.env.HVBACKUP_TEST_S3_ENDPOINT ?? '',
    region: process.env.HVBACKUP_TEST_S3_REGION ?? 'us-east-1',
    forcePathStyle: true,
  };
}

/** Opens the store below `prefix` of `bucket` with the test credentials. */
export function openTestStore(bucket: string, prefix: string): S3Store {
  return new S3Store({
    bucket,
    prefix,
    endpoint: process.env.HVBACKUP_TEST_S3_ENDPOINT,
    region: process.env.HVBACKUP_TEST_S3_REGION ?? 'us-east-1',
    forcePathStyle: true,
    credentials: {
      accessKeyId: process.env.HVBACKUP_TEST_S3_ACCESS_KEY ?? '',
      secretAccessKey: process.env.HVBACKUP_TEST_S3_SECRET_KEY ?? '',
    },
    maxAttempts: 2,
  });
}

/** Copies every object of `source` into `target` under the same keys. Returns the keys copied. */
export async function copyObjects(source: ObjectStore, target: ObjectStore): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of source.list('')) keys.push(info.key);
  for (const key of keys) await target.put(key, await source.get(key));
  return keys;
}

/** Returns a copy of `bytes` with bit `bit` of byte `offset` inverted. */
export function flipBit(bytes: Buffer, offset: number, bit = 0): Buffer {
  const copy = Buffer.from(bytes);
  copy[offset] ^= 1 << bit;
  return copy;
}

/** Names of domains this suite may create; other test runs share libvirtd and define their own. */
export const SECURITY_DOMAIN_PREFIX = 'hvb-test-sec-';

/** Domain names and the SHA-256 of files: what a refused restore must leave unchanged. */
export interface HostSnapshot {
  domains: string[];
  fileHashes: Record<string, string>;
}

/** Lists the domains named with SECURITY_DOMAIN_PREFIX (`virsh list --all --name`) and hashes `files`. */
export async function snapshotHost(files: string[]): Promise<HostSnapshot> {
  const { stdout } = await execFileAsync('virsh', ['-c', 'qemu:///system', 'list', '--all', '--name']);
  const domains = stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((name) => name.startsWith(SECURITY_DOMAIN_PREFIX))
    .sort();
  const fileHashes: Record<string, string> = {};
  for (const file of files) fileHashes[file] = createHash('sha256').update(await readFile(file)).digest('hex');
  return { domains, fileHashes };
}

/** Entries left in a staging directory; a missing directory counts as empty. */
export async function stagingEntries(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

export interface AuditLine {
  action: string;
  result: string;
  check?: string;
  object?: string;
  reason?: string;
  error?: string;
  user?: string;
  [field: string]: unknown;
}

export async function readAudit(path: string): Promise<AuditLine[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as AuditLine);
}

/** Returns the `code` of the error line that the command line logs as JSON on stderr, if any. */
export function errorCode(stderr: string): string | undefined {
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { level?: number; code?: string };
    if (entry.level === 50 && entry.code) return entry.code;
  }
  return undefined;
}

/**
 * Runs the command line inside `script`, which gives it a pseudo-terminal,
 * and types `answer` once `prompt` appears.
 */
export function runOnTerminal(args: string[], answer: string, prompt = 'Type "yes" to go on'): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, cliPath, '--log-format', 'json', ...args].map((word) => `'${word.replaceAll("'", "'\\''")}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let answered = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`restore on a terminal timed out; output so far:\n${output}`));
    }, 120_000);

    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (!answered && output.includes(prompt)) {
        answered = true;
        child.stdin.write(`${answer}\n`);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}
