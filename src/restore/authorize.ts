/**
 * The rule for who may restore: root, or a member of the configured admin
 * group, and never the configured backup user. That user has the repository
 * credentials and the host key, so it must not also be able to read backups
 * back. The check runs before the repository is touched.
 */
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';

import { RefusedError } from '../errors.js';

export interface RoleSettings {
  backupUser: string;
  adminGroup: string;
  /** A dedicated user that may run drills (and only drills) with its own drill key. */
  drillUser?: string;
}

export interface Identity {
  uid: number;
  user: string;
  /** Every group id of the process (primary and supplementary). */
  groups: number[];
}

export function currentIdentity(): Identity {
  const info = userInfo();
  const groups = new Set<number>(process.getgroups?.() ?? []);
  groups.add(process.getgid?.() ?? info.gid);
  return { uid: info.uid, user: info.username, groups: [...groups] };
}

/** Looks a group up in /etc/group; returns its gid and members, or undefined. */
export async function lookupGroup(name: string, groupFile = '/etc/group'): Promise<{ gid: number; members: string[] } | undefined> {
  let text: string;
  try {
    text = await readFile(groupFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [groupName, , gid, members] = line.split(':');
    if (groupName === name && gid !== undefined) {
      return { gid: Number(gid), members: members ? members.split(',').filter(Boolean) : [] };
    }
  }
  return undefined;
}

/** Throws RefusedError unless `identity` may run `command` (restore or drill). */
export async function authorizeAdmin(command: string, roles: RoleSettings, identity: Identity = currentIdentity()): Promise<void> {
  const who = `root or members of group ${roles.adminGroup}`;

  if (identity.user === roles.backupUser) {
    throw new RefusedError(`${command} refused for user ${identity.user}: it is the backup user, which may write backups but never read them back`, {
      hint: `run ${command} as ${who}`,
    });
  }
  if (identity.uid === 0) return;
  if (command === 'drill' && roles.drillUser !== undefined && identity.user === roles.drillUser) return;

  const group = await lookupGroup(roles.adminGroup);
  const member = group !== undefined && (identity.groups.includes(group.gid) || group.members.includes(identity.user));
  if (!member) {
    throw new RefusedError(`${command} refused for user ${identity.user} (uid ${identity.uid}): only ${who} may ${command}`, {
      hint: group
        ? `ask an administrator to add you: usermod -aG ${roles.adminGroup} ${identity.user}`
        : `group ${roles.adminGroup} does not exist; create it (groupadd ${roles.adminGroup}) or set "adminGroup" in the configuration`,
    });
  }
}
