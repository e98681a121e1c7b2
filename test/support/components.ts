/**
 * Test gates for real components. A test file asks for what it needs; when a
 * component is missing the file is skipped on a developer machine, but under
 * CI=true it fails, so a missing install step can never pass as green.
 */
import { execFileSync } from 'node:child_process';

export type Component = 'libvirt' | 'rgw' | 'qemu-img' | 'qemu-nbd' | 'nbdkit' | 'gpg' | 'sqop' | 'tar';

const probes: Record<Component, () => boolean> = {
  libvirt: () => process.env.HVBACKUP_TEST_LIBVIRT === '1' && hasCommand('virsh'),
  rgw: () => Boolean(process.env.HVBACKUP_TEST_S3_ENDPOINT),
  'qemu-img': () => hasCommand('qemu-img'),
  'qemu-nbd': () => hasCommand('qemu-nbd'),
  nbdkit: () => hasCommand('nbdkit'),
  gpg: () => hasCommand('gpg'),
  sqop: () => hasCommand('sqop'),
  tar: () => hasCommand('tar'),
};

function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns true when every component is available. Under CI=true a missing
 * component throws, which fails the test file instead of skipping it.
 */
export function available(...components: Component[]): boolean {
  const missing = components.filter((component) => !probes[component]());
  if (missing.length === 0) return true;

  if (process.env.CI === 'true') {
    throw new Error(`required test component missing under CI: ${missing.join(', ')}; .ci/run must install and start it`);
  }
  return false;
}
