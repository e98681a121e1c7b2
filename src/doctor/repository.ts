/**
 * The repository: reachable, marker present, listable, and with
 * `--write-test` writable. Doctor never creates the repository. Messages come
 * from the store, whose descriptions never contain credentials.
 */
import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';

import type { Config } from '../config/load.js';
import { REPOSITORY_FILE } from '../manifest/layout.js';
import { openStore } from '../repository/open.js';
import { openRepository } from '../repository/repository.js';
import type { ObjectStore } from '../repository/store.js';
import { fail, failureOf, ok, runCheck, warn, type CheckResult } from './check.js';

/** Prefix of the probe objects that --write-test writes and deletes. */
export const PROBE_PREFIX = 'doctor/';

export async function checkRepository(config: Config, options: { writeTest: boolean }): Promise<CheckResult[]> {
  if (config.repository.type === 'local') {
    const missing = await checkLocalRoot(config.repository.path);
    if (missing) return [missing];
  }

  const store = await openStore(config.repository);
  const results: CheckResult[] = [];

  const listing = await runCheck('repository.list', () => checkList(store));
  results.push(...listing);
  if (listing.some((result) => result.status === 'fail')) return results;

  results.push(...(await runCheck('repository.marker', () => checkMarker(config, store))));
  if (options.writeTest) results.push(...(await runCheck('repository.write', () => checkWrite(store))));
  return results;
}

/**
 * A local repository's directory must exist. The first backup would create
 * it, but a missing directory more often means an unmounted disk or a typo,
 * and a backup would then fill the root file system.
 */
async function checkLocalRoot(path: string): Promise<CheckResult | undefined> {
  try {
    const info = await stat(path);
    if (!info.isDirectory()) return fail('repository.path', `repository path ${path} is not a directory`, `set "repository.path" to a directory`);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return fail('repository.path', `repository directory ${path} cannot be read: ${code ?? (error as Error).message}`, `mount the backup disk if ${path} is on one; otherwise correct "repository.path" or create it: mkdir -p ${path}`);
  }
}

/** Lists at most one object: this reaches the bucket (or directory) and needs list rights, like S3 HeadBucket plus ListBucket. */
async function checkList(store: ObjectStore): Promise<CheckResult> {
  try {
    let found = false;
    for await (const object of store.list('')) {
      found = object !== undefined;
      break;
    }
    return ok('repository.list', `${store.description} reachable and listable${found ? '' : ' (empty)'}`);
  } catch (error) {
    return failureOf('repository.list', error, 'check the endpoint, bucket and credentials (AWS_PROFILE or AWS_ACCESS_KEY_ID), or the directory permissions');
  }
}

async function checkMarker(config: Config, store: ObjectStore): Promise<CheckResult> {
  const name = 'repository.marker';
  if ((await store.head(REPOSITORY_FILE)) === undefined) {
    return warn(name, `${store.description} has no ${REPOSITORY_FILE}: the repository is not created yet`, 'nothing to do on a backup host: the first backup creates it. On a restore host, check "repository" in the configuration');
  }
  const { repositoryId } = await openRepository(config, { create: false });
  return ok(name, `hvbackup repository ${repositoryId}`);
}

/**
 * Writes and deletes a small object under doctor/. The recommended policy for
 * the backup host's credential denies delete, so a failed delete is a WARN.
 */
async function checkWrite(store: ObjectStore): Promise<CheckResult> {
  const name = 'repository.write';
  const key = `${PROBE_PREFIX}probe-${randomBytes(6).toString('hex')}`;
  try {
    await store.put(key, Buffer.from('hvbackup doctor write test\n'), { ifNoneMatch: true, contentType: 'text/plain' });
  } catch (error) {
    return failureOf(name, error, 'grant this credential s3:PutObject on the bucket (or write access to the directory)');
  }

  const deleted = await store.delete([key]).catch((error: unknown) => ({ deleted: [], failed: [{ key, reason: (error as Error).message }] }));
  if (deleted.failed.length > 0) {
    return warn(name, `wrote ${key}, but deleting it failed: ${deleted.failed[0].reason}. Expected when this credential may not delete, as docs/install.md recommends`, `remove ${key} with the admin credential`);
  }
  if ((await store.head(key)) !== undefined) {
    return warn(name, `wrote ${key}; the delete reported success but the object is still listed`, `remove ${key} with the admin credential`);
  }
  return ok(name, `wrote and deleted ${key}`);
}
