/**
 * The benchmark's test domain: one qcow2 disk filled by nbdkit's
 * sparse-random plugin with fully random (incompressible) runs of about
 * 1 MiB, defined in qemu:///system as a 64 MiB guest without an OS.
 * Every domain this module touches is named hvb-bench-*.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { bash, quote, run } from './shell.mjs';

export const DOMAIN = 'hvb-bench-src';
const PREFIX = 'hvb-bench-';

export function virsh(...args) {
  return run('virsh', ['-c', 'qemu:///system', ...args]);
}

function assertBenchName(name) {
  if (!name.startsWith(PREFIX)) throw new Error(`domain name '${name}' lacks the '${PREFIX}' prefix; the benchmark touches no other domains`);
}

/** Stops and undefines a benchmark domain; a domain that is not running or not defined is fine. */
export async function removeDomain(name) {
  assertBenchName(name);
  await virsh('destroy', name).catch(() => undefined);
  await virsh('undefine', name, '--nvram', '--checkpoints-metadata').catch((error) => {
    if (!/failed to get domain|not found/.test(error.message)) throw error;
  });
}

/**
 * Copies the allocated runs of an nbdkit sparse-random disk into the qcow2
 * image. With `overwrite`, the image exists and keeps its other data:
 * `--target-is-zero` makes qemu-img skip the source's holes instead of
 * writing zeros over the old content.
 */
async function copyRandomRuns(image, { virtualBytes, percent, seed, overwrite }) {
  const target = overwrite ? `-n --target-is-zero ${quote(image)}` : `-O qcow2 ${quote(image)}`;
  await bash(
    `nbdkit -U - sparse-random size=${virtualBytes} percent=${percent} runlength=1048576 random-content=true seed=${seed} ` +
      `--run ${quote(`qemu-img convert -f raw "$uri" ${overwrite ? '-O qcow2 ' : ''}${target}`)}`,
  );
}

function domainXml(name, image) {
  return `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${image}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** Creates the disk in dir, defines and starts the domain. Returns { image, allocatedBytes }. */
export async function prepareDomain(dir, { virtualBytes, allocatedBytes }) {
  await mkdir(dir, { recursive: true });
  // QEMU runs as libvirt-qemu and needs search permission on the image's directory.
  await chmod(dir, 0o711);
  const image = join(dir, 'vda.qcow2');

  const percent = (100 * allocatedBytes) / virtualBytes;
  await copyRandomRuns(image, { virtualBytes, percent, seed: 1, overwrite: false });

  const xmlPath = join(dir, 'domain.xml');
  await writeFile(xmlPath, domainXml(DOMAIN, image));
  await removeDomain(DOMAIN);
  await virsh('define', xmlPath);
  await virsh('start', DOMAIN);
  return { image, allocatedBytes: await imageAllocatedBytes(image) };
}

/** Returns the bytes of guest data in the image (qemu-img map, data extents only). */
export async function imageAllocatedBytes(image) {
  const extents = JSON.parse(await run('qemu-img', ['map', '--force-share', '--output=json', image]));
  return extents.filter((extent) => extent.data && !extent.zero).reduce((sum, extent) => sum + extent.length, 0);
}

/**
 * Writes new random data over `percent` of the virtual size at scattered
 * offsets while the domain is shut off, then starts it again. virsh destroy
 * sends SIGTERM first, so QEMU closes the image and stores its dirty bitmaps.
 */
export async function dirtyDisk(image, { virtualBytes, percent, seed }) {
  await virsh('destroy', DOMAIN);
  await copyRandomRuns(image, { virtualBytes, percent, seed, overwrite: true });
  await virsh('start', DOMAIN);
}

/** Returns QEMU's group id from the running domain's DAC label, for the socket directory of a pull export. */
export async function qemuGroupId() {
  const xml = await virsh('dumpxml', DOMAIN);
  const match = /<seclabel[^>]*model='dac'[^>]*>\s*<label>\+?\d+:\+?(\d+)<\/label>/.exec(xml);
  return match ? Number(match[1]) : undefined;
}

/** Returns the <domainbackup> XML of a full pull-mode export of vda on a unix socket. */
export function pullExportXml(socketPath, scratchPath) {
  return `<domainbackup mode='pull'>
  <server transport='unix' socket='${socketPath}'/>
  <disks>
    <disk name='vda' backup='yes' type='file'>
      <scratch file='${scratchPath}'/>
    </disk>
  </disks>
</domainbackup>
`;
}
