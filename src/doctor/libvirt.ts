/**
 * The libvirt connection: that the configured URI responds, which libvirt and
 * QEMU versions run behind it, and that the domain capabilities include
 * backup jobs.
 */
import { Virsh, VirshCommandError } from '../libvirt/virsh.js';
import { attributeOf, childElements, parseXml } from '../libvirt/xml.js';
import { fail, failureOf, ok, warn, type CheckResult } from './check.js';
import { atLeast, formatVersion, parseVirshVersion, RECOMMENDED_QEMU, type VirshVersions, type Version } from './versions.js';

/** libvirt 6.0 added virDomainBackupBegin (virsh backup-begin). */
export const MIN_LIBVIRT_BACKUP: Version = [6, 0, 0];
/** libvirt 7.7 added `backupmode` per disk, which hvbackup uses to read raw disks in full during incrementals. */
export const MIN_LIBVIRT_BACKUP_MODE: Version = [7, 7, 0];

export interface ConnectionProbe {
  connected: boolean;
  results: CheckResult[];
}

/**
 * Runs `virsh version --daemon` against the URI. Returns the connection
 * check and, when virsh succeeded, the libvirt and QEMU version checks.
 */
export async function probeConnection(virsh: Virsh): Promise<ConnectionProbe> {
  let output: string;
  try {
    output = await virsh.run(['version', '--daemon'], { timeoutMs: 30_000 });
  } catch (error) {
    const stderr = error instanceof VirshCommandError ? error.stderr : '';
    const fix = /Permission denied|authentication|access denied|polkit/i.test(stderr)
      ? `this user may not connect to ${virsh.uri}: run as root or as the backup user with the polkit rules installed (docs/install.md)`
      : `start libvirtd (systemctl start libvirtd) and try: virsh -c ${virsh.uri} version`;
    return { connected: false, results: [failureOf('libvirt.connection', error, fix)] };
  }

  const versions = parseVirshVersion(output);
  return {
    connected: true,
    results: [ok('libvirt.connection', `connected to ${virsh.uri}`), checkLibvirtVersion(versions), checkHypervisorVersion(versions)],
  };
}

/** Judges the daemon's libvirt version (the client library's when no daemon line was printed). */
export function checkLibvirtVersion(versions: VirshVersions): CheckResult {
  const name = 'libvirt.version';
  const version = versions.daemon ?? versions.library;
  if (version === undefined) return warn(name, 'virsh version printed no libvirt version', 'check the output of: virsh version --daemon');

  const text = `libvirt ${formatVersion(version)}${versions.daemon ? ' (daemon)' : ' (client library)'}`;
  if (!atLeast(version, MIN_LIBVIRT_BACKUP)) {
    return fail(name, `${text} has no backup jobs; they need libvirt 6.0 or newer`, 'upgrade libvirt to 7.7 or newer');
  }
  if (!atLeast(version, MIN_LIBVIRT_BACKUP_MODE)) {
    return warn(name, `${text} has backup jobs but no per-disk backup mode (libvirt 7.7), so incrementals of domains with raw disks fail`, 'upgrade libvirt to 7.7 or newer, or use qcow2 for every disk');
  }
  return ok(name, text);
}

/** Judges the QEMU version behind the connection. */
export function checkHypervisorVersion(versions: VirshVersions): CheckResult {
  const name = 'libvirt.qemu';
  if (versions.hypervisor === undefined) return warn(name, 'virsh version reported no running QEMU hypervisor', 'check that the URI points at the QEMU driver, e.g. qemu:///system');
  const text = `QEMU ${formatVersion(versions.hypervisor)}`;
  if (!atLeast(versions.hypervisor, RECOMMENDED_QEMU)) {
    return warn(name, `${text} is older than 6.0; pull backup jobs may be missing or unreliable`, 'upgrade QEMU to 6.0 or newer');
  }
  return ok(name, text);
}

/** Checks that `virsh domcapabilities` reports `<backup supported='yes'/>`. */
export async function checkBackupCapability(virsh: Virsh): Promise<CheckResult> {
  const name = 'libvirt.backup-capability';
  const xml = await virsh.run(['domcapabilities'], { timeoutMs: 30_000 });
  const supported = backupSupport(xml);
  if (supported === 'yes') return ok(name, 'domcapabilities reports backup support');
  if (supported === 'no') {
    return fail(name, 'domcapabilities reports <backup supported=\'no\'/>: this QEMU cannot run backup jobs', 'upgrade QEMU and libvirt (QEMU 6.0 and libvirt 7.7 or newer)');
  }
  // NOTE: older libvirt releases do not list <backup> in domcapabilities at all, even where backup-begin works.
  return warn(name, 'domcapabilities does not list <backup>, so backup support is unknown', 'upgrade libvirt to 7.7 or newer, or run a test backup of one domain');
}

/** Returns the `supported` attribute of the `<backup>` feature, or undefined when the element is missing. */
export function backupSupport(domcapabilitiesXml: string): string | undefined {
  const root = parseXml(domcapabilitiesXml, 'domain capabilities').documentElement!;
  for (const features of childElements(root, 'features')) {
    const backup = childElements(features, 'backup')[0];
    if (backup !== undefined) return attributeOf(backup, 'supported');
  }
  return undefined;
}
