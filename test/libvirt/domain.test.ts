import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LibvirtError } from '../../src/errors.js';
import { backupDisks, Domains, parseDomainXml } from '../../src/libvirt/domain.js';
import { Virsh } from '../../src/libvirt/virsh.js';
import { available } from '../support/components.js';
import { createTestDomain, renderDomainTemplate, type TestDomain } from '../support/domains.js';

const extraDisks = `
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/images/base.raw'/>
      <target dev='vdc' bus='virtio'/>
      <readonly/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/images/shared.raw'/>
      <target dev='vdd' bus='virtio'/>
      <shareable/>
    </disk>`;

describe('parseDomainXml', () => {
  it('parseDomainXml single fixture disks', async () => {
    const info = parseDomainXml(await renderDomainTemplate('single', 'hvb-test-parse', '/srv/x'));

    expect(info.name).toBe('hvb-test-parse');
    expect(info.type).toBe('qemu');
    expect(info.disks).toEqual([{ target: 'vda', device: 'disk', type: 'file', sourcePath: '/srv/x/vda.qcow2', format: 'qcow2', readOnly: false, shareable: false }]);
    expect(info.nvramPath).toBeUndefined();
  });

  it('parseDomainXml multi fixture interfaces', async () => {
    const info = parseDomainXml(await renderDomainTemplate('multi', 'hvb-test-parse', '/srv/x'));

    expect(info.disks.map((disk) => `${disk.target}:${disk.format}:${disk.sourcePath}`)).toEqual(['vda:qcow2:/srv/x/vda.qcow2', 'vdb:raw:/srv/x/vdb.raw']);
    expect(info.interfaces).toEqual([{ type: 'user', mac: '52:54:00:6b:00:02' }, { type: 'user', mac: '52:54:00:6b:00:03' }]);
  });

  it('parseDomainXml uefi fixture firmware', async () => {
    const info = parseDomainXml(await renderDomainTemplate('uefi', 'hvb-test-parse', '/srv/x'));

    expect(info.loaderPath).toBe('/usr/share/OVMF/OVMF_CODE.fd');
    expect(info.nvramPath).toBe('/srv/x/nvram.fd');
    expect(info.nvramTemplate).toBe('/usr/share/OVMF/OVMF_VARS.fd');
  });

  it('parseDomainXml nvram source element', () => {
    const xml = `<domain type='kvm'><name>a</name><os><nvram template='/t.fd' type='file'><source file='/n.fd'/></nvram></os></domain>`;

    expect(parseDomainXml(xml).nvramPath).toBe('/n.fd');
  });

  it('parseDomainXml malformed XML rejected', () => {
    expect(() => parseDomainXml('<domain><name>a</name>')).toThrow(LibvirtError);
  });

  it('parseDomainXml wrong root rejected', () => {
    expect(() => parseDomainXml('<network><name>a</name></network>')).toThrow(/expected <domain>/);
  });
});

describe('backupDisks', () => {
  it('backupDisks skips cdrom, readonly, shareable', async () => {
    const template = await renderDomainTemplate('multi', 'hvb-test-parse', '/srv/x');
    const xml = template.replace('<devices>', `<devices>${extraDisks}`);

    const info = parseDomainXml(xml);

    expect(info.disks.map((disk) => disk.target)).toEqual(['sda', 'vdc', 'vdd', 'vda', 'vdb']);
    expect(backupDisks(info).map((disk) => disk.target)).toEqual(['vda', 'vdb']);
  });

  it('backupDisks skips network sources', () => {
    const xml = `<domain type='kvm'><name>a</name><devices><disk type='network' device='disk'><source protocol='nbd' name='x'/><target dev='vda'/></disk></devices></domain>`;

    expect(backupDisks(parseDomainXml(xml))).toEqual([]);
  });
});

describe.skipIf(!available('libvirt'))('Domains against libvirtd', () => {
  const virsh = new Virsh();
  const domains = new Domains(virsh);
  const created: TestDomain[] = [];

  beforeAll(async () => {
    created.push(await createTestDomain({ name: 'hvb-test-domain-multi', kind: 'multi' }));
    created.push(await createTestDomain({ name: 'hvb-test-domain-uefi', kind: 'uefi' }));
  });

  afterAll(async () => {
    for (const domain of created) await domain.cleanup();
  });

  it('parseDomainXml live multi domain', async () => {
    const info = parseDomainXml(await domains.dumpXml('hvb-test-domain-multi'));

    expect(info.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(info.disks.map((disk) => disk.sourcePath)).toEqual(created[0].disks.map((disk) => disk.path));
    expect(info.interfaces.map((entry) => entry.mac)).toEqual(['52:54:00:6b:00:02', '52:54:00:6b:00:03']);
  });

  it('parseDomainXml live uefi domain', async () => {
    const info = parseDomainXml(await domains.dumpXml('hvb-test-domain-uefi'));

    expect(info.nvramPath).toBe(created[1].nvramPath);
    expect(info.loaderPath).toBe('/usr/share/OVMF/OVMF_CODE.fd');
  });

  it('Domains state running', async () => {
    expect(await domains.state('hvb-test-domain-uefi')).toBe('running');
  });

  it('Domains list includes test domains', async () => {
    const names = await domains.list();

    expect(names).toContain('hvb-test-domain-multi');
    expect(names).toContain('hvb-test-domain-uefi');
  });

  it('Domains exists unknown domain', async () => {
    expect(await domains.exists('hvb-test-domain-missing')).toBe(false);
    expect(await domains.exists('hvb-test-domain-multi')).toBe(true);
  });

  it('Domains uuid matches XML', async () => {
    const info = parseDomainXml(await domains.dumpXml('hvb-test-domain-multi'));

    expect(await domains.uuid('hvb-test-domain-multi')).toBe(info.uuid);
  });

  it('Domains destroy twice is fine', async () => {
    await domains.destroy('hvb-test-domain-multi');
    await domains.destroy('hvb-test-domain-multi');

    expect(await domains.state('hvb-test-domain-multi')).toBe('shut off');
  });

  it('Domains state unknown domain names it', async () => {
    const failure = domains.state('hvb-test-domain-missing');

    await expect(failure).rejects.toBeInstanceOf(LibvirtError);
    await expect(failure).rejects.toThrow(/hvb-test-domain-missing/);
  });
});
