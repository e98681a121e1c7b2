/** selectDisks: the configuration's excludeDisks on top of the disk kinds that are never backed up. */
import { Writable } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { excludedDiskRecord, selectDisks } from '../../src/backup/disk-selection.js';
import { ConfigError, LibvirtError } from '../../src/errors.js';
import { parseDomainXml, type DomainInfo } from '../../src/libvirt/domain.js';
import { createLogger } from '../../src/log/logger.js';
import { renderDomainTemplate } from '../support/domains.js';

const cdrom = `
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>`;

const vmdkDisk = `
    <disk type='file' device='disk'>
      <driver name='qemu' type='vmdk'/>
      <source file='/srv/x/import.vmdk'/>
      <target dev='vdc' bus='virtio'/>
    </disk>`;

/** The multi fixture (vda qcow2, vdb raw) with extra disk elements at the start of <devices>. */
async function multiDomain(extraDisks = ''): Promise<DomainInfo> {
  const template = await renderDomainTemplate('multi', 'hvb-test-select', '/srv/x');
  return parseDomainXml(template.replace('<devices>', `<devices>${extraDisks}`));
}

/** Creates a JSON logger that collects its events in `events`. */
function recordingLogger() {
  const events: { level: number; msg: string; [key: string]: unknown }[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) events.push(JSON.parse(line));
      callback();
    },
  });
  return { log: createLogger({ format: 'json', level: 'debug', destination }), events };
}

describe('selectDisks', () => {
  it('no exclusions keeps every eligible disk', async () => {
    const { log, events } = recordingLogger();
    const selection = selectDisks(await multiDomain(cdrom), [], log);

    expect(selection.included.map((disk) => disk.target)).toEqual(['vda', 'vdb']);
    expect(selection.excluded).toEqual([]);
    expect(events).toEqual([]);
  });

  it('excluded target moves to excluded', async () => {
    const { log, events } = recordingLogger();
    const selection = selectDisks(await multiDomain(), ['vdb'], log);

    expect(selection.included.map((disk) => disk.target)).toEqual(['vda']);
    expect(selection.excluded.map((disk) => disk.target)).toEqual(['vdb']);
    const lines = events.filter((event) => event.target === 'vdb');
    expect(lines).toHaveLength(1);
    expect(lines[0].msg).toBe('disk vdb (/srv/x/vdb.raw) excluded from the backup by excludeDisks');
  });

  it('missing target warns and continues', async () => {
    const { log, events } = recordingLogger();
    const selection = selectDisks(await multiDomain(), ['vdq'], log);

    expect(selection.included.map((disk) => disk.target)).toEqual(['vda', 'vdb']);
    const warnings = events.filter((event) => event.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0].msg).toContain('excludeDisks lists disk vdq for domain hvb-test-select');
    expect(warnings[0].msg).toContain('its disks: vda, vdb');
    expect(warnings[0].disks).toEqual(['vda', 'vdb']);
  });

  it('cdrom target noted, not excluded', async () => {
    const { log, events } = recordingLogger();
    const selection = selectDisks(await multiDomain(cdrom), ['sda'], log);

    expect(selection.excluded).toEqual([]);
    expect(selection.included.map((disk) => disk.target)).toEqual(['vda', 'vdb']);
    expect(events.filter((event) => event.level === 40)).toEqual([]);
    expect(events.map((event) => event.msg).join('\n')).toContain('excludeDisks lists disk sda of domain hvb-test-select, which is never backed up');
  });

  it('unsupported format may be excluded', async () => {
    const { log } = recordingLogger();
    const info = await multiDomain(vmdkDisk);
    expect(() => selectDisks(info, [], log)).toThrow(LibvirtError);

    const selection = selectDisks(info, ['vdc'], log);
    expect(selection.excluded.map(excludedDiskRecord)).toEqual([{ target: 'vdc', format: 'vmdk', sourcePath: '/srv/x/import.vmdk' }]);
  });

  it('unsupported format hint names excludeDisks', async () => {
    const { log } = recordingLogger();
    const info = await multiDomain(vmdkDisk);
    let caught: unknown;
    try {
      selectDisks(info, [], log);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(LibvirtError);
    expect((caught as LibvirtError).message).toContain('disk vdc of domain hvb-test-select has format vmdk');
    expect((caught as LibvirtError).hint).toContain('"excludeDisks"."hvb-test-select"');
  });

  it('excluding every disk rejected', async () => {
    const { log } = recordingLogger();
    const info = await multiDomain();
    expect(() => selectDisks(info, ['vda', 'vdb'], log)).toThrow(ConfigError);
    expect(() => selectDisks(info, ['vda', 'vdb'], log)).toThrow('every disk of domain hvb-test-select that can be backed up is excluded (vda, vdb)');
  });

  it('record of disk without driver type says raw', () => {
    const info = parseDomainXml(`<domain type='kvm'><name>a</name><devices><disk type='block' device='disk'><source dev='/dev/vg/a'/><target dev='vdb'/></disk></devices></domain>`);
    expect(excludedDiskRecord(info.disks[0])).toEqual({ target: 'vdb', format: 'raw', sourcePath: '/dev/vg/a' });
  });
});
