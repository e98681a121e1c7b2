/**
 * A repository is a store with a marker object at its root that names the
 * format version and a random repository id. Manifests carry that id, so a
 * backup copied into another repository is recognisable as foreign.
 */
import { randomUUID } from 'node:crypto';

import type { Config } from '../config/load.js';
import { AlreadyExistsError, NotFoundError, RepositoryError } from '../errors.js';
import { REPOSITORY_FILE } from '../manifest/layout.js';
import { openStore } from './open.js';
import type { ObjectStore } from './store.js';

export const REPOSITORY_FORMAT = 'hvbackup-repository';
export const REPOSITORY_VERSION = 1;

interface RepositoryMarker {
  format: string;
  version: number;
  id: string;
  createdAt: string;
}

export async function openRepository(
  config: Config,
  options: { create: boolean },
): Promise<{ store: ObjectStore; repositoryId: string }> {
  const store = await openStore(config.repository);
  const marker = await readMarker(store);
  if (marker) return { store, repositoryId: marker.id };

  if (!options.create) {
    throw new RepositoryError(`no hvbackup repository at ${store.description}: ${REPOSITORY_FILE} not found`, {
      hint: 'check "repository" in the configuration; a repository is created by the first backup',
    });
  }

  const created: RepositoryMarker = {
    format: REPOSITORY_FORMAT,
    version: REPOSITORY_VERSION,
    id: randomUUID(),
    createdAt: new Date().toISOString(),
  };
  try {
    await store.put(REPOSITORY_FILE, Buffer.from(`${JSON.stringify(created, null, 2)}\n`), {
      ifNoneMatch: true,
      contentType: 'application/json',
    });
    return { store, repositoryId: created.id };
  } catch (error) {
    // Another run created it between our read and write: use theirs.
    if (error instanceof AlreadyExistsError) {
      const existing = await readMarker(store);
      if (existing) return { store, repositoryId: existing.id };
    }
    throw error;
  }
}

async function readMarker(store: ObjectStore): Promise<RepositoryMarker | undefined> {
  let bytes: Buffer;
  try {
    bytes = await store.get(REPOSITORY_FILE);
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }

  let marker: RepositoryMarker;
  try {
    marker = JSON.parse(bytes.toString('utf8')) as RepositoryMarker;
  } catch {
    throw new RepositoryError(`${REPOSITORY_FILE} in ${store.description} is not valid JSON`, {
      hint: 'the repository root is damaged; restore the file from another copy or point the configuration at another prefix',
    });
  }
  if (marker.format !== REPOSITORY_FORMAT || marker.version !== REPOSITORY_VERSION || typeof marker.id !== 'string') {
    throw new RepositoryError(
      `${REPOSITORY_FILE} in ${store.description} has format ${marker.format} version ${marker.version}; this hvbackup reads ${REPOSITORY_FORMAT} version ${REPOSITORY_VERSION}`,
      { hint: 'use the hvbackup version that wrote this repository' },
    );
  }
  return marker;
}
