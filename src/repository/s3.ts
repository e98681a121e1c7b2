/**
 * An ObjectStore in an S3 bucket, tested against Ceph RGW 16.2 with
 * @aws-sdk/client-s3 3.1178.
 *
 * The server checks the bytes of every put against the signed payload hash
 * (`x-amz-content-sha256`, HTTP 400 XAmzContentSHA256Mismatch). The SDK
 * hashes the body for it, unless the caller passes the SHA-256 it already
 * has, as the segment upload does. Puts without that hash, and puts with
 * Object Lock retention, for which S3 demands it, also carry Content-MD5
 * (HTTP 400 BadDigest). Puts with `ifNoneMatch` send `If-None-Match: *`,
 * so the server rejects an existing key (HTTP 412). The SDK's own
 * checksums are limited to requests that require them because RGW 16.2
 * rejects stream uploads that carry the SDK's default CRC32 checksum (HTTP
 * 411 MissingContentLength). docs/repository.md describes the settings in
 * more detail.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';

import {
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type ListObjectsV2CommandOutput,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';

import { AlreadyExistsError, NotFoundError, RepositoryError } from '../errors.js';
import { validateDirectoryPrefix, validateKey, validatePrefix } from './keys.js';
import { deleteKeys } from './s3-delete.js';
import { attemptCount, bucketNotFound, errorName, httpStatus, isNetworkError, s3Failure, type S3Context } from './s3-errors.js';
import type { DeleteResult, GetOptions, ObjectInfo, ObjectStore, PutOptions, Retention } from './store.js';

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket, such as 'hosts/a'. A missing trailing '/' is added. Default ''. */
  prefix?: string;
  /** Endpoint URL such as 'http://127.0.0.1:7480'. Default: AWS S3 for `region`. */
  endpoint?: string;
  /** RGW accepts 'us-east-1' or 'default' unless its zonegroup is named otherwise. */
  region: string;
  /** Use http://host/bucket/key addressing instead of http://bucket.host/key. RGW needs true. */
  forcePathStyle: boolean;
  /** Static credentials. Without them the SDK's default chain is used (environment, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Attempts per request with the SDK's standard retry mode (exponential backoff). Default 5. */
  maxAttempts?: number;
  /**
   * Milliseconds a request may wait on a socket that carries no data before
   * it fails and is retried. This bounds a stalled server without capping
   * the duration of a large transfer that keeps moving. Default 30000.
   */
  requestTimeoutMs?: number;
  /** Milliseconds to wait for the TCP connection. Default 5000. */
  connectionTimeoutMs?: number;
  /** Retention applied to puts that set none themselves, from the repository's objectLock setting. */
  defaultRetention?: { mode: Retention['mode']; days: number };
  /** Keys per ListObjectsV2 page, at most 1000. Only tests that exercise pagination need to lower it. */
  listPageSize?: number;
}

const defaultMaxAttempts = 5;
const defaultRequestTimeoutMs = 30_000;
const defaultConnectionTimeoutMs = 5_000;
const maxListPageSize = 1000;
const dayMs = 24 * 60 * 60 * 1000;

export class S3Store implements ObjectStore {
  readonly description: string;
  readonly bucket: string;
  /** '' or a prefix ending in '/'. */
  readonly prefix: string;

  private readonly client: S3Client;
  private readonly endpointText: string;
  private readonly defaultRetention: S3StoreOptions['defaultRetention'];
  private readonly listPageSize: number;
  private readonly maxAttempts: number;
  private bucketChecked: Promise<void> | undefined;

  constructor(options: S3StoreOptions) {
    this.bucket = options.bucket;
    this.prefix = normalizePrefix(options.prefix ?? '');
    this.endpointText = options.endpoint ? redactUserInfo(options.endpoint) : `AWS S3 region ${options.region}`;
    this.description = `s3://${this.bucket}/${this.prefix} at ${this.endpointText}`;
    this.defaultRetention = options.defaultRetention;
    this.listPageSize = Math.min(options.listPageSize ?? maxListPageSize, maxListPageSize);
    this.maxAttempts = options.maxAttempts ?? defaultMaxAttempts;

    // Lenient on purpose: RGW and old AWS buckets may contain capitals or underscores.
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{2,254}$/.test(this.bucket)) {
      throw new RepositoryError(`invalid S3 bucket name ${JSON.stringify(this.bucket)}`, {
        hint: 'a bucket name has at least 3 characters: letters, digits, dots, hyphens and underscores',
      });
    }

    const days = options.defaultRetention?.days;
    if (days !== undefined && !(Number.isInteger(days) && days > 0)) {
      throw new RepositoryError(`invalid Object Lock retention of ${days} days for ${this.description}`, {
        hint: 'set objectLock.days to a whole number of days, 1 or more',
      });
    }

    // NOTE: the SDK warns on Node.js 20 that its releases after January 2027
    // need Node.js 22. The warning is several lines of plain text in the JSON
    // log on stderr, and an operator cannot act on it, because package-lock.json
    // pins a release that supports Node.js 20. Moving to Node.js 22, and
    // raising "engines" in package.json with it, is the project's step.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.client = new S3Client({
      endpoint: options.endpoint,
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      credentials: options.credentials,
      maxAttempts: this.maxAttempts,
      retryMode: 'standard',
      // With the SDK's default CRC32 checksums, RGW 16.2 rejects stream uploads with HTTP 411.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: new NodeHttpHandler({
        connectionTimeout: options.connectionTimeoutMs ?? defaultConnectionTimeoutMs,
        socketTimeout: options.requestTimeoutMs ?? defaultRequestTimeoutMs,
      }),
    });
  }

  async put(key: string, body: Buffer | Uint8Array, options: PutOptions = {}): Promise<void> {
    validateKey(key);
    const fullKey = this.prefix + key;
    const retention = options.retention ?? this.retentionFromDefault();
    const payloadHash = payloadSha256(key, options.sha256);

    const input: PutObjectCommandInput = {
      Bucket: this.bucket,
      Key: fullKey,
      Body: body,
      ContentLength: body.byteLength,
      ContentType: options.contentType ?? 'application/octet-stream',
    };
    if (options.ifNoneMatch) input.IfNoneMatch = '*';
    // S3 demands Content-MD5 or a flexible checksum on every put with Object
    // Lock retention, whatever else protects it, and RGW 16.2 accepts the first.
    if (!payloadHash || retention) input.ContentMD5 = md5(body).toString('base64');
    if (retention) {
      input.ObjectLockMode = retention.mode;
      input.ObjectLockRetainUntilDate = retention.until;
    }

    const command = new PutObjectCommand(input);
    if (payloadHash) {
      // The signer uses a payload hash that is already in the headers instead
      // of hashing the body. The build step runs before the signing step.
      command.middlewareStack.add(
        (next) => (args) => {
          (args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256'] = payloadHash;
          return next(args);
        },
        { step: 'build', name: 'hvbackupPayloadSha256' },
      );
    }

    const action = retention ? 'writing with retention' : 'writing';
    try {
      await this.client.send(command, { abortSignal: options.signal });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      if (httpStatus(error) === 412 && options.ifNoneMatch) {
        if (await this.isOwnRetriedWrite(error, fullKey, body)) return;
        throw new AlreadyExistsError(key, { cause: error });
      }
      throw s3Failure(error, this.context(action, fullKey));
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Buffer> {
    validateKey(key);
    const fullKey = this.prefix + key;

    let bytes: Uint8Array | undefined;
    let expectedLength: number | undefined;
    // The SDK retries a request only until the response headers arrive, so a
    // connection cut or stalled while the body streams is retried here, up to
    // the same number of attempts.
    for (let attempt = 1; bytes === undefined; attempt += 1) {
      const response = await this.sendGet(key, fullKey, options.signal);

      expectedLength = response.ContentLength;
      try {
        if (!response.Body) throw new Error('response has no body');
        bytes = await response.Body.transformToByteArray();
      } catch (error) {
        if (options.signal?.aborted) throw error;
        if (!isNetworkError(error) || attempt >= this.maxAttempts) throw s3Failure(error, this.context('reading', fullKey));
      }
    }

    if (expectedLength !== undefined && bytes.byteLength !== expectedLength) throw this.truncated(fullKey, bytes.byteLength, expectedLength);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  async getInto(key: string, target: Uint8Array, options: GetOptions = {}): Promise<number> {
    validateKey(key);
    const fullKey = this.prefix + key;

    // As in get(), a body cut or stalled while it streams is read again from the start.
    for (let attempt = 1; ; attempt += 1) {
      const response = await this.sendGet(key, fullKey, options.signal);

      const expectedLength = response.ContentLength;
      const body = response.Body as (Readable & { destroy(): void }) | undefined;
      if (expectedLength !== undefined && expectedLength > target.byteLength) {
        // The caller's size check fails on the length alone, so the body is not needed.
        body?.destroy();
        return expectedLength;
      }

      let received: number;
      try {
        if (!body) throw new Error('response has no body');
        received = await readBodyInto(body, target);
      } catch (error) {
        if (options.signal?.aborted) throw error;
        if (!isNetworkError(error) || attempt >= this.maxAttempts) throw s3Failure(error, this.context('reading', fullKey));
        continue;
      }

      if (expectedLength !== undefined && received !== expectedLength) throw this.truncated(fullKey, received, expectedLength);
      return received;
    }
  }

  /** Sends GetObject for `fullKey`; a missing object raises NotFoundError for `key`. */
  private async sendGet(key: string, fullKey: string, signal: AbortSignal | undefined) {
    try {
      return await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: fullKey }), { abortSignal: signal });
    } catch (error) {
      if (signal?.aborted) throw error;
      if (errorName(error) === 'NoSuchKey') throw new NotFoundError(key, { cause: error });
      throw s3Failure(error, this.context('reading', fullKey));
    }
  }

  private truncated(fullKey: string, received: number, expectedLength: number): RepositoryError {
    return new RepositoryError(`reading s3://${this.bucket}/${fullKey} at ${this.endpointText} returned ${received} bytes, but Content-Length was ${expectedLength}`, {
      hint: 'the connection was cut or a proxy truncated the response; retry',
    });
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    validateKey(key);
    const fullKey = this.prefix + key;

    try {
      const response = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: fullKey }));
      return { key, size: response.ContentLength ?? 0, lastModified: response.LastModified ?? new Date(0) };
    } catch (error) {
      if (httpStatus(error) !== 404) throw s3Failure(error, this.context('reading metadata of', fullKey));
    }

    // HEAD responses have no body, so a missing bucket also looks like a plain 404.
    await this.checkBucket();
    return undefined;
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    for await (const page of this.listPages(this.prefix + prefix)) {
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        yield { key: object.Key.slice(this.prefix.length), size: object.Size ?? 0, lastModified: object.LastModified ?? new Date(0) };
      }
    }
  }

  async *listDirectories(prefix: string): AsyncIterable<string> {
    validateDirectoryPrefix(prefix);
    const fullPrefix = this.prefix + prefix;
    for await (const page of this.listPages(fullPrefix, '/')) {
      // Each common prefix is fullPrefix, one segment, then the delimiter.
      for (const common of page.CommonPrefixes ?? []) {
        if (common.Prefix !== undefined) yield common.Prefix.slice(fullPrefix.length, -1);
      }
    }
  }

  /** Yields the pages of a ListObjectsV2 listing of `fullPrefix`, grouped by `delimiter` when given. */
  private async *listPages(fullPrefix: string, delimiter?: string): AsyncIterable<ListObjectsV2CommandOutput> {
    let continuationToken: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: fullPrefix, Delimiter: delimiter, ContinuationToken: continuationToken, MaxKeys: this.listPageSize }),
        );
      } catch (error) {
        throw s3Failure(error, this.context('listing', fullPrefix));
      }
      yield page;
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (continuationToken);
  }

  async delete(keys: string[]): Promise<DeleteResult> {
    for (const key of keys) validateKey(key);
    return deleteKeys({
      client: this.client,
      bucket: this.bucket,
      prefix: this.prefix,
      keys,
      context: (action, fullKey) => this.context(action, fullKey),
    });
  }

  /** Closes the HTTP connections. The store cannot be used afterwards. */
  destroy(): void {
    this.client.destroy();
  }

  private retentionFromDefault(): Retention | undefined {
    if (!this.defaultRetention) return undefined;
    return { mode: this.defaultRetention.mode, until: new Date(Date.now() + this.defaultRetention.days * dayMs) };
  }

  /**
   * Reports whether a 412 came from this put's own earlier attempt: the SDK
   * retries a put whose response was lost, and the retry then finds the
   * object that the first attempt wrote. The single-part ETag is the MD5.
   */
  private async isOwnRetriedWrite(error: unknown, fullKey: string, body: Buffer | Uint8Array): Promise<boolean> {
    if (attemptCount(error) < 2) return false;
    try {
      const response = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: fullKey }));
      return response.ETag?.replaceAll('"', '') === md5(body).toString('hex');
    } catch {
      return false;
    }
  }

  /** Throws RepositoryError when the bucket does not exist. Checked once per store. */
  private async checkBucket(): Promise<void> {
    this.bucketChecked ??= this.client.send(new HeadBucketCommand({ Bucket: this.bucket })).then(
      () => undefined,
      (error: unknown) => {
        this.bucketChecked = undefined;
        const context = this.context('checking for objects', undefined);
        throw httpStatus(error) === 404 ? bucketNotFound(error, context) : s3Failure(error, context);
      },
    );
    return this.bucketChecked;
  }

  private context(action: string, key: string | undefined): S3Context {
    return { action, bucket: this.bucket, key, endpoint: this.endpointText };
  }
}

/**
 * Copies a response body into `target` and returns the bytes received. It
 * stops reading, and returns a number larger than `target.byteLength`, as
 * soon as the body has more bytes than `target` holds.
 */
async function readBodyInto(body: Readable, target: Uint8Array): Promise<number> {
  let received = 0;
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    if (received + chunk.byteLength > target.byteLength) {
      body.destroy();
      return received + chunk.byteLength;
    }
    target.set(chunk, received);
    received += chunk.byteLength;
  }
  return received;
}

function md5(body: Buffer | Uint8Array): Buffer {
  return createHash('md5').update(body).digest();
}

/** Returns the caller's SHA-256 of a put body as the header value, after checking its form. */
function payloadSha256(key: string, sha256: string | undefined): string | undefined {
  if (sha256 === undefined) return undefined;
  if (!/^[0-9a-f]{64}$/.test(sha256)) {
    throw new RepositoryError(`invalid SHA-256 ${JSON.stringify(sha256)} given for the put of ${key}`, {
      hint: 'pass the digest as 64 lowercase hexadecimal digits, or leave it out',
    });
  }
  return sha256;
}

function normalizePrefix(prefix: string): string {
  if (prefix === '') return '';

  const trimmed = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  try {
    validateKey(trimmed);
  } catch (error) {
    throw new RepositoryError(`invalid S3 key prefix ${JSON.stringify(prefix)}: ${(error as Error).message}`, {
      cause: error,
      hint: "use a relative '/'-separated prefix such as 'hosts/a'",
    });
  }
  return `${trimmed}/`;
}

/** Removes user:password@ from an endpoint URL so it can appear in messages. */
function redactUserInfo(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    url.username = '';
    url.password = '';
    return url.toString().replace(/\/$/, '');
  } catch {
    throw new RepositoryError(`invalid S3 endpoint URL ${JSON.stringify(endpoint.replace(/\/\/[^@/]*@/, '//'))}`, {
      hint: "use a URL such as 'http://127.0.0.1:7480' or 'https://s3.example.com'",
    });
  }
}
