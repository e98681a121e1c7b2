/**
 * Rewrites domain XML for a clone or a restore under another name: new name,
 * UUID, MAC addresses, disk and NVRAM paths. Pass inactive XML
 * (virsh dumpxml --inactive): live XML carries runtime details such as
 * aliases and security labels that belong to the running original.
 */
import { randomBytes, randomUUID } from 'node:crypto';

import type { Document, Element } from '@xmldom/xmldom';

import { LibvirtError } from '../errors.js';
import { attributeOf, childElements, firstChild, parseXml, serializeXml, textOf } from './xml.js';

export interface RewriteOptions {
  name?: string;
  /** New UUID. When absent and `name` is given, a random one is set, because libvirt rejects a second domain with the same UUID. */
  uuid?: string;
  /** Give each interface a new random MAC address with QEMU's 52:54:00 prefix. */
  regenerateMacs?: boolean;
  /** New source path per disk target. Every target must exist in the XML. */
  diskPaths?: Map<string, string>;
  /** Disk targets whose `<disk>` elements are removed. Every target must exist in the XML. */
  removeDisks?: string[];
  nvramPath?: string;
  removeInterfaces?: boolean;
  /**
   * Directory for the files of file-backed serial, console and parallel
   * devices. A clone that kept the original's paths would write into the
   * original domain's log files.
   */
  characterDeviceDir?: string;
}

/** Returns a random MAC address in 52:54:00:xx:xx:xx, the range QEMU and libvirt use for guests. */
export function randomMac(): string {
  const bytes = [...randomBytes(3)].map((byte) => byte.toString(16).padStart(2, '0'));
  return `52:54:00:${bytes.join(':')}`;
}

/** Replaces the text of a child element, creating the element when missing. */
function setChildText(document: Document, parent: Element, tagName: string, text: string): void {
  let element = firstChild(parent, tagName);
  if (element === undefined) {
    element = document.createElement(tagName);
    parent.insertBefore(element, parent.firstChild);
  }
  while (element.firstChild) element.removeChild(element.firstChild);
  element.appendChild(document.createTextNode(text));
}

function rewriteMacs(devices: Element): void {
  const used = new Set<string>();
  for (const element of childElements(devices, 'interface')) {
    const mac = firstChild(element, 'mac');
    if (mac === undefined) continue;

    const old = attributeOf(mac, 'address')?.toLowerCase();
    let next = randomMac();
    while (next === old || used.has(next)) next = randomMac();
    used.add(next);
    mac.setAttribute('address', next);
  }
}

function rewriteDiskPaths(devices: Element, diskPaths: Map<string, string>): void {
  const remaining = new Set(diskPaths.keys());

  for (const disk of childElements(devices, 'disk')) {
    const target = attributeOf(firstChild(disk, 'target'), 'dev');
    if (target === undefined || !diskPaths.has(target)) continue;

    const type = attributeOf(disk, 'type') ?? 'file';
    let attribute: string;
    if (type === 'file') attribute = 'file';
    else if (type === 'block') attribute = 'dev';
    else {
      throw new LibvirtError(`disk '${target}' has source type '${type}', and only file and block sources can get a new path`);
    }

    const source = firstChild(disk, 'source');
    if (source === undefined) throw new LibvirtError(`disk '${target}' has no <source> to rewrite`, { hint: 'remove it from the path map or insert media first' });
    source.setAttribute(attribute, diskPaths.get(target)!);
    remaining.delete(target);
  }

  if (remaining.size > 0) {
    throw new LibvirtError(`disk target(s) ${[...remaining].join(', ')} not found in domain XML`, { hint: 'use the targets shown by virsh domblklist' });
  }
}

function removeDisks(devices: Element, targets: string[]): void {
  const remaining = new Set(targets);
  for (const disk of childElements(devices, 'disk')) {
    const target = attributeOf(firstChild(disk, 'target'), 'dev');
    if (target === undefined || !remaining.has(target)) continue;
    devices.removeChild(disk);
    remaining.delete(target);
  }

  if (remaining.size > 0) {
    throw new LibvirtError(`disk target(s) ${[...remaining].join(', ')} to remove not found in domain XML`, { hint: 'use the targets shown by virsh domblklist' });
  }
}

function rewriteCharacterDevices(devices: Element, directory: string, domainName: string): void {
  let index = 0;
  for (const kind of ['serial', 'console', 'parallel']) {
    for (const device of childElements(devices, kind)) {
      if (attributeOf(device, 'type') !== 'file') continue;
      const source = firstChild(device, 'source');
      if (source === undefined) continue;
      source.setAttribute('path', `${directory}/${domainName}-${kind}-${index}.log`);
      index += 1;
    }
  }
}

function rewriteNvram(document: Document, root: Element, nvramPath: string): void {
  const os = firstChild(root, 'os');
  const nvram = os === undefined ? undefined : firstChild(os, 'nvram');
  if (nvram === undefined) throw new LibvirtError('domain XML has no <os><nvram> element, so there is no NVRAM path to replace', { hint: 'pass nvramPath only for UEFI domains' });

  // Newer libvirt writes the path as <source file=...> instead of text content.
  const source = firstChild(nvram, 'source');
  if (source !== undefined && textOf(nvram) === undefined) {
    source.setAttribute('file', nvramPath);
    return;
  }
  while (nvram.firstChild) nvram.removeChild(nvram.firstChild);
  nvram.appendChild(document.createTextNode(nvramPath));
}

/** Returns the XML with the requested changes. Throws LibvirtError when a requested change has nothing to apply to. */
export function rewriteDomainXml(xml: string, options: RewriteOptions): string {
  const document = parseXml(xml, 'domain XML');
  const root = document.documentElement!;
  if (root.tagName !== 'domain') throw new LibvirtError(`domain XML has root element <${root.tagName}>, expected <domain>`);

  // A running domain's XML carries its runtime id, which a new definition must not have.
  root.removeAttribute('id');

  if (options.name !== undefined) setChildText(document, root, 'name', options.name);

  const uuid = options.uuid ?? (options.name !== undefined ? randomUUID() : undefined);
  if (uuid !== undefined) setChildText(document, root, 'uuid', uuid);

  const devices = firstChild(root, 'devices');
  if (devices !== undefined) {
    if (options.removeInterfaces) {
      for (const element of childElements(devices, 'interface')) devices.removeChild(element);
    } else if (options.regenerateMacs) {
      rewriteMacs(devices);
    }
  }

  if (options.removeDisks !== undefined && options.removeDisks.length > 0) {
    if (devices === undefined) throw new LibvirtError('domain XML has no <devices>, so there are no disks to remove');
    removeDisks(devices, options.removeDisks);
  }

  if (options.diskPaths !== undefined && options.diskPaths.size > 0) {
    if (devices === undefined) throw new LibvirtError('domain XML has no <devices>, so there are no disk paths to replace');
    rewriteDiskPaths(devices, options.diskPaths);
  }

  if (options.nvramPath !== undefined) rewriteNvram(document, root, options.nvramPath);

  if (options.characterDeviceDir !== undefined && devices !== undefined) {
    const name = textOf(firstChild(root, 'name')) ?? 'domain';
    rewriteCharacterDevices(devices, options.characterDeviceDir, name);
  }

  return serializeXml(document);
}
