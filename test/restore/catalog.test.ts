/** Finding the newest committed backup of a domain, against a LocalStore in a temporary directory. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { manifestKey, segmentKey, type BackupRef } from '../../src/manifest/layout.js';
import { LocalStore } from '../../src/repository/local.js';
import { latestCommittedBackup } from '../../src/restore/catalog.js';

let dir: string;
let store: LocalStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hvbackup-catalog-'));
  store = new LocalStore(dir);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const web = (backupId: string): BackupRef => ({ host: 'host1', domain: 'web', backupId });

describe('latestCommittedBackup', () => {
  it('skips newer unfinished backups', async () => {
    await store.put(manifestKey(web('20251201T020000Z-aaaaaa')), Buffer.from('{}'));
    await store.put(manifestKey(web('20251202T020000Z-aaaaaa')), Buffer.from('{}'));
    // Newer, but without a manifest: a backup that never committed.
    await store.put(segmentKey(web('20251203T020000Z-aaaaaa'), '000000.pgp'), Buffer.from('x'));

    expect(await latestCommittedBackup(store, 'host1', 'web')).toEqual(web('20251202T020000Z-aaaaaa'));
  });

  it('ignores other domains and names', async () => {
    await store.put(manifestKey(web('20251201T020000Z-aaaaaa')), Buffer.from('{}'));
    await store.put(manifestKey({ host: 'host1', domain: 'db', backupId: '20251205T020000Z-aaaaaa' }), Buffer.from('{}'));
    await store.put('hosts/host1/domains/web/notes/readme', Buffer.from('not a backup'));

    expect(await latestCommittedBackup(store, 'host1', 'web')).toEqual(web('20251201T020000Z-aaaaaa'));
  });

  it('returns undefined without backups', async () => {
    expect(await latestCommittedBackup(store, 'host1', 'web')).toBeUndefined();
  });
});
