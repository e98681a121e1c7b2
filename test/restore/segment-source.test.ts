/**
 * Reusable segment buffers of the restore: the pool's bookkeeping, and a
 * real encrypted backup read through readSegments and extractBackup with
 * disk writes that stay in flight, which would see any buffer reused while
 * a write still reads it. Needs no libvirt and no RGW.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readArchive } from '../../src/archive/reader.js';
import { ArchiveWriter } from '../../src/archive/writer.js';
import { CHECKSUMS_ENTRY, DOMAIN_XML_ENTRY, METADATA_ENTRY, type ArchiveMetadata } from '../../src/backup/archive-contents.js';
import { generateAdminKey, generateHostKey, SegmentDecryptor, SegmentEncryptor } from '../../src/crypto/index.js';
import { segmentKey, segmentName, type BackupRef } from '../../src/manifest/layout.js';
import type { Manifest, ManifestSegment } from '../../src/manifest/schema.js';
import { LocalStore } from '../../src/repository/local.js';
import { extractBackup, type DiskWriter } from '../../src/restore/extract.js';
import { largestSize, SegmentBufferPool } from '../../src/restore/segment-buffers.js';
import { createSegmentBuffers, readSegments } from '../../src/restore/segment-source.js';
import { splitIntoSegments } from '../../src/segment/splitter.js';

describe('SegmentBufferPool', () => {
  it('reuses a released buffer', async () => {
    const pool = new SegmentBufferPool(1024, 2);
    const first = await pool.acquire(1024);
    pool.release(first);
    const second = await pool.acquire(1024);

    expect(second.buffer).toBe(first.buffer);
    expect(second.byteLength).toBe(1024);
  });

  it('keeps a retained buffer out', async () => {
    const pool = new SegmentBufferPool(1024, 4);
    const first = await pool.acquire(1024);
    const view = first.subarray(100, 200);
    pool.retain(view);
    pool.release(first);

    expect(pool.inUse).toBe(1);
    const second = await pool.acquire(1024);
    expect(second.buffer).not.toBe(first.buffer);

    pool.release(view);
    expect(pool.inUse).toBe(1);
    expect(pool.idle).toBe(1);
  });

  it('waits while every buffer is out', async () => {
    const pool = new SegmentBufferPool(1024, 1);
    const first = await pool.acquire(1024);
    let served = false;
    const waiting = pool.acquire(1024).then((buffer) => {
      served = true;
      return buffer;
    });

    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(served).toBe(false);
    pool.release(first);
    expect((await waiting).buffer).toBe(first.buffer);
  });

  it('serves waiters in request order', async () => {
    const pool = new SegmentBufferPool(1024, 1);
    const first = await pool.acquire(1024);
    const order: string[] = [];
    const a = pool.acquire(1024).then((buffer) => {
      order.push('a');
      pool.release(buffer);
    });
    const b = pool.acquire(1024).then((buffer) => {
      order.push('b');
      pool.release(buffer);
    });

    pool.release(first);
    await Promise.all([a, b]);
    expect(order).toEqual(['a', 'b']);
  });

  it('rejects a waiter on abort', async () => {
    const pool = new SegmentBufferPool(1024, 1);
    await pool.acquire(1024);
    const controller = new AbortController();
    const waiting = pool.acquire(1024, controller.signal);
    controller.abort(new Error('stopped'));

    await expect(waiting).rejects.toThrow('stopped');
  });

  it('follows a buffer moved and back', async () => {
    const pool = new SegmentBufferPool(1024, 1);
    const first = await pool.acquire(1024);
    first[0] = 7;
    const moved = new Uint8Array(structuredClone(first.buffer, { transfer: [first.buffer as ArrayBuffer] }));
    pool.moved(first, moved);
    pool.release(moved.subarray(10));

    const second = await pool.acquire(1024);
    expect(second.buffer).toBe(moved.buffer);
    expect(second[0]).toBe(7);
  });

  it('drops a buffer released after a failure', async () => {
    const pool = new SegmentBufferPool(1024, 1);
    const first = await pool.acquire(1024);
    pool.release(first, { reusable: false });
    const second = await pool.acquire(1024);

    expect(second.buffer).not.toBe(first.buffer);
    expect(pool.inUse).toBe(1);
  });

  it('hands shorter requests a pooled view', async () => {
    const pool = new SegmentBufferPool(1024, 2);
    const short = await pool.acquire(1000);
    expect(short.byteLength).toBe(1000);
    expect(short.buffer.byteLength).toBe(1024);
    pool.release(short);

    const full = await pool.acquire(1024);
    expect(full.buffer).toBe(short.buffer);
    expect(pool.idle).toBe(0);
  });

  it('drops buffers of larger requests', async () => {
    const pool = new SegmentBufferPool(1024, 2);
    const large = await pool.acquire(2000);
    expect(large.byteLength).toBe(2000);
    pool.release(large);

    expect(pool.inUse).toBe(0);
    expect(pool.idle).toBe(0);
  });

  it('ignores views of other memory', () => {
    const pool = new SegmentBufferPool(1024, 1);
    pool.retain(Buffer.alloc(16));
    pool.release(Buffer.alloc(16));

    expect(pool.inUse).toBe(0);
  });

  it('largestSize picks the largest size', () => {
    expect(largestSize([100, 101, 100, 40])).toBe(101);
    expect(largestSize([])).toBe(1);
  });
});

interface TestBackup {
  store: LocalStore;
  ref: BackupRef;
  manifest: Manifest;
  disk: Buffer;
  decryptionKey: openpgp.PrivateKey;
  verificationKey: openpgp.PublicKey;
  hostFingerprint: string;
}

/**
 * Writes an encrypted backup of one sparse disk with `segmentSize`-byte
 * segments, so that tar headers, PAX records and disk extents straddle
 * segment boundaries.
 */
async function writeTestBackup(directory: string, segmentSize: number): Promise<TestBackup> {
  const host = await generateHostKey({ name: 'segment source host' });
  const admin = await generateAdminKey({ name: 'segment source admin' });
  const signingKey = await openpgp.readPrivateKey({ armoredKey: host.privateKey });
  const recipient = await openpgp.readKey({ armoredKey: admin.publicKey });

  const store = new LocalStore(directory);
  const ref: BackupRef = { host: 'testhost', domain: 'web', backupId: '20261205T010000Z-abcdef' };
  const virtualSize = 1024 * 1024;
  const extents = Array.from({ length: 24 }, (_, index) => ({ offset: index * 40_960, length: 6_144 + 512 * (index % 5) }));
  const disk = Buffer.alloc(virtualSize);
  for (const extent of extents) randomBytes(extent.length).copy(disk, extent.offset);
  const storedBytes = extents.reduce((sum, extent) => sum + extent.length, 0);
  const uuid = randomUUID();

  const metadata: ArchiveMetadata = {
    format: 'hvbackup-archive',
    version: 1,
    backupId: ref.backupId,
    host: ref.host,
    domain: { name: ref.domain, uuid },
    type: 'full',
    parent: null,
    snapshotAt: new Date().toISOString(),
    disks: [
      { target: 'vda', format: 'raw', sourcePath: '/srv/web.img', virtualSize, entry: 'disks/vda.img', fullCopy: true, storedBytes, extentCount: extents.length, zeroExtents: [] },
    ],
    nvram: null,
  };

  const writer = new ArchiveWriter();
  const producing = (async () => {
    await writer.addFile(METADATA_ENTRY, Buffer.from(JSON.stringify(metadata)));
    await writer.addFile(DOMAIN_XML_ENTRY, Buffer.from(`<domain type="kvm"><name>${ref.domain}</name></domain>\n`));
    const data = (async function* () {
      for (const extent of extents) yield disk.subarray(extent.offset, extent.offset + extent.length);
    })();
    const written = await writer.addSparseFile('disks/vda.img', { realSize: virtualSize, extents, data });
    await writer.addFile(CHECKSUMS_ENTRY, Buffer.from(JSON.stringify({ disks: { vda: written } })));
    await writer.finalize();
  })();

  const encryptor = await SegmentEncryptor.create({ recipients: [recipient], signingKey, workers: 0 });
  const segments: ManifestSegment[] = [];
  try {
    for await (const plaintext of splitIntoSegments(writer.stream, segmentSize)) {
      const name = segmentName(segments.length);
      const { ciphertext } = await encryptor.encrypt(plaintext);
      await store.put(segmentKey(ref, name), ciphertext);
      segments.push({ name, size: ciphertext.byteLength, sha256: createHash('sha256').update(ciphertext).digest('hex'), plainSize: plaintext.length });
    }
  } finally {
    await encryptor.close();
  }
  await producing;

  const manifest = {
    backupId: ref.backupId,
    type: 'full',
    domain: { name: ref.domain, uuid },
    disks: [{ target: 'vda', format: 'raw', sourcePath: '/srv/web.img', virtualSize, storedBytes, extentCount: extents.length, entry: 'disks/vda.img' }],
    nvram: null,
    segmentSize,
    segments,
  } as unknown as Manifest;

  return {
    store,
    ref,
    manifest,
    disk,
    decryptionKey: await openpgp.readPrivateKey({ armoredKey: admin.privateKey }),
    verificationKey: await openpgp.readKey({ armoredKey: host.publicKey }),
    hostFingerprint: host.fingerprint,
  };
}

/**
 * Returns a disk writer whose writes stay in flight for a while. Each write copies
 * its data when it starts and compares it again when it completes, which
 * catches a buffer that was overwritten in between.
 */
function slowWriter(disk: Buffer, delayMs: number): DiskWriter & { changed: number[]; writes: number } {
  const writer = {
    changed: [] as number[],
    writes: 0,
    async write(offset: number, data: Buffer): Promise<void> {
      writer.writes += 1;
      const before = Buffer.from(data);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      if (!before.equals(data)) writer.changed.push(offset);
      data.copy(disk, offset);
    },
    async writeZeroes(): Promise<void> {},
  };
  return writer;
}

describe('readSegments with reused buffers', () => {
  let directory: string;
  let backup: TestBackup;
  let decryptor: SegmentDecryptor;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'hvb-segment-source-'));
    backup = await writeTestBackup(directory, 4096);
    decryptor = await SegmentDecryptor.create({ decryptionKeys: [backup.decryptionKey], verificationKeys: [backup.verificationKey], workers: 1 });
  });

  afterAll(async () => {
    await decryptor?.close();
    await rm(directory, { recursive: true, force: true });
  });

  async function restore(options: { retainWrites: boolean; delayMs: number }) {
    const buffers = createSegmentBuffers(backup.manifest.segments, 3);
    const plaintext = readSegments({
      store: backup.store,
      decryptor,
      ref: backup.ref,
      segments: backup.manifest.segments,
      trustedSigners: [backup.hostFingerprint],
      readAhead: 3,
      buffers,
      signal: new AbortController().signal,
    });
    const restored = Buffer.alloc(backup.disk.length);
    const writer = slowWriter(restored, options.delayMs);
    await extractBackup(readArchive(plaintext), {
      manifest: backup.manifest,
      openDisk: async () => writer,
      memory: options.retainWrites ? buffers : undefined,
    });
    return { buffers, restored, writer };
  }

  it('keeps previous segment one request longer', async () => {
    const buffers = createSegmentBuffers(backup.manifest.segments, 3);
    const segments = readSegments({
      store: backup.store,
      decryptor,
      ref: backup.ref,
      segments: backup.manifest.segments,
      trustedSigners: [backup.hostFingerprint],
      readAhead: 3,
      buffers,
      signal: new AbortController().signal,
    });

    const first = (await segments.next()).value as Uint8Array;
    const copy = Buffer.from(first);
    await segments.next();
    // Downloads that run meanwhile must not land in the first segment's buffer.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(Buffer.from(first).equals(copy)).toBe(true);

    await segments.return(undefined);
  });

  it('backup has many small segments', () => {
    expect(backup.manifest.segments.length).toBeGreaterThan(30);
  });

  it('restores the disk with writes in flight', async () => {
    const { buffers, restored, writer } = await restore({ retainWrites: true, delayMs: 5 });

    expect(writer.changed).toEqual([]);
    expect(restored.equals(backup.disk)).toBe(true);
    expect(buffers.inUse).toBe(0);
    expect(buffers.idle).toBeLessThanOrEqual(buffers.maxBuffers);
  });

  it('reuses buffers across segments', async () => {
    const { buffers } = await restore({ retainWrites: true, delayMs: 0 });

    // Fewer buffers than segments were made, and every one of them, the
    // shorter last segment's included, went back to the pool.
    expect(buffers.idle).toBeGreaterThan(0);
    expect(buffers.idle).toBeLessThanOrEqual(buffers.maxBuffers);
    expect(buffers.inUse).toBe(0);
  });

  it('unretained writes see reused buffers', async () => {
    // The control case: without retain(), a buffer goes back while writes still
    // read it, and the slow writer notices. This shows the check above can fail.
    const { writer } = await restore({ retainWrites: false, delayMs: 20 });

    expect(writer.writes).toBeGreaterThan(0);
    expect(writer.changed.length).toBeGreaterThan(0);
  });
});
