import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SegmentDecryptor, SegmentEncryptor } from '../../src/crypto/index.js';
import type { SegmentResult, SegmentTask, SegmentWorkerData } from '../../src/crypto/segment-tasks.js';
import { serializeKeys } from '../../src/crypto/segment-tasks.js';
import { TaskTimeoutError, WorkerPool } from '../../src/crypto/worker-pool.js';
import { makeAdminKey, makeHostKey, makeTempDir, patternBytes, sameBytes, type TestKey } from './fixtures.js';

// Worker threads cannot load TypeScript, so the pool runs the built worker.
const workerScript = fileURLToPath(new URL('../../dist/crypto/segment-worker.js', import.meta.url));

let host: TestKey;
let alice: TestKey;

beforeAll(async () => {
  if (!existsSync(workerScript)) throw new Error(`${workerScript} is missing: run "npm run build" first`);
  host = await makeHostKey();
  alice = await makeAdminKey('alice');
});

function decryptWorkerData(): SegmentWorkerData {
  return { role: 'decrypt', decryptionKeys: serializeKeys([alice.privateKey]), verificationKeys: serializeKeys([host.publicKey]) };
}

describe('WorkerPool', () => {
  let pool: WorkerPool<SegmentTask, SegmentResult>;

  beforeAll(() => {
    pool = new WorkerPool({ script: workerScript, size: 2, workerData: decryptWorkerData() });
  });

  afterAll(() => pool.close());

  it('rejects wrong task with original message', async () => {
    const error = await pool.run({ kind: 'encrypt', plaintext: new Uint8Array(4) }, { timeoutMs: 10_000 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe('this worker was started for decryption, not encryption');
  });

  it('replaces worker after timeout', async () => {
    const encryptor = await SegmentEncryptor.create({ recipients: [alice.publicKey], signingKey: host.privateKey, workers: 0 });
    const plaintext = patternBytes(2 * 1024 * 1024, 1);
    const ciphertext = (await encryptor.encrypt(plaintext)).ciphertext;
    await encryptor.close();

    const slow = await pool.run({ kind: 'decrypt', ciphertext: ciphertext.slice(), objectName: 'slow' }, { timeoutMs: 1 }).catch((caught: unknown) => caught);
    expect(slow).toBeInstanceOf(TaskTimeoutError);

    const results = await Promise.all([1, 2].map(() => pool.run({ kind: 'decrypt', ciphertext: ciphertext.slice(), objectName: 'after' }, { timeoutMs: 30_000 })));
    for (const result of results) {
      expect((result as { plaintext: Uint8Array }).plaintext.byteLength).toBe(plaintext.byteLength);
    }
  });

  it('rejects tasks after close', async () => {
    const closing = new WorkerPool<SegmentTask, SegmentResult>({ script: workerScript, size: 1, workerData: decryptWorkerData() });
    await closing.close();
    const error = await closing.run({ kind: 'encrypt', plaintext: new Uint8Array(1) }, { timeoutMs: 1000 }).catch((caught: unknown) => caught);
    expect((error as Error).message).toContain('closed');
  });

  it('rejects tasks for broken script', async () => {
    const dir = makeTempDir('hvb-pool-');
    const script = join(dir.path, 'broken-worker.mjs');
    writeFileSync(script, "throw new Error('broken worker script');\n");
    const broken = new WorkerPool<SegmentTask, SegmentResult>({ script, size: 1, workerData: null });

    const first = await broken.run({ kind: 'encrypt', plaintext: new Uint8Array(1) }, { timeoutMs: 10_000 }).catch((caught: unknown) => caught);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const later = await broken.run({ kind: 'encrypt', plaintext: new Uint8Array(1) }, { timeoutMs: 10_000 }).catch((caught: unknown) => caught);
    await broken.close();
    dir.remove();

    expect((first as Error).message).toContain('broken worker script');
    expect((later as Error).message).toContain('keep exiting');
  });

  it('rejects size zero', () => {
    expect(() => new WorkerPool({ script: workerScript, size: 0, workerData: decryptWorkerData() })).toThrow(RangeError);
  });
});

describe('SegmentEncryptor pool pairing', () => {
  it('returns each segment to its caller', async () => {
    const encryptor = await SegmentEncryptor.create({ recipients: [alice.publicKey], signingKey: host.privateKey, workers: 2 });
    const decryptor = await SegmentDecryptor.create({ decryptionKeys: [alice.privateKey], verificationKeys: [host.publicKey], workers: 2 });
    // Sizes differ so that later tasks can finish before earlier ones.
    const inputs = Array.from({ length: 12 }, (_, index) => patternBytes(((index * 7) % 5 + 1) * 40_000 + index, index));

    const ciphertexts = await Promise.all(inputs.map(async (input) => (await encryptor.encrypt(input)).ciphertext));
    const outputs = await Promise.all(ciphertexts.map((ciphertext, index) => decryptor.decrypt(ciphertext, `segment-${index}`)));
    await Promise.all([encryptor.close(), decryptor.close()]);

    for (const [index, output] of outputs.entries()) {
      expect(sameBytes(output.plaintext, inputs[index]), `segment ${index}`).toBe(true);
    }
  });

  it('failing task rejects only itself', async () => {
    const encryptor = await SegmentEncryptor.create({ recipients: [alice.publicKey], signingKey: host.privateKey, workers: 0 });
    const good = (await encryptor.encrypt(patternBytes(50_000, 3))).ciphertext;
    await encryptor.close();

    const decryptor = await SegmentDecryptor.create({ decryptionKeys: [alice.privateKey], verificationKeys: [host.publicKey], workers: 2 });
    const inputs = [good, patternBytes(300, 4), good, good];
    const outcomes = await Promise.allSettled(inputs.map((input, index) => decryptor.decrypt(input, `segment-${index}`)));
    await decryptor.close();

    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(String((outcomes[1] as PromiseRejectedResult).reason.message)).toContain('segment-1');
  });
});
