/** Roles: what the running user may do (back up, restore), and whether the configured accounts exist. */
import { readFile } from 'node:fs/promises';

import type { Config } from '../config/load.js';
import { currentIdentity, lookupGroup, type Identity } from '../restore/authorize.js';
import { info, ok, warn, type CheckResult } from './check.js';

export async function checkRoles(config: Config, identity: Identity = currentIdentity()): Promise<CheckResult[]> {
  const group = await lookupGroup(config.adminGroup);
  const results: CheckResult[] = [describeRole(config, identity, group)];

  if (group === undefined) {
    results.push(warn('roles.admin-group', `admin group ${config.adminGroup} does not exist, so only root can restore`, `groupadd ${config.adminGroup}, or set "adminGroup" in ${config.path}`));
  } else {
    results.push(ok('roles.admin-group', `admin group ${config.adminGroup} (gid ${group.gid}) exists`));
  }

  if (!(await userExists(config.backupUser))) {
    results.push(warn('roles.backup-user', `backup user ${config.backupUser} does not exist`, `on a backup host: useradd --system --user-group --home-dir /var/lib/hvbackup --shell /usr/sbin/nologin ${config.backupUser}, or set "backupUser" in ${config.path}`));
  } else {
    results.push(ok('roles.backup-user', `backup user ${config.backupUser} exists`));
  }
  return results;
}

/** Describes what the identity may do under the role rules of restore/authorize.ts. */
export function describeRole(config: Pick<Config, 'backupUser' | 'adminGroup'>, identity: Identity, group: { gid: number; members: string[] } | undefined): CheckResult {
  const name = 'roles.user';
  const userLabel = `user ${identity.user} (uid ${identity.uid})`;
  if (identity.user === config.backupUser) return info(name, `${userLabel} is the backup user: this user can back up, and can never restore`);
  if (identity.uid === 0) return info(name, `${userLabel}: this user can back up and can restore`);

  const member = group !== undefined && (identity.groups.includes(group.gid) || group.members.includes(identity.user));
  if (member) return info(name, `${userLabel} is in group ${config.adminGroup}: this user can back up and can restore`);
  return info(name, `${userLabel} is neither root nor in group ${config.adminGroup}: this user can back up (with libvirt access) but cannot restore`);
}

async function userExists(user: string, passwdFile = '/etc/passwd'): Promise<boolean> {
  const text = await readFile(passwdFile, 'utf8').catch(() => '');
  return text.split('\n').some((line) => line.split(':')[0] === user);
}
