/**
 * An ObjectStore in a local directory: each key is a file below the root.
 *
 * Writes go to a temporary file in the target directory, are fsynced, and
 * then appear under their final name in one step, by link() when the key
 * must not exist yet (atomic, fails with EEXIST) or by rename() otherwise.
 * The directory is fsynced afterwards so the new name survives a crash.
 *
 * Limits: the root directory must exist (it is the analogue of an S3 bucket).
 * Empty directories stay behind after delete(). A key cannot be both an object
 * and a directory ('a' and 'a/b'), which S3 allows. Retention is rejected
 * because a directory cannot enforce it.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { AlreadyExistsError, NotFoundError, RepositoryError } from '../errors.js';
import { compareKeys, validateDirectoryPrefix, validateKey, validatePrefix } from './keys.js';
import type { DeleteResult, GetOptions, ObjectInfo, ObjectStore, PutOptions } from './store.js';

const fileMode = 0o640;
const directoryMode = 0o750;

/** Names of in-progress writes start with this, so list() skips them and keys may not use it. */
const temporaryPrefix = '.hvbackup-tmp-';

export class LocalStore implements ObjectStore {
  readonly root: string;
  readonly description: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.description = `local directory ${this.root}`;
  }

  async put(key: string, body: Buffer | Uint8Array, options: PutOptions = {}): Promise<void> {
    const path = this.pathOf(key);
    options.signal?.throwIfAborted();

    if (options.retention) {
      throw new RepositoryError(`cannot store ${key} with ${options.retention.mode} retention in ${this.description}: local directories do not support Object Lock`, {
        hint: 'use an S3 repository with Object Lock, or remove the retention setting',
      });
    }

    const directory = dirname(path);
    await this.createDirectory(directory, key);

    const temporaryPath = join(directory, `${temporaryPrefix}${basename(path)}-${randomBytes(6).toString('hex')}`);
    try {
      await writeDurably(temporaryPath, body);
      options.signal?.throwIfAborted();

      if (options.ifNoneMatch) {
        await this.linkNew(temporaryPath, path, key);
        await unlink(temporaryPath);
      } else {
        await rename(temporaryPath, path);
      }
    } catch (error) {
      await unlink(temporaryPath).catch(() => undefined);
      if (error instanceof RepositoryError || options.signal?.aborted) throw error;
      throw this.failure(`writing ${key}`, error);
    }

    await syncDirectory(directory).catch((error: unknown) => {
      throw this.failure(`syncing directory ${directory} after writing ${key}`, error);
    });
  }

  async get(key: string, options: GetOptions = {}): Promise<Buffer> {
    const path = this.pathOf(key);
    options.signal?.throwIfAborted();

    try {
      return await readFile(path, { signal: options.signal });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      if (isMissing(error) || hasCode(error, 'EISDIR')) {
        await this.requireRoot();
        throw new NotFoundError(key, { cause: error });
      }
      throw this.failure(`reading ${key}`, error);
    }
  }

  async getInto(key: string, target: Uint8Array, options: GetOptions = {}): Promise<number> {
    const path = this.pathOf(key);
    options.signal?.throwIfAborted();

    let handle;
    try {
      handle = await open(path, constants.O_RDONLY);
    } catch (error) {
      if (isMissing(error)) {
        await this.requireRoot();
        throw new NotFoundError(key, { cause: error });
      }
      throw this.failure(`reading ${key}`, error);
    }

    try {
      return await readIntoBuffer(handle, target, options.signal);
    } catch (error) {
      if (options.signal?.aborted) throw error;
      if (hasCode(error, 'EISDIR')) throw new NotFoundError(key, { cause: error });
      throw this.failure(`reading ${key}`, error);
    } finally {
      await handle.close();
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const path = this.pathOf(key);

    try {
      const stats = await stat(path);
      if (!stats.isFile()) return undefined;
      return { key, size: stats.size, lastModified: stats.mtime };
    } catch (error) {
      if (isMissing(error)) {
        await this.requireRoot();
        return undefined;
      }
      throw this.failure(`reading metadata of ${key}`, error);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    await this.requireRoot();

    // Only the directory named by the prefix's complete segments can contain matches.
    const slash = prefix.lastIndexOf('/');
    const start = slash < 0 ? '' : prefix.slice(0, slash);
    const keys = (await this.walk(start)).filter((key) => key.startsWith(prefix));
    keys.sort(compareKeys);

    for (const key of keys) {
      const info = await this.head(key);
      // A key deleted since the directory was read is skipped, not an error.
      if (info) yield info;
    }
  }

  async *listDirectories(prefix: string): AsyncIterable<string> {
    validateDirectoryPrefix(prefix);
    await this.requireRoot();

    const relative = prefix.slice(0, -1);
    let entries;
    try {
      entries = await readdir(join(this.root, ...(relative === '' ? [] : relative.split('/'))), { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return;
      throw this.failure(`listing directory ${relative === '' ? '.' : relative}`, error);
    }

    const names = entries.filter((entry) => entry.isDirectory() && !entry.name.startsWith(temporaryPrefix)).map((entry) => entry.name);
    yield* names.sort(compareKeys);
  }

  async delete(keys: string[]): Promise<DeleteResult> {
    const result: DeleteResult = { deleted: [], failed: [] };
    const uniqueKeys = [...new Set(keys)];
    const paths = uniqueKeys.map((key) => this.pathOf(key));
    await this.requireRoot();

    for (const [index, key] of uniqueKeys.entries()) {
      try {
        await unlink(paths[index]);
        result.deleted.push(key);
      } catch (error) {
        if (isMissing(error)) {
          result.deleted.push(key);
        } else {
          result.failed.push({ key, reason: errorText(error) });
        }
      }
    }
    return result;
  }

  /** Maps a validated key to its file path below the root. */
  private pathOf(key: string): string {
    validateKey(key);

    const segments = key.split('/');
    const reserved = segments.find((segment) => segment.startsWith(temporaryPrefix));
    if (reserved) {
      throw new RepositoryError(`invalid object key ${JSON.stringify(key)}: segment ${reserved} starts with ${temporaryPrefix}, which local stores reserve for unfinished writes`, {
        hint: `choose a key without segments starting with ${temporaryPrefix}`,
      });
    }
    return join(this.root, ...segments);
  }

  /** Returns keys of all regular files below `relative` (a '/'-separated directory, '' for the root). */
  private async walk(relative: string): Promise<string[]> {
    let entries;
    try {
      entries = await readdir(join(this.root, ...(relative === '' ? [] : relative.split('/'))), { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return [];
      throw this.failure(`listing directory ${relative === '' ? '.' : relative}`, error);
    }

    const keys: string[] = [];
    for (const entry of entries) {
      if (entry.name.startsWith(temporaryPrefix)) continue;

      const key = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) {
        keys.push(...(await this.walk(key)));
      } else if (entry.isFile()) {
        keys.push(key);
      }
    }
    return keys;
  }

  private async createDirectory(directory: string, key: string): Promise<void> {
    await this.requireRoot();
    try {
      await mkdir(directory, { recursive: true, mode: directoryMode });
    } catch (recursiveError) {
      let error = recursiveError;
      if (hasCode(recursiveError, 'ENOENT')) {
        // Node.js 20's recursive mkdir reports ENOENT on a read-only file
        // system; one level at a time reports the real errno (EROFS, EACCES).
        try {
          await this.createEachLevel(directory);
          return;
        } catch (levelError) {
          error = levelError;
        }
      }

      if (hasCode(error, 'ENOTDIR') || hasCode(error, 'EEXIST')) {
        throw new RepositoryError(`cannot store ${key} in ${this.description}: a parent of ${directory} is a file, not a directory`, {
          cause: error,
          hint: 'a local store cannot hold both a key and keys below it; choose another key',
        });
      }
      throw this.failure(`creating directory ${directory} for ${key}`, error);
    }
  }

  /** Creates the directories from the root down to `directory`, one level at a time. */
  private async createEachLevel(directory: string): Promise<void> {
    const levels = directory.slice(this.root.length).split('/').filter((level) => level !== '');
    let path = this.root;
    for (const level of levels) {
      path = join(path, level);
      try {
        await mkdir(path, { mode: directoryMode });
      } catch (error) {
        if (!hasCode(error, 'EEXIST')) throw error;
      }
    }
  }

  private async linkNew(temporaryPath: string, path: string, key: string): Promise<void> {
    try {
      await link(temporaryPath, path);
    } catch (error) {
      if (hasCode(error, 'EEXIST')) throw new AlreadyExistsError(key, { cause: error });
      throw error;
    }
  }

  /** Throws RepositoryError when the root directory is missing or not a directory. */
  private async requireRoot(): Promise<void> {
    try {
      const stats = await lstat(this.root);
      if (stats.isDirectory()) return;
    } catch (error) {
      if (!isMissing(error)) throw this.failure('reading the repository directory', error);
    }
    throw new RepositoryError(`repository directory ${this.root} does not exist or is not a directory`, {
      hint: `create it with mkdir -m 0750 ${this.root}, or check the configured path`,
    });
  }

  private failure(action: string, error: unknown): RepositoryError {
    return new RepositoryError(`${action} in ${this.description} failed: ${errorText(error)}`, {
      cause: error,
      hint: 'check that the directory exists, is writable and has free space',
    });
  }
}

/** Writes a new file (never an existing one) and fsyncs it before closing. */
async function writeDurably(path: string, body: Buffer | Uint8Array): Promise<void> {
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, fileMode);
  try {
    await handle.writeFile(body);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Chunk size of reads into a caller's buffer: large enough for few system calls, small enough to notice an abort soon. */
const READ_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * Reads the file from its start into `target` until the file ends or
 * `target` is full. Returns the bytes read, or a larger number when the
 * file has more bytes than `target` holds.
 */
async function readIntoBuffer(handle: FileHandle, target: Uint8Array, signal: AbortSignal | undefined): Promise<number> {
  let filled = 0;
  while (filled < target.byteLength) {
    signal?.throwIfAborted();
    const { bytesRead } = await handle.read(target, filled, Math.min(READ_CHUNK_BYTES, target.byteLength - filled), filled);
    if (bytesRead === 0) return filled;
    filled += bytesRead;
  }

  const probe = await handle.read(Buffer.alloc(1), 0, 1, filled);
  if (probe.bytesRead === 0) return filled;
  const { size } = await handle.stat();
  return Math.max(size, filled + 1);
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function hasCode(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as NodeJS.ErrnoException).code === code;
}

function isMissing(error: unknown): boolean {
  return hasCode(error, 'ENOENT') || hasCode(error, 'ENOTDIR');
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
