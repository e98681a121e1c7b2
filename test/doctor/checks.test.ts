/** Pure parts of the individual checks: decisions on parsed values, without running any tool. */
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCheck } from '../../src/doctor/check.js';
import { checkSocketPathLength } from '../../src/doctor/directories.js';
import { qcow2Compat } from '../../src/doctor/domains.js';
import { checkTrustedSigners, secretKeyFileProblems } from '../../src/doctor/keys.js';
import { checkKvmDevice } from '../../src/doctor/kvm-device.js';
import { backupSupport, checkLibvirtVersion } from '../../src/doctor/libvirt.js';
import { parseQemuConf, qemuAccount, resolveAccount } from '../../src/doctor/qemu-user.js';
import { formatResults } from '../../src/doctor/report.js';
import { describeRole } from '../../src/doctor/roles.js';
import { checkNode } from '../../src/doctor/tools.js';

const FINGERPRINT = 'A'.repeat(40);

describe('doctor checks', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hvb-doctor-unit-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('checkNode rejects Node.js 20.18', () => {
    expect(checkNode('20.18.1').status).toBe('fail');
    expect(checkNode('20.19.0').status).toBe('ok');
  });

  it('libvirt version thresholds', () => {
    expect(checkLibvirtVersion({ daemon: [5, 10, 0] }).status).toBe('fail');
    expect(checkLibvirtVersion({ daemon: [7, 6, 0] }).status).toBe('warn');
    expect(checkLibvirtVersion({ daemon: [7, 7, 0] }).status).toBe('ok');
  });

  it('libvirt version prefers the daemon', () => {
    expect(checkLibvirtVersion({ library: [9, 0, 0], daemon: [6, 5, 0] }).status).toBe('warn');
  });

  it('backupSupport reads domcapabilities', () => {
    const xml = (value: string) => `<domainCapabilities><path>/usr/bin/qemu</path><features><gic supported='no'/><backup supported='${value}'/></features></domainCapabilities>`;
    expect(backupSupport(xml('yes'))).toBe('yes');
    expect(backupSupport(xml('no'))).toBe('no');
    expect(backupSupport('<domainCapabilities><features/></domainCapabilities>')).toBeUndefined();
  });

  it('qcow2Compat reads qemu-img info', () => {
    const info = JSON.stringify({ format: 'qcow2', 'format-specific': { type: 'qcow2', data: { compat: '0.10' } } });
    expect(qcow2Compat(info)).toBe('0.10');
    expect(qcow2Compat(JSON.stringify({ format: 'raw' }))).toBeUndefined();
  });

  it('secret key file mode and owner', () => {
    expect(secretKeyFileProblems({ mode: 0o100600, uid: 0 }, 1000)).toEqual({ mode: false, owner: false });
    expect(secretKeyFileProblems({ mode: 0o100644, uid: 1000 }, 1000)).toEqual({ mode: true, owner: false });
    expect(secretKeyFileProblems({ mode: 0o100600, uid: 1001 }, 1000)).toEqual({ mode: false, owner: true });
  });

  it('trusted signers missing own key', () => {
    const result = checkTrustedSigners(['B'.repeat(40)], FINGERPRINT);
    expect(result.status).toBe('warn');
    expect(result.detail).toContain('your own backups could not be restored');
    expect(checkTrustedSigners([FINGERPRINT], FINGERPRINT).status).toBe('ok');
  });

  it('socket path limit', () => {
    expect(checkSocketPathLength('/var/lib/hvbackup/scratch').status).toBe('ok');
    const result = checkSocketPathLength(`/${'d'.repeat(80)}`);
    expect(result.status).toBe('fail');
    expect(result.fix).toContain('scratchDir');
  });

  it('parseQemuConf skips comments', () => {
    const text = '#user = "root"\nuser = "qemu"\n  group="kvm" # comment\n';
    expect(parseQemuConf(text)).toEqual({ user: 'qemu', group: 'kvm' });
    expect(parseQemuConf('# user = "root"\n')).toEqual({});
  });

  it('resolveAccount collects every group', async () => {
    const passwd = join(dir, 'passwd');
    const group = join(dir, 'group');
    await writeFile(passwd, 'root:x:0:0::/root:/bin/sh\nlibvirt-qemu:x:64055:108:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\n');
    await writeFile(group, 'kvm:x:108:\nhvbackup:x:990:libvirt-qemu\nlibvirt-qemu:x:64055:\nother:x:5:\n');
    const account = await resolveAccount({ user: 'libvirt-qemu', group: 'libvirt-qemu' }, passwd, group);
    expect(account?.uid).toBe(64055);
    expect(account?.groups.sort((a, b) => a - b)).toEqual([108, 990, 64055]);
    expect(await resolveAccount({ user: 'nobody-here', group: 'x' }, passwd, group)).toBeUndefined();
  });

  it('qemuAccount falls back to qemu', async () => {
    const passwd = join(dir, 'passwd-fedora');
    await writeFile(passwd, 'root:x:0:0::/root:/bin/sh\nqemu:x:107:107:qemu user:/:/sbin/nologin\n');
    const account = await qemuAccount(join(dir, 'no-qemu.conf'), passwd);
    expect(account.user).toBe('qemu');
    expect(account.group).toBe('qemu');
  });

  it('qemuAccount prefers qemu.conf', async () => {
    const conf = join(dir, 'qemu.conf');
    await writeFile(conf, 'user = "svc-qemu"\ngroup = "kvm"\n');
    const account = await qemuAccount(conf, join(dir, 'passwd-fedora'));
    expect(account.user).toBe('svc-qemu');
    expect(account.group).toBe('kvm');
  });

  it('kvm device judged for QEMU user', async () => {
    const passwd = join(dir, 'passwd-kvm');
    const group = join(dir, 'group-kvm');
    const conf = join(dir, 'qemu-kvm.conf');
    const device = join(dir, 'kvm');
    await writeFile(passwd, 'root:x:0:0::/root:/bin/sh\nlibvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin\n');
    await writeFile(group, 'kvm:x:108:libvirt-qemu\nlibvirt-qemu:x:64055:\n');
    await writeFile(conf, '#user = "root"\n');
    await writeFile(device, '');
    const options = { device, qemuConf: conf, passwdFile: passwd, groupFile: group };

    // As a container without udev leaves it.
    await chown(device, 0, 0);
    await chmod(device, 0o600);
    const rootOnly = await checkKvmDevice('libvirt.kvm-device', options);
    expect(rootOnly.status).toBe('warn');
    expect(rootOnly.detail).toContain('libvirt-qemu cannot open');
    expect(rootOnly.fix).toContain('chgrp kvm');

    // As Debian's udev rule sets it.
    await chown(device, 0, 108);
    await chmod(device, 0o660);
    expect((await checkKvmDevice('libvirt.kvm-device', options)).status).toBe('ok');

    const missing = await checkKvmDevice('libvirt.kvm-device', { ...options, device: join(dir, 'no-kvm') });
    expect(missing.status).toBe('info');
  });

  it('describeRole for each kind of user', () => {
    const roles = { backupUser: 'hvbackup', adminGroup: 'admins' };
    const group = { gid: 500, members: ['bob'] };
    expect(describeRole(roles, { uid: 990, user: 'hvbackup', groups: [990] }, group).detail).toContain('can never restore');
    expect(describeRole(roles, { uid: 0, user: 'root', groups: [0] }, group).detail).toContain('can restore');
    expect(describeRole(roles, { uid: 1001, user: 'bob', groups: [1001] }, group).detail).toContain('can restore');
    expect(describeRole(roles, { uid: 1002, user: 'eve', groups: [1002] }, group).detail).toContain('cannot restore');
  });

  it('runCheck turns a throw into FAIL', async () => {
    const [result] = await runCheck('sample', async () => {
      throw new Error('probe exploded');
    });
    expect(result.status).toBe('fail');
    expect(result.detail).toContain('probe exploded');
  });

  it('runCheck reports a hanging check', async () => {
    const [result] = await runCheck('slow', () => new Promise(() => undefined), 50);
    expect(result.status).toBe('fail');
    expect(result.detail).toContain('no result within');
  });

  it('formatResults prints fix lines', () => {
    const text = formatResults([
      { name: 'a', status: 'ok', detail: 'fine' },
      { name: 'b', status: 'fail', detail: 'broken', fix: 'chmod 600 /x' },
    ]);
    expect(text).toBe('OK    a: fine\nFAIL  b: broken\n      fix: chmod 600 /x\n');
  });
});
