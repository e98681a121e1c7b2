import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { uploadSegments } from '../../src/backup/segment-pipeline.js';
import { SegmentDecryptor, SegmentEncryptor } from '../../src/crypto/index.js';
import { AlreadyExistsError } from '../../src/errors.js';
import { segmentKey, segmentName } from '../../src/manifest/layout.js';
import { LocalStore } from '../../src/repository/local.js';
import { patternBytes } from '../archive/support.js';
import { makeAdminKey, makeHostKey, makeTempDir, type TestKey } from '../crypto/fixtures.js';

const ref = { host: 'pipeline-host', domain: 'pipeline', backupId: '20261204T000000Z-abcdef' };
let host: TestKey;
let admin: TestKey;
let encryptor: SegmentEncryptor;
let scratch: ReturnType<typeof makeTempDir>;

beforeAll(async () => {
  host = await makeHostKey();
  admin = await makeAdminKey('admin');
  encryptor = await SegmentEncryptor.create({ recipients: [admin.publicKey], signingKey: host.privateKey, workers: 2 });
});

afterAll(() => encryptor.close());

afterEach(() => scratch.remove());

async function* chunks(data: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

function newStore(): LocalStore {
  scratch = makeTempDir('hvbackup-pipeline-');
  return new LocalStore(scratch.path);
}

describe('uploadSegments', () => {
  it('pipeline stores every segment, hashed and decryptable', async () => {
    const store = newStore();
    const data = patternBytes(9, 5 * 65_536 + 123);

    const result = await uploadSegments(chunks(data, 10_000), {
      store,
      encryptor,
      ref,
      segmentSize: 65_536,
      inFlight: 2,
      signal: new AbortController().signal,
    });

    expect(result.archiveBytes).toBe(data.length);
    expect(result.segments.map((segment) => segment.plainSize)).toEqual([65_536, 65_536, 65_536, 65_536, 65_536, 123]);

    const decryptor = await SegmentDecryptor.create({ decryptionKeys: [admin.privateKey], verificationKeys: [host.publicKey], workers: 0 });
    const plaintexts: Uint8Array[] = [];
    let stored = 0;
    for (const segment of result.segments) {
      const ciphertext = await readFile(join(scratch.path, segmentKey(ref, segment.name)));
      expect(createHash('sha256').update(ciphertext).digest('hex')).toBe(segment.sha256);
      expect(ciphertext.length).toBe(segment.size);
      stored += ciphertext.length;
      plaintexts.push((await decryptor.decrypt(ciphertext, segment.name)).plaintext);
    }
    await decryptor.close();

    expect(result.storedBytes).toBe(stored);
    // Buffers go round the pools, so a reused buffer must not leak bytes of an earlier segment.
    expect(Buffer.concat(plaintexts).equals(data)).toBe(true);
  });

  it('pipeline fails with the store error instead of waiting for buffers', async () => {
    const store = newStore();
    // The third segment already exists, so its no-overwrite upload fails.
    const existingSegment = join(scratch.path, segmentKey(ref, segmentName(2)));
    await mkdir(join(existingSegment, '..'), { recursive: true });
    await writeFile(existingSegment, 'someone else');

    const upload = uploadSegments(chunks(patternBytes(10, 40 * 4096), 4096), {
      store,
      encryptor,
      ref,
      segmentSize: 4096,
      inFlight: 1,
      signal: new AbortController().signal,
    });

    await expect(upload).rejects.toBeInstanceOf(AlreadyExistsError);
  }, 30_000);

  it('pipeline stops on abort', async () => {
    const store = newStore();
    const controller = new AbortController();
    let produced = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (;;) {
        produced += 1;
        if (produced === 20) controller.abort(new Error('operator pressed Ctrl-C'));
        yield patternBytes(produced, 4096);
      }
    }

    const upload = uploadSegments(endless(), { store, encryptor, ref, segmentSize: 8192, inFlight: 2, signal: controller.signal });

    await expect(upload).rejects.toThrow('operator pressed Ctrl-C');
  }, 30_000);
});
