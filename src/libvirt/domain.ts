/**
 * Reads libvirt domain XML: the disks, firmware files and network interfaces
 * a backup or a clone has to deal with. See https://libvirt.org/formatdomain.html.
 */
import type { Element } from '@xmldom/xmldom';

import { LibvirtError } from '../errors.js';
import { attributeOf, childElements, firstChild, parseXml, textOf } from './xml.js';

export { Domains } from './domains.js';

export interface DiskInfo {
  /** Guest device name from `<target dev=...>`, for example `vda`. Backup jobs and NBD exports use it. */
  target: string;
  /** `disk`, `cdrom`, `floppy` or `lun`. */
  device: string;
  /** Source type: `file`, `block`, `network`, `volume`, `dir` or `nvme`. */
  type: string;
  /** Host path of a file or block source; undefined for other types and for empty drives. */
  sourcePath: string | undefined;
  /** Image format from `<driver type=...>`, for example `qcow2` or `raw`. */
  format: string | undefined;
  readOnly: boolean;
  shareable: boolean;
}

export interface DomainInfo {
  name: string;
  uuid: string;
  /** Hypervisor type from `<domain type=...>`, for example `kvm` or `qemu`. */
  type: string;
  disks: DiskInfo[];
  nvramPath?: string;
  nvramTemplate?: string;
  loaderPath?: string;
  interfaces: { type: string; mac?: string }[];
}

function parseDisk(disk: Element): DiskInfo {
  const type = attributeOf(disk, 'type') ?? 'file';
  const source = firstChild(disk, 'source');
  const target = attributeOf(firstChild(disk, 'target'), 'dev');

  if (target === undefined) {
    throw new LibvirtError(`domain XML has a <disk> without <target dev=...>`, { hint: 'pass the output of virsh dumpxml unchanged' });
  }

  let sourcePath: string | undefined;
  if (type === 'file') sourcePath = attributeOf(source, 'file');
  else if (type === 'block') sourcePath = attributeOf(source, 'dev');

  return {
    target,
    device: attributeOf(disk, 'device') ?? 'disk',
    type,
    sourcePath,
    format: attributeOf(firstChild(disk, 'driver'), 'type'),
    readOnly: firstChild(disk, 'readonly') !== undefined,
    shareable: firstChild(disk, 'shareable') !== undefined,
  };
}

/** Returns the NVRAM path in either form libvirt writes: text content, or `<source file=...>` (the newer form). */
function nvramPathOf(nvram: Element | undefined): string | undefined {
  if (nvram === undefined) return undefined;
  return textOf(nvram) ?? attributeOf(firstChild(nvram, 'source'), 'file');
}

/** Parses domain XML. Throws LibvirtError when the XML is malformed or has no name. */
export function parseDomainXml(xml: string): DomainInfo {
  const root = parseXml(xml, 'domain XML').documentElement!;
  if (root.tagName !== 'domain') {
    throw new LibvirtError(`domain XML has root element <${root.tagName}>, expected <domain>`, { hint: 'pass the output of virsh dumpxml' });
  }

  const name = textOf(firstChild(root, 'name'));
  if (name === undefined) throw new LibvirtError('domain XML has no <name>', { hint: 'pass the output of virsh dumpxml' });

  const os = firstChild(root, 'os');
  const nvram = os === undefined ? undefined : firstChild(os, 'nvram');
  const devices = firstChild(root, 'devices');

  const info: DomainInfo = {
    name,
    uuid: textOf(firstChild(root, 'uuid')) ?? '',
    type: attributeOf(root, 'type') ?? '',
    disks: devices === undefined ? [] : childElements(devices, 'disk').map(parseDisk),
    interfaces:
      devices === undefined
        ? []
        : childElements(devices, 'interface').map((element) => {
            const mac = attributeOf(firstChild(element, 'mac'), 'address');
            return mac === undefined ? { type: attributeOf(element, 'type') ?? '' } : { type: attributeOf(element, 'type') ?? '', mac };
          }),
  };

  const nvramPath = nvramPathOf(nvram);
  if (nvramPath !== undefined) info.nvramPath = nvramPath;
  const nvramTemplate = attributeOf(nvram, 'template');
  if (nvramTemplate !== undefined) info.nvramTemplate = nvramTemplate;
  const loaderPath = os === undefined ? undefined : textOf(firstChild(os, 'loader'));
  if (loaderPath !== undefined) info.loaderPath = loaderPath;

  return info;
}

/**
 * Returns the disks a backup includes. Skipped, because they are not guest
 * state that a backup can capture and restore:
 * - `cdrom`, `floppy` and `lun` devices: removable media or SCSI passthrough;
 * - sources other than `file` and `block` (network, volume, dir, nvme): a
 *   restore writes local files and cannot recreate them;
 * - read-only disks: the guest cannot change them, so their source image is
 *   already the copy to keep;
 * - shareable disks: other guests write them too, so there is no consistent
 *   point in time for one domain.
 */
export function backupDisks(info: DomainInfo): DiskInfo[] {
  return info.disks.filter(
    (disk) => disk.device === 'disk' && (disk.type === 'file' || disk.type === 'block') && !disk.readOnly && !disk.shareable,
  );
}
