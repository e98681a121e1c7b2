/** Parsing and comparing the version strings that node, virsh, qemu-img, qemu-nbd and gpg print. */

/** A version as numeric parts, e.g. [9, 0, 0]. */
export type Version = number[];

/** QEMU 6.0 is the oldest release whose NBD exports and bitmaps hvbackup was written against. */
export const RECOMMENDED_QEMU: Version = [6, 0, 0];

/** Parses "9.0.0" or "7.2.22" into numbers; undefined when the text does not start with a digit. */
export function parseVersion(text: string): Version | undefined {
  const match = /^(\d+(?:\.\d+)*)/.exec(text.trim());
  if (!match) return undefined;
  return match[1].split('.').map(Number);
}

/** Compares two versions part by part, missing parts counting as 0. Returns -1, 0 or 1. */
export function compareVersions(left: Version, right: Version): number {
  const length = Math.max(left.length, right.length);
  for (let index = 0; index < length; index += 1) {
    const a = left[index] ?? 0;
    const b = right[index] ?? 0;
    if (a !== b) return a < b ? -1 : 1;
  }
  return 0;
}

export function atLeast(version: Version, minimum: Version): boolean {
  return compareVersions(version, minimum) >= 0;
}

export function formatVersion(version: Version): string {
  return version.join('.');
}

/** Versions that `virsh version --daemon` prints. Each is undefined when its line is missing. */
export interface VirshVersions {
  /** "Using library: libvirt X", the client library. */
  library?: Version;
  /** "Running against daemon: X", the libvirtd that runs the backup jobs. */
  daemon?: Version;
  /** "Running hypervisor: QEMU X". */
  hypervisor?: Version;
}

/** Parses the output of `virsh version --daemon` (LC_ALL=C). */
export function parseVirshVersion(output: string): VirshVersions {
  const find = (pattern: RegExp): Version | undefined => {
    const match = pattern.exec(output);
    return match ? parseVersion(match[1]) : undefined;
  };
  return {
    library: find(/^Using library: libvirt (\S+)/m),
    daemon: find(/^Running against daemon: (\S+)/m),
    hypervisor: find(/^Running hypervisor: QEMU (\S+)/m),
  };
}

/**
 * Parses the first line of `qemu-img --version` ("qemu-img version 7.2.22 (Debian ...)")
 * or `qemu-nbd --version` ("qemu-nbd 7.2.22 (Debian ...)").
 */
export function parseQemuToolVersion(output: string): Version | undefined {
  const match = /^qemu-(?:img|nbd)(?: version)? (\d+(?:\.\d+)*)/m.exec(output);
  return match ? parseVersion(match[1]) : undefined;
}

/** Parses the first line of `gpg --version` ("gpg (GnuPG) 2.2.40"). */
export function parseGpgVersion(output: string): Version | undefined {
  const match = /^gpg \(GnuPG\) (\d+(?:\.\d+)*)/m.exec(output);
  return match ? parseVersion(match[1]) : undefined;
}
