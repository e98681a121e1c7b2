/**
 * Who may restore and drill, checked as real system users. The test creates
 * hvbtest-backup (the configured backup user), hvbtest-admin (member of the
 * configured admin group hvbtest-admins) and hvbtest-other, runs the built
 * command line as each of them with runuser, and removes them afterwards.
 */
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { cliPath, runCli, type CliResult } from '../support/cli.js';
import { createTestKeys, type TestKeys } from '../support/setup-keys.js';
import { errorCode } from './support.js';

const execFileAsync = promisify(execFile);

const backupUser = 'hvbtest-backup';
const adminUser = 'hvbtest-admin';
const otherUser = 'hvbtest-other';
const adminGroup = 'hvbtest-admins';

const isRoot = process.getuid?.() === 0;

async function removeUsersAndGroup(): Promise<void> {
  for (const user of [backupUser, adminUser, otherUser]) {
    await execFileAsync('userdel', [user]).catch(() => undefined);
  }
  await execFileAsync('groupdel', [adminGroup]).catch(() => undefined);
}

async function uidOf(user: string): Promise<number> {
  const { stdout } = await execFileAsync('id', ['-u', user]);
  return Number(stdout.trim());
}

/**
 * Returns the audit events mirrored into the JSON log on stderr. A user
 * without write access to the audit file leaves its refusal only there.
 */
function auditEvents(stderr: string): { action: string; user: string }[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { audit?: boolean; action: string; user: string })
    .filter((entry) => entry.audit === true);
}

/** Runs bin/hvbackup.js as `user` with runuser, without a terminal. */
function runAs(user: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(
      'runuser',
      ['-u', user, '--', process.execPath, cliPath, '--log-format', 'json', ...args],
      { cwd: '/', timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve({ code: 0, signal: null, stdout, stderr });
          return;
        }
        if (typeof error.code !== 'number') {
          reject(error);
          return;
        }
        resolve({ code: error.code, signal: null, stdout, stderr });
      },
    );
  });
}

describe.skipIf(!isRoot)('restore and drill roles', () => {
  let work: string;
  let keys: TestKeys;
  let config: string;
  let unreadableRepository: string;

  beforeAll(async () => {
    await removeUsersAndGroup();
    await execFileAsync('groupadd', ['--system', adminGroup]);
    await execFileAsync('useradd', ['--system', '--no-create-home', backupUser]);
    await execFileAsync('useradd', ['--system', '--no-create-home', '--groups', adminGroup, adminUser]);
    await execFileAsync('useradd', ['--system', '--no-create-home', otherUser]);

    work = await mkdtemp(join(tmpdir(), 'hvb-sec-roles-'));
    await chmod(work, 0o755);
    keys = await createTestKeys(work);
    // The admin key must be readable by the admin alone, as readSecretKeyFile demands.
    await chown(keys.adminSecret, await uidOf(adminUser), 0);
    await chmod(keys.adminSecret, 0o600);

    // Only root can read this repository, so an error about it would show that the role check came too late.
    unreadableRepository = join(work, 'repo');
    await mkdir(unreadableRepository, { mode: 0o700 });

    const auditDir = join(work, 'audit');
    await mkdir(auditDir, { mode: 0o1777 });
    await chmod(auditDir, 0o1777);

    config = join(work, 'config.json');
    const settings = {
      repository: { type: 'local', path: unreadableRepository },
      stagingDir: join(work, 'staging'),
      stateDir: join(work, 'state'),
      scratchDir: join(work, 'scratch'),
      recipients: [keys.adminPublic],
      trustedSigners: [keys.hostFingerprint],
      adminKey: keys.adminSecret,
      auditFile: join(auditDir, 'audit.jsonl'),
      backupUser,
      adminGroup,
    };
    await writeFile(config, JSON.stringify(settings, null, 2), { mode: 0o644 });
  });

  afterAll(async () => {
    await removeUsersAndGroup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('backup user restore rejected', async () => {
    const result = await runAs(backupUser, ['--config', config, 'restore', '--yes', 'hvb-test-sec-any', '--as', 'hvb-test-sec-clone']);

    expect(result.code, result.stderr).toBe(7);
    expect(errorCode(result.stderr)).toBe('refused');
    expect(result.stderr).toContain(`restore refused for user ${backupUser}`);
    expect(result.stderr).toContain(`root or members of group ${adminGroup}`);
    expect(result.stderr).not.toContain(unreadableRepository);
    expect(auditEvents(result.stderr)).toContainEqual(expect.objectContaining({ action: 'restore-refused', user: backupUser }));
  });

  it('other user restore rejected', async () => {
    const result = await runAs(otherUser, ['--config', config, 'restore', '--yes', 'hvb-test-sec-any', '--as', 'hvb-test-sec-clone']);

    expect(result.code, result.stderr).toBe(7);
    expect(errorCode(result.stderr)).toBe('refused');
    expect(result.stderr).toContain(`restore refused for user ${otherUser}`);
    expect(result.stderr).toContain(`usermod -aG ${adminGroup} ${otherUser}`);
  });

  it('admin group user passes role check', async () => {
    const result = await runAs(adminUser, ['--config', config, 'restore', '--yes', 'hvb-test-sec-any', '--as', 'hvb-test-sec-clone']);

    // The admin cannot read this repository, so the restore fails later; only the role check is under test.
    expect(result.code).not.toBe(0);
    expect(result.stderr).not.toContain('refused for user');
    expect(errorCode(result.stderr)).not.toBe('refused');
  });

  it('root passes role check', async () => {
    const result = await runCli(['--config', config, 'restore', '--yes', 'hvb-test-sec-any', '--as', 'hvb-test-sec-clone']);

    // The repository is empty, so the restore fails when it looks for the backup.
    expect(result.code).not.toBe(0);
    expect(result.stderr).not.toContain('refused for user');
    expect(errorCode(result.stderr)).not.toBe('refused');
  });

  it('backup user drill rejected', async () => {
    const result = await runAs(backupUser, ['--config', config, 'drill', 'hvb-test-sec-any']);

    expect(result.code, result.stderr).toBe(7);
    expect(result.stderr).toContain(`drill refused for user ${backupUser}`);
    expect(result.stderr).not.toContain(unreadableRepository);
  });
});
