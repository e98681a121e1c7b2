/**
 * The user and group QEMU runs as under qemu:///system: `user` and `group`
 * in /etc/libvirt/qemu.conf, else the distribution's build default.
 */
import { readFile } from 'node:fs/promises';

export const QEMU_CONF = '/etc/libvirt/qemu.conf';

/** Debian and Ubuntu build libvirt with user and group libvirt-qemu. RHEL and Fedora use qemu, and set it in qemu.conf too. */
export const DEFAULT_QEMU_USER = 'libvirt-qemu';
export const DEFAULT_QEMU_GROUP = 'libvirt-qemu';

export interface QemuAccount {
  user: string;
  group: string;
  /** Where the names came from, for the check's detail. */
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

/** Reads qemu.conf (when readable) and fills in the defaults. */
export async function qemuAccount(path = QEMU_CONF): Promise<QemuAccount> {
  let settings: { user?: string; group?: string } = {};
  let source = `defaults (${path} sets no user or group)`;
  try {
    settings = parseQemuConf(await readFile(path, 'utf8'));
    if (settings.user !== undefined || settings.group !== undefined) source = path;
  } catch {
    source = `defaults (${path} not readable)`;
  }
  return { user: settings.user ?? DEFAULT_QEMU_USER, group: settings.group ?? DEFAULT_QEMU_GROUP, source };
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
