/** Pure permission checks on file modes, used where doctor cannot simply try the access. */

/** Returns the group and other permission bits of a mode (0 when only the owner has access). */
export function groupOtherBits(mode: number): number {
  return mode & 0o077;
}

/** Formats the permission bits of a mode as four octal digits, e.g. "0644". */
export function formatMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** Owner, group and mode of a file, as from stat(). */
export interface FileOwnership {
  mode: number;
  uid: number;
  gid: number;
}

/** A user as the kernel checks it: uid plus every group id. */
export interface AccessIdentity {
  uid: number;
  groups: number[];
}

/**
 * Returns true when the identity may search (enter) the directory, by the
 * classic owner/group/other rule: the owner class applies when the uid
 * matches, else the group class when any group matches, else other. Root
 * may search any directory that has at least one x bit.
 * NOTE: POSIX ACLs are not read. Doctor uses this only when it cannot run a
 * test as the QEMU user, and the check's detail states that.
 */
export function searchableBy(file: FileOwnership, identity: AccessIdentity): boolean {
  if (identity.uid === 0) return (file.mode & 0o111) !== 0;
  if (file.uid === identity.uid) return (file.mode & 0o100) !== 0;
  if (identity.groups.includes(file.gid)) return (file.mode & 0o010) !== 0;
  return (file.mode & 0o001) !== 0;
}

/**
 * Returns true when the owner, group or other class that applies to the
 * identity grants both read and write, as opening a device needs. Root
 * may open any file. NOTE: POSIX ACLs are not read.
 */
export function readWritableBy(file: FileOwnership, identity: AccessIdentity): boolean {
  if (identity.uid === 0) return true;
  if (file.uid === identity.uid) return (file.mode & 0o600) === 0o600;
  if (identity.groups.includes(file.gid)) return (file.mode & 0o060) === 0o060;
  return (file.mode & 0o006) === 0o006;
}

/** Returns every directory from the root down to `path`, e.g. /, /var, /var/lib for /var/lib. */
export function pathAncestors(path: string): string[] {
  const parts = path.split('/').filter((part) => part !== '');
  const result = ['/'];
  for (let index = 1; index <= parts.length; index += 1) result.push(`/${parts.slice(0, index).join('/')}`);
  return result;
}
