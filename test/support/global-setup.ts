/**
 * Starts the real services the tests use (libvirtd, Ceph RADOS Gateway on
 * 127.0.0.1) once per test run and stops them afterwards. Each service has a
 * start/stop script under test/services/ that is also usable by hand.
 * Services that are already running (for example started by .ci/run) are
 * used as they are and left running.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const started: string[] = [];

function runService(script: string, action: 'start' | 'stop'): string {
  return execFileSync('bash', [join(root, 'test', 'services', script), action], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 300_000,
  });
}

/** Reads KEY=VALUE lines that a start script prints and exports them. */
function exportVariables(output: string): void {
  for (const line of output.split('\n')) {
    const match = /^(HVBACKUP_TEST_[A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (match) process.env[match[1]] = match[2];
  }
}

function commandExists(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function setup(): Promise<void> {
  if (process.env.HVBACKUP_TEST_NO_SERVICES === '1') return;

  if (commandExists('libvirtd') && existsSync(join(root, 'test/services/libvirtd.sh'))) {
    exportVariables(runService('libvirtd.sh', 'start'));
    started.push('libvirtd.sh');
  }

  if (!process.env.HVBACKUP_TEST_S3_ENDPOINT && commandExists('radosgw') && existsSync(join(root, 'test/services/rgw.sh'))) {
    // One gateway per test run: runs started side by side must not stop each other's.
    // The directory name stays short because Ceph's admin socket paths must fit in 107 bytes.
    process.env.HVBACKUP_RGW_DIR ??= `/tmp/hvb-rgw-${process.pid}`;
    exportVariables(runService('rgw.sh', 'start'));
    started.push('rgw.sh');
  }

  // Services started outside (by .ci/run or by hand) leave their variables here.
  const envFile = process.env.HVBACKUP_TEST_ENV_FILE;
  if (envFile && existsSync(envFile)) exportVariables(readFileSync(envFile, 'utf8'));
}

export async function teardown(): Promise<void> {
  for (const script of started.reverse()) {
    try {
      runService(script, 'stop');
    } catch (error) {
      console.error(`stopping ${script} failed: ${(error as Error).message}`);
    }
  }
}
