/**
 * The object-store contract that every repository backend implements. The
 * backup and restore code uses only this interface, and one test suite
 * (test/repository/store-contract.ts) runs against every implementation.
 *
 * Keys are relative, '/'-separated paths such as `vms/web/2024/manifest`.
 * Each store validates them (see keys.ts) and prepends its own prefix.
 */

/** Metadata of one stored object. */
export interface ObjectInfo {
  key: string;
  /** Size in bytes. */
  size: number;
  lastModified: Date;
}

/** Retention that the store enforces on a new object (S3 Object Lock). */
export interface Retention {
  /** GOVERNANCE can be lifted by a user with a bypass permission, COMPLIANCE by nobody. */
  mode: 'GOVERNANCE' | 'COMPLIANCE';
  until: Date;
}

export interface PutOptions {
  /** Write only if the key does not exist yet; otherwise throw AlreadyExistsError and keep the old object. */
  ifNoneMatch?: boolean;
  contentType?: string;
  signal?: AbortSignal;
  /** Object Lock retention. Stores that cannot enforce it reject the put. */
  retention?: Retention;
  /**
   * SHA-256 of `body` in lowercase hex, when the caller has it already. A
   * store may send it so that the server checks the bytes it received,
   * instead of hashing the body once more. A wrong value fails the put.
   */
  sha256?: string;
}

export interface GetOptions {
  signal?: AbortSignal;
}

/** Outcome of a batch delete: every requested key is in exactly one list. */
export interface DeleteResult {
  deleted: string[];
  failed: { key: string; reason: string }[];
}

export interface ObjectStore {
  /** Location of the objects for messages, such as 's3://bucket/prefix/ at http://host:port'. Never contains credentials. */
  readonly description: string;

  /**
   * Stores `body` under `key` so that readers see either the old object or
   * the whole new one, never a part. Throws AlreadyExistsError when
   * `ifNoneMatch` is set and the key exists, RepositoryError on other faults.
   */
  put(key: string, body: Buffer | Uint8Array, options?: PutOptions): Promise<void>;

  /** Returns the whole object. Throws NotFoundError when the key does not exist. */
  get(key: string, options?: GetOptions): Promise<Buffer>;

  /**
   * Reads the object into `target` from its first byte and returns the
   * object's size in bytes. When the object is larger than `target`, only
   * `target.byteLength` bytes are read, and the result is a number larger
   * than `target.byteLength`. This lets a caller that knows the expected
   * size reuse one buffer for many objects. Bytes of `target` past the
   * object's end keep their old content. Throws NotFoundError when the key
   * does not exist.
   */
  getInto(key: string, target: Uint8Array, options?: GetOptions): Promise<number>;

  /** Returns the object's metadata, or undefined when the key does not exist. */
  head(key: string): Promise<ObjectInfo | undefined>;

  /**
   * Yields every object whose key starts with `prefix`, at any depth, in
   * ascending order of the keys' UTF-8 bytes (the order S3 uses). `prefix` is
   * a plain string match: 'a/b' matches 'a/b/c' and 'a/bc'. Use '' for all keys.
   */
  list(prefix: string): AsyncIterable<ObjectInfo>;

  /**
   * Yields the directories directly below `prefix`, which must be '' or end
   * with '/': each distinct key segment that follows `prefix` and is itself
   * followed by '/', once, in ascending order. On S3 this takes one
   * delimiter listing instead of a listing of every object below. A local store
   * may also yield a directory whose objects were all deleted.
   */
  listDirectories(prefix: string): AsyncIterable<string>;

  /**
   * Deletes the keys. A key that does not exist counts as deleted, as in S3.
   * Objects that the store refuses to delete (Object Lock retention, missing
   * permission) are reported in `failed` with the reason instead of throwing.
   * Throws RepositoryError only when the store cannot be reached at all.
   */
  delete(keys: string[]): Promise<DeleteResult>;
}
