/**
 * Starts and stops the services the benchmark needs through the test
 * scripts: libvirtd (test/services/libvirtd.sh) and a Ceph RGW of its own
 * (test/services/rgw.sh with HVBACKUP_RGW_DIR=/tmp/hvb-rgw-bench), and talks
 * to that RGW with the AWS CLI, always with an explicit 127.0.0.1 endpoint.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { run } from './shell.mjs';

export const RGW_DIR = '/tmp/hvb-rgw-bench';

// rgw.sh keeps objects in an OSD on memstore, whose default device size of
// 1 GiB fills up after one 2 GiB backup. The OSD then stops taking writes and
// uploads hang (seen with Ceph 16.2.15). CEPH_ARGS reaches every Ceph daemon
// the script starts.
const MEMSTORE_BYTES = 16 * 1024 ** 3;

// Debian's awscli package installs /usr/bin/aws; a pyenv shim earlier in PATH may be a different version.
export const AWS = existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws';

function runScript(root, script, action, env) {
  // detached: the Ceph daemons rgw.sh starts must not share our process
  // group, or a Ctrl-C on the benchmark would kill them before `stop` runs.
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [join(root, 'test', 'services', script), action], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${script} ${action} failed with exit code ${code}:\n${stderr.trim()}`))));
  });
}

function parseVariables(stdout) {
  return Object.fromEntries(
    stdout
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

/** Starts libvirtd and RGW. Returns { s3, stop() }, where s3 contains endpoint, accessKey, secretKey and region. */
export async function startServices(root) {
  // libvirtd.sh records its caller's PID (ours) while we use the daemons, so
  // another test run's `stop` leaves them running until we exit.
  await runScript(root, 'libvirtd.sh', 'start', {});
  const variables = parseVariables(await runScript(root, 'rgw.sh', 'start', { HVBACKUP_RGW_DIR: RGW_DIR, CEPH_ARGS: `--memstore_device_bytes=${MEMSTORE_BYTES}` }));
  const s3 = {
    endpoint: variables.HVBACKUP_TEST_S3_ENDPOINT,
    accessKey: variables.HVBACKUP_TEST_S3_ACCESS_KEY,
    secretKey: variables.HVBACKUP_TEST_S3_SECRET_KEY,
    region: variables.HVBACKUP_TEST_S3_REGION ?? 'us-east-1',
  };
  if (!s3.endpoint?.startsWith('http://127.0.0.1:')) throw new Error(`rgw.sh printed no 127.0.0.1 endpoint: ${JSON.stringify(variables)}`);

  const stop = async () => {
    await runScript(root, 'rgw.sh', 'stop', { HVBACKUP_RGW_DIR: RGW_DIR }).catch((error) => console.error(error.message));
    await runScript(root, 'libvirtd.sh', 'stop', {}).catch((error) => console.error(error.message));
  };
  return { s3, stop };
}

/** Environment for the AWS CLI, the AWS SDK inside hvbackup and restic: explicit credentials, no metadata service. */
export function s3Environment(s3) {
  return {
    AWS_ACCESS_KEY_ID: s3.accessKey,
    AWS_SECRET_ACCESS_KEY: s3.secretKey,
    AWS_REGION: s3.region,
    AWS_DEFAULT_REGION: s3.region,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
  };
}

export function aws(s3, ...args) {
  return run(AWS, ['--endpoint-url', s3.endpoint, ...args], { env: s3Environment(s3) });
}

export async function createBucket(s3, bucket) {
  await aws(s3, 's3', 'mb', `s3://${bucket}`);
}

/** Deletes every object of the bucket and the bucket. A missing bucket is not an error. */
export async function removeBucket(s3, bucket) {
  await aws(s3, 's3', 'rb', '--force', `s3://${bucket}`).catch((error) => {
    if (!/NoSuchBucket|does not exist/.test(error.message)) throw error;
  });
}

/** Returns the total size of the objects in the bucket. */
export async function bucketBytes(s3, bucket) {
  const stdout = await aws(s3, 's3', 'ls', '--recursive', '--summarize', `s3://${bucket}`);
  const match = /Total Size:\s*(\d+)/.exec(stdout);
  return match ? Number(match[1]) : 0;
}
