/** What restore does with disks that the backup excluded: keep or drop, and the check of kept images. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { RefusedError } from '../../src/errors.js';
import { checkKeptImagesExist, describeExcludedDisk, planExcludedDisks } from '../../src/restore/excluded-disks.js';

describe('planExcludedDisks', () => {
  const excluded = [{ target: 'vdb', format: 'qcow2', sourcePath: '/images/web1-vdb.qcow2' }];

  it('manifest without exclusions plans nothing', () => {
    expect(planExcludedDisks(undefined, { clone: false, drop: false })).toEqual([]);
  });

  it('in-place restore keeps excluded disk', () => {
    expect(planExcludedDisks(excluded, { clone: false, drop: false })).toEqual([{ target: 'vdb', path: '/images/web1-vdb.qcow2', action: 'keep' }]);
  });

  it('drop flag drops excluded disk', () => {
    expect(planExcludedDisks(excluded, { clone: false, drop: true })[0].action).toBe('drop');
  });

  it('clone always drops excluded disk', () => {
    expect(planExcludedDisks(excluded, { clone: true, drop: false })[0].action).toBe('drop');
  });

  it('summary line names disk and path', () => {
    const [kept] = planExcludedDisks(excluded, { clone: false, drop: false });
    expect(describeExcludedDisk(kept)).toBe('  disk vdb -> /images/web1-vdb.qcow2 (excluded from the backup: the existing image is used, not written)');
  });
});

describe('checkKeptImagesExist', () => {
  let dir: string;
  let present: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hvb-excluded-'));
    present = join(dir, 'vdb.qcow2');
    await writeFile(present, 'image');
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('existing image passes', async () => {
    await expect(checkKeptImagesExist([{ target: 'vdb', path: present, action: 'keep' }], 'web1')).resolves.toBeUndefined();
  });

  it('missing image rejected naming disk and path', async () => {
    const missing = join(dir, 'vdc.qcow2');
    const check = checkKeptImagesExist([{ target: 'vdc', path: missing, action: 'keep' }], 'web1');

    await expect(check).rejects.toBeInstanceOf(RefusedError);
    await expect(check).rejects.toThrow(`cannot restore domain web1 in place: disk vdc was excluded from the backup, and its image ${missing} does not exist`);
  });

  it('rejection hint names the flag', async () => {
    const error = await checkKeptImagesExist([{ target: 'vdc', path: join(dir, 'none'), action: 'keep' }], 'web1').catch((caught: unknown) => caught);
    expect((error as RefusedError).hint).toContain('--drop-excluded-disks');
    expect((error as RefusedError).hint).toContain('create or restore those images first');
  });

  it('every missing image listed', async () => {
    const plans = [
      { target: 'vdb', path: join(dir, 'gone-b'), action: 'keep' as const },
      { target: 'vdc', path: join(dir, 'gone-c'), action: 'keep' as const },
    ];
    const error = (await checkKeptImagesExist(plans, 'web1').catch((caught: unknown) => caught)) as Error;
    expect(error.message).toContain('disk vdb');
    expect(error.message).toContain('disk vdc');
  });

  it('dropped disk not checked', async () => {
    await expect(checkKeptImagesExist([{ target: 'vdc', path: join(dir, 'none'), action: 'drop' }], 'web1')).resolves.toBeUndefined();
  });
});
