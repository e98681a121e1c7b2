/**
 * Batch delete for S3Store, aware of versioned buckets.
 *
 * In a bucket without versioning a DeleteObjects call removes the objects.
 * In a versioned bucket (Object Lock buckets always are) a delete without a
 * version id only adds a delete marker and keeps the data, and it succeeds
 * even for locked objects. So for versioned buckets every version of each key
 * is deleted by id. The server rejects versions under retention or legal hold
 * with AccessDenied, and those keys are reported in `failed` with the lock's
 * mode and end date.
 */
import {
  DeleteObjectsCommand,
  GetBucketVersioningCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  type ObjectIdentifier,
  type S3Client,
} from '@aws-sdk/client-s3';

import { s3Failure, type S3Context } from './s3-errors.js';
import type { DeleteResult } from './store.js';

/** DeleteObjects accepts at most 1000 entries per request. */
const maxBatch = 1000;

export interface DeleteRequest {
  client: S3Client;
  bucket: string;
  /** Store prefix ('' or ending in '/') that maps keys to full S3 keys. */
  prefix: string;
  /** Validated store keys, without the prefix. */
  keys: string[];
  context: (action: string, fullKey: string | undefined) => S3Context;
}

interface Entry {
  key: string;
  identifier: ObjectIdentifier;
}

export async function deleteKeys(request: DeleteRequest): Promise<DeleteResult> {
  const result: DeleteResult = { deleted: [], failed: [] };
  if (request.keys.length === 0) return result;

  const versioned = await isVersioned(request);
  const entries: Entry[] = [];
  for (const key of new Set(request.keys)) {
    const fullKey = request.prefix + key;
    if (!versioned) {
      entries.push({ key, identifier: { Key: fullKey } });
      continue;
    }
    // A key without versions is already gone, so it gets no entry and counts as deleted.
    for (const versionId of await listVersionIds(request, fullKey)) {
      entries.push({ key, identifier: { Key: fullKey, VersionId: versionId } });
    }
  }

  const reasons = new Map<string, string>();
  for (let start = 0; start < entries.length; start += maxBatch) {
    await deleteBatch(request, entries.slice(start, start + maxBatch), reasons);
  }

  for (const key of new Set(request.keys)) {
    const reason = reasons.get(key);
    if (reason === undefined) {
      result.deleted.push(key);
    } else {
      result.failed.push({ key, reason });
    }
  }
  return result;
}

/** Deletes one batch and records a reason for every key with a rejected entry. */
async function deleteBatch(request: DeleteRequest, batch: Entry[], reasons: Map<string, string>): Promise<void> {
  let response;
  try {
    response = await request.client.send(
      new DeleteObjectsCommand({ Bucket: request.bucket, Delete: { Objects: batch.map((entry) => entry.identifier), Quiet: true } }),
    );
  } catch (error) {
    throw s3Failure(error, request.context('deleting objects', undefined));
  }

  for (const failure of response.Errors ?? []) {
    const entry = batch.find((candidate) => candidate.identifier.Key === failure.Key && candidate.identifier.VersionId === failure.VersionId);
    const key = entry?.key ?? failure.Key?.slice(request.prefix.length);
    if (key === undefined || reasons.has(key)) continue;

    reasons.set(key, await describeFailure(request, failure.Key, failure.VersionId, failure.Code, failure.Message));
  }
}

async function describeFailure(
  request: DeleteRequest,
  fullKey: string | undefined,
  versionId: string | undefined,
  code: string | undefined,
  message: string | undefined,
): Promise<string> {
  const serverText = [code, message && message !== code ? message : undefined].filter(Boolean).join(': ') || 'unknown error';
  if (code !== 'AccessDenied' || versionId === undefined || fullKey === undefined) {
    return `the server rejected the delete (${serverText})`;
  }

  // RGW reports a locked version only as AccessDenied, so read the lock itself.
  try {
    const head = await request.client.send(new HeadObjectCommand({ Bucket: request.bucket, Key: fullKey, VersionId: versionId }));
    if (head.ObjectLockLegalHoldStatus === 'ON') {
      return `version ${versionId} is under an Object Lock legal hold (${serverText})`;
    }
    if (head.ObjectLockMode && head.ObjectLockRetainUntilDate && head.ObjectLockRetainUntilDate > new Date()) {
      return `version ${versionId} is locked by Object Lock ${head.ObjectLockMode} retention until ${head.ObjectLockRetainUntilDate.toISOString()} (${serverText})`;
    }
  } catch {
    // The reason below still names both possible causes.
  }
  return `access denied for version ${versionId}: it may be under Object Lock retention or legal hold, or the credentials lack s3:DeleteObjectVersion (${serverText})`;
}

async function isVersioned(request: DeleteRequest): Promise<boolean> {
  try {
    const response = await request.client.send(new GetBucketVersioningCommand({ Bucket: request.bucket }));
    return response.Status === 'Enabled' || response.Status === 'Suspended';
  } catch (error) {
    throw s3Failure(error, request.context('reading the versioning state', undefined));
  }
}

/** Returns the ids of all versions and delete markers of exactly `fullKey`. */
async function listVersionIds(request: DeleteRequest, fullKey: string): Promise<string[]> {
  const ids: string[] = [];
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;

  do {
    let page;
    try {
      page = await request.client.send(
        new ListObjectVersionsCommand({ Bucket: request.bucket, Prefix: fullKey, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker }),
      );
    } catch (error) {
      throw s3Failure(error, request.context('listing versions of', fullKey));
    }

    for (const version of [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])]) {
      // The prefix also matches longer keys such as 'a/b1' for 'a/b'.
      if (version.Key === fullKey && version.VersionId) ids.push(version.VersionId);
    }

    keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
    versionIdMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
  } while (keyMarker);

  return ids;
}
