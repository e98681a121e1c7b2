/** Shared steps of the end-to-end tests: reference copies, disk comparison, XML equivalence. */
import { execFile } from 'node:child_process';
import { copyFile, rm } from 'node:fs/promises';
import { promisify } from 'node:util';

import { parseDomainXml, type DomainInfo } from '../../src/libvirt/domain.js';

const execFileAsync = promisify(execFile);

export async function virsh(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('virsh', ['-c', 'qemu:///system', ...args]);
  return stdout;
}

/** Returns null when both images have the same guest-visible content, else qemu-img's explanation. */
export async function compareImages(reference: string, candidate: string, formats?: { reference: string; candidate: string }): Promise<string | null> {
  const args = ['compare'];
  if (formats) args.push('-f', formats.reference, '-F', formats.candidate);
  args.push(reference, candidate);
  try {
    await execFileAsync('qemu-img', args);
    return null;
  } catch (error) {
    const failure = error as { stdout?: string; stderr?: string; message: string };
    return `${failure.stdout ?? ''}${failure.stderr ?? ''}`.trim() || failure.message;
  }
}

/** Copies every disk of a shut-off domain next to itself with a .reference suffix. */
export async function referenceCopies(disks: { path: string }[]): Promise<string[]> {
  const copies: string[] = [];
  for (const disk of disks) {
    const copy = `${disk.path}.reference`;
    await copyFile(disk.path, copy);
    copies.push(copy);
  }
  return copies;
}

export async function removeFiles(paths: string[]): Promise<void> {
  for (const path of paths) await rm(path, { force: true });
}

/** The parts of a domain definition a restore must reproduce. */
export function essentialXml(info: DomainInfo): unknown {
  return {
    name: info.name,
    uuid: info.uuid,
    type: info.type,
    disks: info.disks.map((disk) => ({ target: disk.target, path: disk.sourcePath, format: disk.format, device: disk.device })),
    nvram: info.nvramPath,
    interfaces: info.interfaces,
  };
}

export async function domainInfo(name: string): Promise<DomainInfo> {
  return parseDomainXml(await virsh('dumpxml', '--inactive', name));
}
