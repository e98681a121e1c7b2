/** Writes an hvbackup configuration file for a test. */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import type { TestKeys } from './setup-keys.js';

export type TestRepository =
  | { type: 'local'; path: string }
  | { type: 's3'; bucket: string; prefix?: string; endpoint: string; region: string; forcePathStyle: true };

export async function writeTestConfig(
  dir: string,
  options: { keys: TestKeys; repository: TestRepository; extra?: Record<string, unknown>; createRepository?: boolean },
): Promise<string> {
  // QEMU runs as its own user and must reach the scratch directory below `dir`.
  // mkdtemp creates directories with mode 0700, so open `dir` and its parent for traversal.
  await chmod(dirname(dir), 0o755);
  await chmod(dir, 0o755);
  // A local repository's directory must exist: backups never create it, so an unmounted disk cannot swallow them.
  if (options.repository.type === 'local' && options.createRepository !== false) await mkdir(options.repository.path, { recursive: true, mode: 0o750 });
  const path = join(dir, 'config.json');
  const config = {
    repository: options.repository,
    scratchDir: join(dir, 'scratch'),
    stagingDir: join(dir, 'staging'),
    stateDir: join(dir, 'state'),
    signingKey: options.keys.hostSecret,
    recipients: [options.keys.adminPublic],
    trustedSigners: [options.keys.hostFingerprint],
    adminKey: options.keys.adminSecret,
    auditFile: join(dir, 'audit.jsonl'),
    ...options.extra,
  };
  await writeFile(path, JSON.stringify(config, null, 2));
  return path;
}

/** Environment for the AWS SDK's default credential chain, pointing at the test RGW user. */
export function s3Environment(): NodeJS.ProcessEnv {
  return {
    AWS_ACCESS_KEY_ID: process.env.HVBACKUP_TEST_S3_ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: process.env.HVBACKUP_TEST_S3_SECRET_KEY,
    AWS_REGION: process.env.HVBACKUP_TEST_S3_REGION ?? 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}
