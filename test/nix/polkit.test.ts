/**
 * Runs nix/dist/50-hvbackup.rules in a node:vm context with a fake `polkit`
 * object, the way polkitd loads a rules file, and asks the registered rule
 * about each action. The rule returns undefined where polkit would go on to
 * the next rule and finally to the action's default.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInNewContext } from 'node:vm';
import { describe, expect, test } from 'vitest';

const rulesPath = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'nix', 'dist', '50-hvbackup.rules');

type Rule = (action: FakeAction, subject: FakeSubject) => string | undefined;

interface FakeAction {
  id: string;
  lookup(key: string): string | undefined;
}

interface FakeSubject {
  user: string;
  isInGroup(group: string): boolean;
}

const Result = { YES: 'yes', NO: 'no', AUTH_ADMIN: 'auth_admin' };

function loadRules(): Rule[] {
  const rules: Rule[] = [];
  const polkit = {
    Result,
    addRule: (rule: Rule) => rules.push(rule),
    addAdminRule: () => undefined,
    log: () => undefined,
  };
  runInNewContext(readFileSync(rulesPath, 'utf8'), { polkit });
  return rules;
}

const rules = loadRules();

/** Returns the first answer of the loaded rules, as polkitd does. */
function decide(user: string, actionId: string, domainName?: string, groups: string[] = []): string | undefined {
  const action: FakeAction = {
    id: actionId,
    lookup: (key) => (key === 'domain_name' ? domainName : undefined),
  };
  const subject: FakeSubject = { user, isInGroup: (group) => groups.includes(group) };
  for (const rule of rules) {
    const answer = rule(action, subject);
    if (answer !== undefined) return answer;
  }
  return undefined;
}

const api = (name: string) => `org.libvirt.api.${name}`;

const backupGranted = [
  'org.libvirt.unix.manage',
  api('connect.getattr'),
  api('connect.read'),
  api('connect.search-domains'),
  api('domain.getattr'),
  api('domain.read'),
  api('domain.read-secure'),
  api('domain.checkpoint'),
  api('domain.block-write'),
  // virDomainAbortJob (virsh domjobabort) checks domain.write in libvirt 9.0.
  api('domain.write'),
];

const backupDenied = [
  api('domain.delete'),
  api('domain.save'),
  api('domain.start'),
  api('domain.stop'),
  api('domain.reset'),
  api('domain.init-control'),
  api('domain.snapshot'),
  api('domain.migrate'),
  api('domain.block-read'),
  api('domain.mem-read'),
  api('domain.core-dump'),
  api('domain.open-device'),
  api('domain.open-graphics'),
  api('domain.send-input'),
  api('domain.set-password'),
  api('domain.fs-freeze'),
  api('connect.write'),
  api('storage-vol.data-read'),
  api('secret.read-secure'),
];

const drillDomainGranted = [
  api('domain.getattr'),
  api('domain.read'),
  api('domain.write'),
  api('domain.save'),
  api('domain.start'),
  api('domain.stop'),
  api('domain.init-control'),
  api('domain.delete'),
];

describe('polkit rules', () => {
  test('rules file registers one rule', () => {
    expect(rules).toHaveLength(1);
  });

  test.each(backupGranted)('backup user granted %s', (actionId) => {
    expect(decide('hvbackup', actionId, 'web')).toBe(Result.YES);
  });

  test.each(backupDenied)('backup user denied %s', (actionId) => {
    expect(decide('hvbackup', actionId, 'web')).toBe(Result.NO);
  });

  test('backup user denied on drill domains', () => {
    expect(decide('hvbackup', api('domain.delete'), 'drill-web')).toBe(Result.NO);
  });

  test.each(drillDomainGranted)('drill user granted %s on drill-web', (actionId) => {
    expect(decide('hvbackup-drill', actionId, 'drill-web')).toBe(Result.YES);
  });

  test.each(drillDomainGranted)('drill user denied %s on web', (actionId) => {
    expect(decide('hvbackup-drill', actionId, 'web')).toBe(Result.NO);
  });

  test.each(['web-drill-1', 'Drill-web', 'drill'])('drill user denied prefix lookalike %s', (name) => {
    expect(decide('hvbackup-drill', api('domain.start'), name)).toBe(Result.NO);
  });

  test('drill user denied without domain name', () => {
    expect(decide('hvbackup-drill', api('domain.start'))).toBe(Result.NO);
  });

  test('drill user connects to libvirt', () => {
    expect(decide('hvbackup-drill', 'org.libvirt.unix.manage')).toBe(Result.YES);
  });

  test('drill user denied checkpoints', () => {
    expect(decide('hvbackup-drill', api('domain.checkpoint'), 'drill-web')).toBe(Result.NO);
  });

  test('root granted domain delete', () => {
    expect(decide('root', api('domain.delete'), 'web')).toBe(Result.YES);
  });

  test('admin group granted domain delete', () => {
    expect(decide('alice', api('domain.delete'), 'web', ['libvirt'])).toBe(Result.YES);
  });

  test('admin group granted socket access', () => {
    expect(decide('alice', 'org.libvirt.unix.manage', undefined, ['libvirt'])).toBe(Result.YES);
  });

  test.each([api('domain.delete'), api('domain.checkpoint'), 'org.libvirt.unix.manage'])(
    'other user left to defaults for %s',
    (actionId) => {
      expect(decide('mallory', actionId, 'web', ['users'])).toBeUndefined();
    },
  );

  test('non-libvirt actions left to other rules', () => {
    expect(decide('hvbackup', 'org.freedesktop.login1.reboot')).toBeUndefined();
  });
});
