import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { rewriteDomainXml } from '../../src/libvirt/clone.js';
import { Domains, parseDomainXml } from '../../src/libvirt/domain.js';
import { Virsh } from '../../src/libvirt/virsh.js';
import { available } from '../support/components.js';
import { createTestDomain, removeTestDomain, renderDomainTemplate, type TestDomain } from '../support/domains.js';

const MAC = /^52:54:00(:[0-9a-f]{2}){3}$/;

describe('rewriteDomainXml', () => {
  it('rewriteDomainXml new name and uuid', async () => {
    const xml = await renderDomainTemplate('multi', 'hvb-test-original', '/srv/a');

    const info = parseDomainXml(rewriteDomainXml(xml, { name: 'hvb-test-copy', uuid: '11111111-2222-3333-4444-555555555555' }));

    expect(info.name).toBe('hvb-test-copy');
    expect(info.uuid).toBe('11111111-2222-3333-4444-555555555555');
  });

  it('rewriteDomainXml new name random uuid', async () => {
    const xml = await renderDomainTemplate('multi', 'hvb-test-original', '/srv/a');

    const first = parseDomainXml(rewriteDomainXml(xml, { name: 'hvb-test-copy' }));
    const second = parseDomainXml(rewriteDomainXml(xml, { name: 'hvb-test-copy' }));

    expect(first.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(first.uuid).not.toBe(second.uuid);
  });

  it('rewriteDomainXml regenerates every MAC', async () => {
    const xml = await renderDomainTemplate('multi', 'hvb-test-original', '/srv/a');
    const before = parseDomainXml(xml).interfaces.map((entry) => entry.mac);

    const after = parseDomainXml(rewriteDomainXml(xml, { regenerateMacs: true })).interfaces.map((entry) => entry.mac);

    expect(after).toHaveLength(2);
    for (const mac of after) expect(mac).toMatch(MAC);
    for (const mac of after) expect(before).not.toContain(mac);
    expect(after[0]).not.toBe(after[1]);
  });

  it('rewriteDomainXml replaces disk paths', async () => {
    const xml = await renderDomainTemplate('multi', 'hvb-test-original', '/srv/a');
    const diskPaths = new Map([['vda', '/srv/b/vda.qcow2'], ['vdb', '/srv/b/vdb.raw']]);

    const info = parseDomainXml(rewriteDomainXml(xml, { diskPaths }));

    expect(info.disks.map((disk) => disk.sourcePath)).toEqual(['/srv/b/vda.qcow2', '/srv/b/vdb.raw']);
  });

  it('rewriteDomainXml unknown target rejected', async () => {
    const xml = await renderDomainTemplate('single', 'hvb-test-original', '/srv/a');

    expect(() => rewriteDomainXml(xml, { diskPaths: new Map([['vdq', '/x']]) })).toThrow(/vdq/);
  });

  it('rewriteDomainXml removes listed disks', async () => {
    const xml = await renderDomainTemplate('multi', 'hvb-test-original', '/srv/a');

    const rewritten = rewriteDomainXml(xml, { removeDisks: ['vdb'] });

    expect(parseDomainXml(rewritten).disks.map((disk) => disk.target)).toEqual(['vda']);
    expect(rewritten).not.toContain('/srv/a/vdb.raw');
  });

  it('rewriteDomainXml removes disk and moves the rest', async () => {
    const xml = await renderDomainTemplate('multi', 'hvb-test-original', '/srv/a');

    const info = parseDomainXml(rewriteDomainXml(xml, { removeDisks: ['vdb'], diskPaths: new Map([['vda', '/srv/b/vda.qcow2']]) }));

    expect(info.disks.map((disk) => [disk.target, disk.sourcePath])).toEqual([['vda', '/srv/b/vda.qcow2']]);
  });

  it('rewriteDomainXml unknown disk to remove rejected', async () => {
    const xml = await renderDomainTemplate('multi', 'hvb-test-original', '/srv/a');

    expect(() => rewriteDomainXml(xml, { removeDisks: ['vdq'] })).toThrow(/vdq/);
  });

  it('rewriteDomainXml replaces nvram path', async () => {
    const xml = await renderDomainTemplate('uefi', 'hvb-test-original', '/srv/a');

    const info = parseDomainXml(rewriteDomainXml(xml, { nvramPath: '/srv/b/nvram.fd' }));

    expect(info.nvramPath).toBe('/srv/b/nvram.fd');
    expect(info.nvramTemplate).toBe('/usr/share/OVMF/OVMF_VARS.fd');
  });

  it('rewriteDomainXml nvram on BIOS rejected', async () => {
    const xml = await renderDomainTemplate('single', 'hvb-test-original', '/srv/a');

    expect(() => rewriteDomainXml(xml, { nvramPath: '/x.fd' })).toThrow(/nvram/);
  });

  it('rewriteDomainXml removes interfaces', async () => {
    const xml = await renderDomainTemplate('multi', 'hvb-test-original', '/srv/a');

    expect(parseDomainXml(rewriteDomainXml(xml, { removeInterfaces: true })).interfaces).toEqual([]);
  });
});

describe.skipIf(!available('libvirt'))('rewriteDomainXml against libvirtd', () => {
  const domains = new Domains(new Virsh());
  const cloneName = 'hvb-test-clone-copy';
  let original: TestDomain;

  beforeAll(async () => {
    original = await createTestDomain({ name: 'hvb-test-clone-source', kind: 'uefi', start: false });
  });

  afterAll(async () => {
    await removeTestDomain(cloneName);
    await original?.cleanup();
  });

  it('rewriteDomainXml clone defines in libvirt', async () => {
    const xml = await domains.dumpXml(original.name, { inactive: true });
    const source = parseDomainXml(xml);
    const rewritten = rewriteDomainXml(xml, {
      name: cloneName,
      regenerateMacs: true,
      diskPaths: new Map([['vda', `${original.dir}/clone-vda.qcow2`]]),
      nvramPath: `${original.dir}/clone-nvram.fd`,
    });

    await domains.define(rewritten);
    const clone = parseDomainXml(await domains.dumpXml(cloneName, { inactive: true }));

    expect(clone.uuid).not.toBe(source.uuid);
    expect(clone.interfaces[0].mac).not.toBe(source.interfaces[0].mac);
    expect(clone.disks[0].sourcePath).toBe(`${original.dir}/clone-vda.qcow2`);
    expect(clone.nvramPath).toBe(`${original.dir}/clone-nvram.fd`);
  });
});
