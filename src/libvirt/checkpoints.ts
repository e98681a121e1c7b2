/**
 * Checkpoints: libvirt's record of a point in time for incremental backups.
 * Each one is a persistent dirty bitmap in the qcow2 images plus metadata in
 * libvirt. See https://libvirt.org/formatcheckpoint.html.
 */
import { LibvirtError } from '../errors.js';
import type { Virsh } from './virsh.js';
import { firstChild, parseXml, textOf } from './xml.js';

export interface CheckpointInfo {
  name: string;
  /** Seconds since the Unix epoch, as libvirt records it. */
  creationTime: number;
  parent?: string;
}

function parseCheckpoint(xml: string, domain: string, name: string): CheckpointInfo {
  const root = parseXml(xml, `checkpoint '${name}' of domain '${domain}'`).documentElement!;
  const creationTime = Number(textOf(firstChild(root, 'creationTime')));
  if (!Number.isFinite(creationTime)) {
    throw new LibvirtError(`checkpoint '${name}' of domain '${domain}' has no valid <creationTime>`);
  }

  const parentElement = firstChild(root, 'parent');
  const parent = parentElement === undefined ? undefined : textOf(firstChild(parentElement, 'name'));
  return parent === undefined ? { name, creationTime } : { name, creationTime, parent };
}

/** Returns the names of the domain's checkpoints, without reading each one's XML. */
export async function checkpointNames(virsh: Virsh, domain: string): Promise<string[]> {
  const output = await virsh.run(['checkpoint-list', domain, '--name'], { domain });
  return output.split('\n').map((line) => line.trim()).filter((line) => line !== '');
}

/** Returns the domain's checkpoints, oldest first. */
export async function listCheckpoints(virsh: Virsh, domain: string): Promise<CheckpointInfo[]> {
  const checkpoints: CheckpointInfo[] = [];
  for (const name of await checkpointNames(virsh, domain)) {
    const xml = await virsh.run(['checkpoint-dumpxml', domain, name, '--no-domain'], { domain });
    checkpoints.push(parseCheckpoint(xml, domain, name));
  }
  return checkpoints.sort((a, b) => a.creationTime - b.creationTime);
}

/**
 * Deletes a checkpoint. By default libvirt also removes its bitmaps from the
 * disk images, which needs the images to be reachable. `metadataOnly` drops
 * only libvirt's record and leaves the bitmaps in place.
 */
export async function deleteCheckpoint(virsh: Virsh, domain: string, name: string, options: { metadataOnly?: boolean } = {}): Promise<void> {
  const args = ['checkpoint-delete', domain, name];
  if (options.metadataOnly) args.push('--metadata');
  await virsh.run(args, { domain });
}

/** Returns the checkpoint XML with the domain definition it was taken with, as needed to redefine it. */
export async function checkpointXml(virsh: Virsh, domain: string, name: string): Promise<string> {
  return virsh.run(['checkpoint-dumpxml', domain, name], { domain });
}
