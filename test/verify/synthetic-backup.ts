/**
 * Real, signed and encrypted backups without libvirt: the library pieces a
 * backup uses (ArchiveWriter, splitIntoSegments, SegmentEncryptor,
 * signDetached) assembled by hand, written in the format's order (segments,
 * signature, manifest last) and with the host key published under keys/.
 * The disk is a generated sparse image, so no QEMU is involved.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';

import * as openpgp from 'openpgp';

import { ArchiveWriter } from '../../src/archive/writer.js';
import { generateAdminKey, generateHostKey, SegmentEncryptor, signDetached, type GeneratedKey } from '../../src/crypto/index.js';
import { manifestKey, publicKeyKey, segmentKey, segmentName, signatureKey, type BackupRef } from '../../src/manifest/layout.js';
import { encodeManifest, type Manifest, type ManifestSegment } from '../../src/manifest/schema.js';
import { splitIntoSegments } from '../../src/segment/splitter.js';
import type { ObjectStore } from '../../src/repository/store.js';
import { chainField } from '../prune/fixture.js';

export interface SyntheticKeys {
  host: GeneratedKey;
  admin: GeneratedKey;
}

export async function createSyntheticKeys(): Promise<SyntheticKeys> {
  return { host: await generateHostKey({ name: 'synthetic host' }), admin: await generateAdminKey({ name: 'synthetic admin' }) };
}

export interface SyntheticBackupOptions extends BackupRef {
  keys: SyntheticKeys;
  repositoryId?: string;
  type?: 'full' | 'incremental';
  parent?: string | null;
  /** Virtual size of the one disk, vda. Default 64 KiB. */
  diskSize?: number;
  /** Plaintext bytes per segment. Default 8 KiB, so a default backup has several segments. */
  segmentSize?: number;
}

export interface SyntheticBackup {
  ref: BackupRef;
  manifest: Manifest;
  /** Every key written, manifest last. */
  keys: string[];
}

/** Writes one committed backup into `store` and returns its manifest. */
export async function writeSyntheticBackup(store: ObjectStore, options: SyntheticBackupOptions): Promise<SyntheticBackup> {
  const ref: BackupRef = { host: options.host, domain: options.domain, backupId: options.backupId };
  const diskSize = options.diskSize ?? 64 * 1024;
  const segmentSize = options.segmentSize ?? 8 * 1024;
  const started = new Date();

  const signingKey = await openpgp.readPrivateKey({ armoredKey: options.keys.host.privateKey });
  const recipient = await openpgp.readKey({ armoredKey: options.keys.admin.publicKey });
  const encryptor = await SegmentEncryptor.create({ recipients: [recipient], signingKey, workers: 0 });

  // Two stored extents with a hole between them, so the entry is really sparse.
  const half = diskSize / 2;
  const extents = [
    { offset: 0, length: half / 2 },
    { offset: half, length: half / 2 },
  ];
  const diskBytes = randomBytes(half);
  const writer = new ArchiveWriter({ mtime: started });
  const producing = (async () => {
    await writer.addFile('hvbackup.json', Buffer.from(JSON.stringify({ format: 'hvbackup-archive', version: 1, backupId: ref.backupId })));
    await writer.addFile('domain.xml', Buffer.from(`<domain type="kvm"><name>${ref.domain}</name></domain>\n`));
    const disk = await writer.addSparseFile('disks/vda.img', { realSize: diskSize, extents, data: chunks(diskBytes) });
    await writer.addFile('checksums.json', Buffer.from(JSON.stringify({ disks: { vda: disk } })));
    await writer.finalize();
    return disk;
  })();

  const written: string[] = [];
  const segments: ManifestSegment[] = [];
  let archiveBytes = 0;
  try {
    for await (const plaintext of splitIntoSegments(writer.stream, segmentSize)) {
      const name = segmentName(segments.length);
      const ciphertext = (await encryptor.encrypt(plaintext)).ciphertext;
      await store.put(segmentKey(ref, name), ciphertext, { ifNoneMatch: true });
      written.push(segmentKey(ref, name));
      segments.push({ name, size: ciphertext.byteLength, sha256: createHash('sha256').update(ciphertext).digest('hex'), plainSize: plaintext.length });
      archiveBytes += plaintext.length;
    }
  } finally {
    await encryptor.close();
  }
  const disk = await producing;

  const manifest = {
    ...(await chainField(store, ref, options.parent ?? null)),
    format: 'hvbackup-manifest',
    version: 1,
    repositoryId: options.repositoryId ?? randomUUID(),
    backupId: ref.backupId,
    host: ref.host,
    domain: { name: ref.domain, uuid: randomUUID() },
    type: options.type ?? 'full',
    parent: options.parent ?? null,
    checkpoint: null,
    startedAt: started.toISOString(),
    snapshotAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    tool: { name: 'hvbackup', version: '0.0.0-test' },
    disks: [{ target: 'vda', format: 'raw', sourcePath: `/var/lib/libvirt/images/${ref.domain}.img`, virtualSize: diskSize, storedBytes: disk.storedBytes, extentCount: extents.length, entry: 'disks/vda.img' }],
    nvram: null,
    archiveBytes,
    segmentSize,
    segments,
    encryption: { recipients: [options.keys.admin.fingerprint], seipdVersion: 1 },
    signer: options.keys.host.fingerprint,
  } as Manifest;

  const bytes = encodeManifest(manifest);
  const signature = await signDetached(bytes, signingKey);
  await store.put(publicKeyKey(options.keys.host.fingerprint), Buffer.from(options.keys.host.publicKey));
  await store.put(signatureKey(ref), Buffer.from(signature, 'utf8'), { ifNoneMatch: true });
  await store.put(manifestKey(ref), bytes, { ifNoneMatch: true });
  written.push(signatureKey(ref), manifestKey(ref));
  return { ref, manifest, keys: written };
}

async function* chunks(bytes: Buffer): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < bytes.length; offset += 4096) yield bytes.subarray(offset, offset + 4096);
}
