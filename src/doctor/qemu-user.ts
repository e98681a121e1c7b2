/**
 * The user and group QEMU runs as under qemu:///system: `user` and `group`
 * in /etc/libvirt/qemu.conf, else the distribution's build default.
 */
import { readFile } from 'node:fs/promises';

export const QEMU_CONF = '/etc/libvirt/qemu.conf';

/**
 * Build defaults of the QEMU account, tried in this order when qemu.conf sets
 * no user: libvirt-qemu on Debian and Ubuntu, qemu on RHEL and Fedora. The
 * group has the same name as the user in both.
 */
export const DEFAULT_QEMU_USERS = ['libvirt-qemu', 'qemu'];

export interface QemuAccount {
  user: string;
  group: string;
  /** Source of the names (qemu.conf or defaults), for the check's detail. */
  source: string;
}

/** Returns the uncommented `user = "..."` and `group = "..."` settings of a qemu.conf text. */
export function parseQemuConf(text: string): { user?: string; group?: string } {
  const settings: { user?: string; group?: string } = {};
  for (const line of text.split('\n')) {
    const match = /^\s*(user|group)\s*=\s*"([^"]*)"/.exec(line);
    if (match) settings[match[1] as 'user' | 'group'] = match[2];
  }
  return settings;
}

/** Reads qemu.conf (when readable) and fills in the first default user that exists in `passwdFile`. */
export async function qemuAccount(path = QEMU_CONF, passwdFile = '/etc/passwd'): Promise<QemuAccount> {
  let settings: { user?: string; group?: string } = {};
  let source = `defaults (${path} sets no user or group)`;
  try {
    settings = parseQemuConf(await readFile(path, 'utf8'));
    if (settings.user !== undefined || settings.group !== undefined) source = path;
  } catch {
    source = `defaults (${path} not readable)`;
  }
  const passwd = await readFile(passwdFile, 'utf8').catch(() => '');
  const existing = DEFAULT_QEMU_USERS.find((name) => passwd.split('\n').some((line) => line.split(':')[0] === name));
  const user = settings.user ?? existing ?? DEFAULT_QEMU_USERS[0];
  return { user, group: settings.group ?? user, source };
}

/** An account from /etc/passwd and /etc/group: uid and every group id the kernel would check. */
export interface ResolvedAccount {
  uid: number;
  groups: number[];
}

/**
 * Resolves user and group names ("+N" means the numeric id, as in qemu.conf)
 * to ids. The groups are the configured group, the user's primary group and
 * every group that lists the user. Undefined when the user does not exist.
 */
export async function resolveAccount(account: { user: string; group: string }, passwdFile = '/etc/passwd', groupFile = '/etc/group'): Promise<ResolvedAccount | undefined> {
  const passwd = await readFile(passwdFile, 'utf8').catch(() => '');
  const groupText = await readFile(groupFile, 'utf8').catch(() => '');

  let uid: number | undefined;
  let primary: number | undefined;
  if (account.user.startsWith('+')) {
    uid = Number(account.user.slice(1));
  } else {
    for (const line of passwd.split('\n')) {
      const fields = line.split(':');
      if (fields[0] === account.user && fields.length >= 4) {
        uid = Number(fields[2]);
        primary = Number(fields[3]);
      }
    }
  }
  if (uid === undefined || Number.isNaN(uid)) return undefined;

  const groups = new Set<number>();
  if (primary !== undefined) groups.add(primary);
  for (const line of groupText.split('\n')) {
    const [name, , gid, members] = line.split(':');
    if (gid === undefined) continue;
    const listed = (members ?? '').split(',').includes(account.user);
    if (name === account.group || listed) groups.add(Number(gid));
  }
  if (account.group.startsWith('+')) groups.add(Number(account.group.slice(1)));
  return { uid, groups: [...groups] };
}
