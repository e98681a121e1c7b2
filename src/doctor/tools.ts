/**
 * Tools and their versions: Node.js, the libvirt client, qemu-img and
 * qemu-nbd (offline backups and bitmaps), and gpg (optional).
 */
import { fail, ok, warn, type CheckResult } from './check.js';
import { execProgram, firstLine } from './exec.js';
import { atLeast, formatVersion, parseGpgVersion, parseQemuToolVersion, parseVersion, RECOMMENDED_QEMU, type Version } from './versions.js';

/** Oldest Node.js hvbackup supports (package.json "engines"). */
export const MIN_NODE: Version = [20, 19, 0];

const QEMU_UTILS_FIX = 'install QEMU\'s tools: apt-get install qemu-utils (Debian, Ubuntu) or dnf install qemu-img (RHEL, Fedora)';

/** Checks the running Node.js against MIN_NODE. `version` is process.versions.node unless a test passes another. */
export function checkNode(version = process.versions.node): CheckResult {
  const name = 'tools.node';
  const parsed = parseVersion(version);
  if (parsed === undefined) return fail(name, `cannot parse Node.js version "${version}"`, 'install Node.js 20.19 or newer');
  if (!atLeast(parsed, MIN_NODE)) {
    return fail(name, `Node.js ${version} is older than ${formatVersion(MIN_NODE)}`, 'install Node.js 20.19 or newer (for example from the NodeSource packages)');
  }
  return ok(name, `Node.js ${version}`);
}

/** Checks that virsh runs; the libvirt and QEMU versions come from the connection check. */
export async function checkVirshClient(): Promise<CheckResult> {
  const name = 'tools.virsh';
  const result = await execProgram('virsh', ['--version']);
  if (result.missing) return fail(name, 'virsh not found in PATH', 'install the libvirt client: apt-get install libvirt-clients (Debian, Ubuntu) or dnf install libvirt-client (RHEL, Fedora)');
  if (result.code !== 0) return fail(name, `virsh --version failed: ${firstLine(result.stderr)}`, 'reinstall the libvirt client');
  return ok(name, `virsh ${result.stdout.trim()}`);
}

/** Checks qemu-img or qemu-nbd and its version. */
export async function checkQemuTool(tool: 'qemu-img' | 'qemu-nbd'): Promise<CheckResult> {
  const name = `tools.${tool}`;
  const purpose = tool === 'qemu-img' ? 'reads image formats and creates bitmaps of shut-off domains' : 'serves the disks of shut-off domains during backup';
  const result = await execProgram(tool, ['--version']);
  if (result.missing) return fail(name, `${tool} not found in PATH; it ${purpose}`, QEMU_UTILS_FIX);
  if (result.code !== 0) return fail(name, `${tool} --version failed: ${firstLine(result.stderr)}`, QEMU_UTILS_FIX);

  const version = parseQemuToolVersion(result.stdout);
  if (version === undefined) return warn(name, `cannot parse the version from "${firstLine(result.stdout)}"`, `check the output of ${tool} --version`);
  if (!atLeast(version, RECOMMENDED_QEMU)) {
    return warn(name, `${tool} ${formatVersion(version)} is older than QEMU 6.0; backups of shut-off domains may fail`, 'upgrade QEMU to 6.0 or newer');
  }
  return ok(name, `${tool} ${formatVersion(version)}`);
}

/** gpg is optional: only the break-glass restore path and `restore --decrypt-with gpg` use it. */
export async function checkGpg(): Promise<CheckResult> {
  const name = 'tools.gpg';
  const result = await execProgram('gpg', ['--version']);
  if (result.missing || result.code !== 0) {
    return warn(name, 'gpg not found; only the break-glass restore and restore --decrypt-with gpg need it', 'apt-get install gnupg (Debian, Ubuntu) or dnf install gnupg2 (RHEL, Fedora)');
  }
  const version = parseGpgVersion(result.stdout);
  return ok(name, version ? `gpg ${formatVersion(version)}` : firstLine(result.stdout));
}
