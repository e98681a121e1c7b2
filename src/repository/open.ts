/**
 * Builds an ObjectStore from the repository section of the configuration.
 */
import { LocalStore } from './local.js';
import type { ObjectStore, Retention } from './store.js';

export interface LocalRepositoryConfig {
  type: 'local';
  /** Existing directory that contains the objects. */
  path: string;
}

export interface S3RepositoryConfig {
  type: 's3';
  bucket: string;
  /** Key prefix inside the bucket. Default ''. */
  prefix?: string;
  /** Endpoint URL for S3-compatible servers such as Ceph RGW. Default: AWS S3. */
  endpoint?: string;
  /** Default 'us-east-1', which RGW also accepts. */
  region?: string;
  /** Default true when `endpoint` is set (RGW, MinIO), false for AWS S3. */
  forcePathStyle?: boolean;
  /** Retention given to every object written. The bucket must have been created with Object Lock enabled. */
  objectLock?: { mode: Retention['mode']; days: number };
}

export type RepositoryConfig = LocalRepositoryConfig | S3RepositoryConfig;

/**
 * Opens the store that `config` describes. S3 credentials come from the
 * SDK's default chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a shared
 * profile (AWS_PROFILE), or an instance role.
 */
export async function openStore(config: RepositoryConfig): Promise<ObjectStore> {
  if (config.type === 'local') return new LocalStore(config.path);

  // Loaded on demand: the AWS SDK takes about a quarter of a second to load,
  // which every run against a local repository would otherwise pay.
  const { S3Store } = await import('./s3.js');
  return new S3Store({
    bucket: config.bucket,
    prefix: config.prefix,
    endpoint: config.endpoint,
    region: config.region ?? 'us-east-1',
    forcePathStyle: config.forcePathStyle ?? config.endpoint !== undefined,
    defaultRetention: config.objectLock,
  });
}
