/**
 * Everything a backup run needs, set up once per run: the store, the host
 * signing key, the recipients (checked for the packet versions they select),
 * the worker pool and the libvirt connection.
 */
import { availableParallelism } from 'node:os';

import type { PrivateKey, PublicKey } from 'openpgp';

import type { Config } from '../config/load.js';
import { requireSetting } from '../config/load.js';
import {
  keyInfo,
  readPublicKeyFile,
  readSecretKeyFile,
  SegmentEncryptor,
} from '../crypto/index.js';
import { AlreadyExistsError, RepositoryError } from '../errors.js';
import { Domains } from '../libvirt/domain.js';
import { RECONNECT_MS, Virsh } from '../libvirt/virsh.js';
import type { Logger } from '../log/logger.js';
import type { Progress } from '../log/progress.js';
import { publicKeyKey } from '../manifest/layout.js';
import { openRepository } from '../repository/repository.js';
import type { ObjectStore, PutOptions } from '../repository/store.js';
import { RateLimiter } from '../util/rate-limiter.js';

export interface BackupContext {
  config: Config;
  logger: Logger;
  progress?: Progress;
  signal: AbortSignal;
  store: ObjectStore;
  repositoryId: string;
  virsh: Virsh;
  domains: Domains;
  signingKey: PrivateKey;
  signerFingerprint: string;
  recipientFingerprints: string[];
  seipdVersion: 1 | 2;
  encryptor: SegmentEncryptor;
  /** Paces segment uploads when a bandwidth limit is configured. */
  limiter?: RateLimiter;
  /** Segments encrypted or uploading at once. */
  segmentsInFlight: number;
  /** Object Lock retention for objects written now, when the repository uses it. */
  retention(): PutOptions['retention'];
  close(): Promise<void>;
}

export async function createBackupContext(
  config: Config,
  options: { logger: Logger; signal: AbortSignal; progress?: Progress },
): Promise<BackupContext> {
  const signingKeyPath = requireSetting(config.signingKey, 'signingKey', config, 'backup');
  const recipientPaths = requireSetting(config.recipients, 'recipients', config, 'backup');

  const signingKey = await readSecretKeyFile(signingKeyPath);
  const recipients: PublicKey[] = [];
  for (const path of recipientPaths) recipients.push(await readPublicKeyFile(path));

  // create() checks which packet versions the recipients select before any repository access.
  const workers = config.concurrency.workers;
  const encryptor = await SegmentEncryptor.create({ recipients, signingKey, workers, aead: config.encryption.aead });
  const algorithms = encryptor.cipherSuite;

  let store: ObjectStore;
  let repositoryId: string;
  try {
    ({ store, repositoryId } = await openRepository(config, { create: true }));
    await publishSigningKey(store, signingKey);
  } catch (error) {
    await encryptor.close();
    throw error;
  }
  const virsh = new Virsh({ uri: config.libvirt.uri, reconnectMs: RECONNECT_MS, logger: options.logger });
  const lock = config.repository.type === 's3' ? config.repository.objectLock : undefined;

  options.logger.debug(
    { repository: store.description, seipdVersion: algorithms.seipdVersion, symmetric: algorithms.symmetric },
    'backup context ready',
  );
  return {
    config,
    logger: options.logger,
    progress: options.progress,
    signal: options.signal,
    store,
    repositoryId,
    virsh,
    domains: new Domains(virsh),
    signingKey,
    signerFingerprint: keyInfo(signingKey).fingerprint,
    recipientFingerprints: recipients.map((key) => keyInfo(key).fingerprint),
    seipdVersion: algorithms.seipdVersion,
    encryptor,
    limiter: config.bandwidthLimit ? new RateLimiter(config.bandwidthLimit) : undefined,
    segmentsInFlight: segmentsInFlight(workers ?? availableParallelism(), config.concurrency.uploads),
    retention: () =>
      lock ? { mode: lock.mode, until: new Date(Date.now() + lock.days * 86_400_000) } : undefined,
    close: () => encryptor.close(),
  };
}

/**
 * Returns how many segments a backup works on at once: one per worker
 * thread and one per upload. The segment pool has one buffer more, for the
 * segment being filled, so with 16 MiB segments, two workers and one upload
 * it takes 64 MiB.
 */
function segmentsInFlight(workers: number, uploads: number): number {
  return Math.max(2, workers + uploads);
}

/**
 * Stores the host's public key under keys/<fingerprint>.asc. Restore fetches
 * it from there but trusts it only when its fingerprint is pinned in the
 * administrator's configuration, so a key planted here gains nothing.
 */
async function publishSigningKey(store: ObjectStore, signingKey: PrivateKey): Promise<void> {
  const fingerprint = keyInfo(signingKey).fingerprint;
  // Every backup after the first finds the key there; a HEAD costs less than a refused durable write.
  if (await store.head(publicKeyKey(fingerprint))) return;

  const armored = signingKey.toPublic().armor();
  try {
    await store.put(publicKeyKey(fingerprint), Buffer.from(armored, 'utf8'), { ifNoneMatch: true, contentType: 'application/pgp-keys' });
  } catch (error) {
    if (!(error instanceof AlreadyExistsError)) {
      throw new RepositoryError(`cannot publish the host public key to ${store.description}: ${(error as Error).message}`, { cause: error });
    }
  }
}

