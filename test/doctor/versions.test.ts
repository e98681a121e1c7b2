import { describe, expect, it } from 'vitest';

import { atLeast, compareVersions, parseGpgVersion, parseQemuToolVersion, parseVersion, parseVirshVersion } from '../../src/doctor/versions.js';

describe('versions', () => {
  it('parseVersion reads dotted numbers', () => {
    expect(parseVersion('7.2.22 (Debian 1:7.2+dfsg)')).toEqual([7, 2, 22]);
  });

  it('parseVersion rejects non-numeric text', () => {
    expect(parseVersion('unknown')).toBeUndefined();
  });

  it('compareVersions orders by each part', () => {
    expect(compareVersions([20, 19, 0], [20, 9, 9])).toBe(1);
    expect(compareVersions([6, 0], [6, 0, 0])).toBe(0);
    expect(compareVersions([7, 6, 9], [7, 7])).toBe(-1);
  });

  it('atLeast accepts equal and newer', () => {
    expect(atLeast([7, 7, 0], [7, 7, 0])).toBe(true);
    expect(atLeast([9, 0, 0], [7, 7, 0])).toBe(true);
    expect(atLeast([7, 6, 0], [7, 7, 0])).toBe(false);
  });

  it('parseVirshVersion reads library, daemon, hypervisor', () => {
    const output = [
      'Compiled against library: libvirt 9.0.0',
      'Using library: libvirt 9.0.0',
      'Using API: QEMU 9.0.0',
      'Running hypervisor: QEMU 7.2.22',
      'Running against daemon: 8.5.0',
      '',
    ].join('\n');
    const versions = parseVirshVersion(output);
    expect(versions.library).toEqual([9, 0, 0]);
    expect(versions.daemon).toEqual([8, 5, 0]);
    expect(versions.hypervisor).toEqual([7, 2, 22]);
  });

  it('parseVirshVersion leaves missing lines undefined', () => {
    expect(parseVirshVersion('Using library: libvirt 9.0.0\n').daemon).toBeUndefined();
  });

  it('parseQemuToolVersion reads qemu-img and qemu-nbd', () => {
    expect(parseQemuToolVersion('qemu-img version 7.2.22 (Debian 1:7.2+dfsg-7)\nCopyright')).toEqual([7, 2, 22]);
    expect(parseQemuToolVersion('qemu-nbd 5.2.0 (Debian)\nWritten by')).toEqual([5, 2, 0]);
  });

  it('parseGpgVersion reads the first line', () => {
    expect(parseGpgVersion('gpg (GnuPG) 2.2.40\nlibgcrypt 1.10.1\n')).toEqual([2, 2, 40]);
  });
});
