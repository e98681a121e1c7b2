import { chown, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { sharedStateDirectory } from '../../src/util/state-dir.js';

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;

describe('sharedStateDirectory', () => {
  let stateDir: string;

  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'hvb-state-'));
  });
  afterEach(async () => {
    await rm(stateDir, { recursive: true, force: true });
  });

  it('creates the directory once', async () => {
    const first = await sharedStateDirectory(stateDir, 'backup-ids');
    const second = await sharedStateDirectory(stateDir, 'backup-ids');

    expect(second).toBe(first);
    expect((await stat(first)).isDirectory()).toBe(true);
    expect((await stat(first)).mode & 0o777).toBe(0o750);
  });

  // Restores run as root, but the directory must still belong to the backup user who owns the state directory.
  it.runIf(asRoot)('root-created directory goes to the state owner', async () => {
    await chown(stateDir, NOBODY, NOBODY);

    const dir = await sharedStateDirectory(stateDir, 'locks');

    expect((await stat(dir)).uid).toBe(NOBODY);
    expect((await stat(dir)).gid).toBe(NOBODY);
  });
});
