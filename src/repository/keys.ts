/**
 * Validation and ordering of repository keys, shared by all stores so that a
 * key accepted by one store is accepted by every other.
 */
import { RepositoryError } from '../errors.js';

/**
 * S3 limits a key to 1024 bytes of UTF-8. NOTE: only the key is checked, so an
 * S3 store prefix makes the real limit smaller by the prefix's length.
 */
export const maxKeyBytes = 1024;

/**
 * Throws RepositoryError unless `key` is a relative '/'-separated path with
 * no leading '/', no empty, '.' or '..' segments, and no NUL or backslash.
 */
export function validateKey(key: string): void {
  const problem = keyProblem(key, false);
  if (problem) {
    throw new RepositoryError(`invalid object key ${JSON.stringify(key)}: ${problem}`, {
      hint: "use relative '/'-separated keys such as 'vms/web/manifest'",
    });
  }
}

/**
 * Throws RepositoryError unless `prefix` is '' or could start a valid key.
 * Its last segment is partial, so it may be empty ('vms/') or '.'.
 */
export function validatePrefix(prefix: string): void {
  if (prefix === '') return;

  const problem = keyProblem(prefix, true);
  if (problem) {
    throw new RepositoryError(`invalid list prefix ${JSON.stringify(prefix)}: ${problem}`, {
      hint: "use '' or a relative '/'-separated prefix such as 'vms/web/'",
    });
  }
}

function keyProblem(key: string, isPrefix: boolean): string | undefined {
  if (typeof key !== 'string' || key.length === 0) return 'the key is empty';
  if (Buffer.byteLength(key, 'utf8') > maxKeyBytes) return `longer than ${maxKeyBytes} bytes of UTF-8`;
  if (key.startsWith('/')) return "starts with '/'";
  if (key.includes('\0')) return 'contains a NUL character';
  if (key.includes('\\')) return 'contains a backslash';

  const segments = key.split('/');
  const last = segments.length - 1;
  for (const [index, segment] of segments.entries()) {
    // The last segment of a prefix is partial: 'a/.' may start 'a/.hidden'.
    if (isPrefix && index === last) break;

    if (segment === '') return 'contains an empty segment';
    if (segment === '.' || segment === '..') return `contains a '${segment}' segment`;
  }
  return undefined;
}

/** Orders keys by their UTF-8 bytes, which is the order S3 lists them in. */
export function compareKeys(left: string, right: string): number {
  return Buffer.compare(Buffer.from(left, 'utf8'), Buffer.from(right, 'utf8'));
}

/** Rejects a prefix for listDirectories: it must pass validatePrefix and be '' or end with '/'. */
export function validateDirectoryPrefix(prefix: string): void {
  if (prefix === '') return;
  if (!prefix.endsWith('/')) {
    throw new RepositoryError(`invalid directory prefix ${JSON.stringify(prefix)}: it does not end with '/'`, {
      hint: "use '' or a prefix that names a directory, such as 'hosts/web/'",
    });
  }
  validatePrefix(prefix);
}
