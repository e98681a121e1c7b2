/**
 * Maps AWS SDK and network errors to RepositoryError messages that name the
 * bucket, key, endpoint and HTTP status, and give the fix.
 *
 * Ceph RGW 16.2 sends error bodies that the SDK reads as message
 * 'UnknownError', but the HTTP status and the error name (NoSuchBucket,
 * AccessDenied, ...) are right, so the mapping uses only those two.
 * Messages never contain credentials: they are built from names, statuses and
 * the endpoint URL, which the store strips of any user info.
 */
import { RepositoryError } from '../errors.js';

/** The failed request: its action as a verb phrase such as 'reading', and its target. */
export interface S3Context {
  action: string;
  bucket: string;
  /** Full object key including the store prefix, if the request had one. */
  key?: string;
  /** Endpoint for messages, for example 'http://127.0.0.1:7480' or 'AWS S3 region eu-west-1'. */
  endpoint: string;
}

/** Node network error codes that mean the endpoint could not be reached or stopped responding. */
const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE']);

export function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

export function errorName(error: unknown): string {
  if (error instanceof Error) return error.name;
  return 'Error';
}

/** Returns how many attempts the SDK made, as recorded by its retry middleware. */
export function attemptCount(error: unknown): number {
  return (error as { $metadata?: { attempts?: number } } | undefined)?.$metadata?.attempts ?? 1;
}

export function isNetworkError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;

  const code = (error as NodeJS.ErrnoException).code;
  if (code && networkCodes.has(code)) return true;

  const name = errorName(error);
  return name === 'TimeoutError' || name === 'RequestTimeout';
}

/** Builds the RepositoryError for a failed S3 request. */
export function s3Failure(error: unknown, context: S3Context): RepositoryError {
  const target = describeTarget(context);
  const where = `${target} at ${context.endpoint}`;

  if (isNetworkError(error)) {
    return new RepositoryError(`S3 endpoint ${context.endpoint} unreachable while ${context.action} ${target}: ${networkDetail(error)}`, {
      cause: error,
      hint: 'check the endpoint URL and port, that the S3 server is running, and any firewall or proxy in between',
    });
  }

  const status = httpStatus(error);
  const name = errorName(error);
  const detail = statusDetail(error, status, name);

  if (name === 'CredentialsProviderError') {
    return new RepositoryError(`no S3 credentials found for ${context.action} ${where}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
      hint: 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a shared credentials file',
    });
  }

  if (name === 'NoSuchBucket') return bucketNotFound(error, context);

  if (status === 401 || status === 403) {
    return new RepositoryError(`access denied while ${context.action} ${where} (${detail})`, {
      cause: error,
      hint: credentialHint(name, context.bucket),
    });
  }

  if (name === 'BadDigest' || name === 'InvalidDigest') {
    return new RepositoryError(`${where} rejected the upload because its Content-MD5 did not match the received bytes (${detail})`, {
      cause: error,
      hint: 'the data changed in transit; retry, and check proxies or network hardware between this host and the endpoint',
    });
  }

  if (name === 'XAmzContentSHA256Mismatch') {
    return new RepositoryError(`${where} rejected the upload because its SHA-256 did not match the received bytes (${detail})`, {
      cause: error,
      hint: 'the data changed in transit, or in memory before it was sent; retry, and check proxies or network hardware between this host and the endpoint',
    });
  }

  if (name === 'InvalidRequest' && context.action.includes('retention')) {
    return new RepositoryError(`${where} rejected the Object Lock retention (${detail})`, {
      cause: error,
      hint: `Object Lock must be enabled when the bucket is created; create a new bucket with Object Lock or remove the objectLock setting`,
    });
  }

  if (status !== undefined && status >= 500) {
    return new RepositoryError(`S3 server error while ${context.action} ${where} (${detail}), after ${attemptCount(error)} attempts`, {
      cause: error,
      hint: 'the server failed or is overloaded; retry later and check the server logs',
    });
  }

  return new RepositoryError(`${context.action} ${where} failed (${detail})`, {
    cause: error,
    hint: 'check the endpoint, bucket, credentials and region in the repository configuration',
  });
}

/** Builds the error for a bucket that does not exist. */
export function bucketNotFound(error: unknown, context: S3Context): RepositoryError {
  const detail = statusDetail(error, httpStatus(error), errorName(error));
  return new RepositoryError(`bucket ${context.bucket} not found at ${context.endpoint} while ${context.action} ${describeTarget(context)} (${detail})`, {
    cause: error,
    hint: `create the bucket ${context.bucket}, or fix the bucket name in the repository configuration`,
  });
}

/** Names the object, or the bucket for requests without a key, after the action verb. */
function describeTarget(context: S3Context): string {
  return context.key === undefined ? `in bucket ${context.bucket}` : `s3://${context.bucket}/${context.key}`;
}

function statusDetail(error: unknown, status: number | undefined, name: string): string {
  const parts = [status === undefined ? 'no HTTP status' : `HTTP ${status}`, name];
  const message = error instanceof Error ? error.message : String(error);
  // RGW bodies arrive as 'UnknownError'; repeating that adds nothing.
  if (message && message !== 'UnknownError' && message !== name) parts.push(message);
  return parts.join(' ');
}

function networkDetail(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const message = error instanceof Error ? error.message : String(error);
  const attempts = attemptCount(error);
  const suffix = attempts > 1 ? ` (after ${attempts} attempts)` : '';
  return `${code && !message.includes(code) ? `${code} ` : ''}${message}${suffix}`;
}

function credentialHint(name: string, bucket: string): string {
  if (name === 'InvalidAccessKeyId') return 'the access key is not known to the server; check the configured access key';
  if (name === 'SignatureDoesNotMatch') return 'the secret key does not match the access key; check the configured secret key';
  return `check the access key and secret key, and that this user may access bucket ${bucket}`;
}
