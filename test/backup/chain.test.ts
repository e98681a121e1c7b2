/** The reasons decideChain gives when the disks of a backup differ from its parent's. */
import { describe, expect, it } from 'vitest';

import { describeDiskChanges } from '../../src/backup/chain.js';
import type { Manifest } from '../../src/manifest/schema.js';

const PARENT_ID = '20251201T020000Z-aaaaaa';

function storedDisk(target: string, format: 'qcow2' | 'raw'): Manifest['disks'][number] {
  return { target, format, sourcePath: `/images/${target}`, virtualSize: 1024, storedBytes: 0, extentCount: 0, entry: `disks/${target}.img` };
}

function parent(disks: Manifest['disks'], excludedTargets: string[] = []): Pick<Manifest, 'backupId' | 'disks' | 'excludedDisks'> {
  const excludedDisks = excludedTargets.map((target) => ({ target, format: 'qcow2', sourcePath: `/images/${target}` }));
  return excludedTargets.length === 0 ? { backupId: PARENT_ID, disks } : { backupId: PARENT_ID, disks, excludedDisks };
}

describe('describeDiskChanges', () => {
  it('names disk excluded by the parent', () => {
    const changes = describeDiskChanges(
      parent([storedDisk('vda', 'qcow2')], ['vdb']),
      [{ target: 'vda', format: 'qcow2' }, { target: 'vdb', format: 'qcow2' }],
      [],
    );
    expect(changes).toEqual([`disk vdb was excluded from backup ${PARENT_ID}, so no earlier copy of it exists to build on`]);
  });

  it('names disk excluded now', () => {
    const changes = describeDiskChanges(
      parent([storedDisk('vda', 'qcow2'), storedDisk('vdb', 'qcow2')]),
      [{ target: 'vda', format: 'qcow2' }],
      ['vdb'],
    );
    expect(changes).toEqual([`disk vdb is excluded now but was in backup ${PARENT_ID}, and each backup of a chain must contain the same disks`]);
  });

  it('names new disk', () => {
    const changes = describeDiskChanges(parent([storedDisk('vda', 'qcow2')]), [{ target: 'vda', format: 'qcow2' }, { target: 'vdc', format: 'raw' }], []);
    expect(changes).toEqual([`disk vdc is new since backup ${PARENT_ID}`]);
  });

  it('names removed disk', () => {
    const changes = describeDiskChanges(parent([storedDisk('vda', 'qcow2'), storedDisk('vdb', 'raw')]), [{ target: 'vda', format: 'qcow2' }], []);
    expect(changes).toEqual([`disk vdb of backup ${PARENT_ID} is no longer backed up`]);
  });

  it('names changed format', () => {
    const changes = describeDiskChanges(parent([storedDisk('vda', 'raw')]), [{ target: 'vda', format: 'qcow2' }], []);
    expect(changes).toEqual(['disk vda changed format from raw to qcow2']);
  });

  it('reports reordered disks', () => {
    const changes = describeDiskChanges(
      parent([storedDisk('vda', 'qcow2'), storedDisk('vdb', 'raw')]),
      [{ target: 'vdb', format: 'raw' }, { target: 'vda', format: 'qcow2' }],
      [],
    );
    expect(changes).toEqual(['the disks are listed in another order']);
  });

  it('lists every change', () => {
    const changes = describeDiskChanges(
      parent([storedDisk('vda', 'qcow2'), storedDisk('vdc', 'raw')], ['vdb']),
      [{ target: 'vda', format: 'qcow2' }, { target: 'vdb', format: 'qcow2' }],
      ['vdc'],
    );
    expect(changes).toHaveLength(2);
    expect(changes[0]).toContain('disk vdb was excluded from backup');
    expect(changes[1]).toContain('disk vdc is excluded now');
  });
});
