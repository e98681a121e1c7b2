/**
 * Worker thread that encrypts or decrypts whole segments. It parses the keys
 * from `workerData` once, then runs TaskRequests from the pool and moves
 * result buffers back instead of copying them.
 */
import { parentPort, workerData } from 'node:worker_threads';

import { decryptSegment, encryptSegment, type DecryptKeys, type EncryptKeys } from './segment-operations.js';
import { parseDecryptKeys, parseEncryptKeys, type SegmentResult, type SegmentTask, type SegmentWorkerData } from './segment-tasks.js';
import { serializeError, type TaskReply, type TaskRequest } from './worker-protocol.js';

const data = workerData as SegmentWorkerData;

// Parse errors surface on the first task, as a rejected promise of that task.
const keysReady: Promise<EncryptKeys | DecryptKeys> = data.role === 'encrypt' ? parseEncryptKeys(data) : parseDecryptKeys(data);
keysReady.catch(() => undefined);

async function runTask(task: SegmentTask): Promise<{ result: SegmentResult; transfer: ArrayBuffer[] }> {
  const keys = await keysReady;

  if (task.kind === 'encrypt') {
    if (data.role !== 'encrypt') throw new Error('this worker was started for decryption, not encryption');
    // The buffers came here by transfer or were made here, so they move back
    // without a copy. In place, the ciphertext is a view of the segment buffer.
    const encrypted = await encryptSegment(task.plaintext, keys as EncryptKeys);
    const buffers = new Set([encrypted.ciphertext.buffer as ArrayBuffer, encrypted.buffer.buffer as ArrayBuffer]);
    return { result: encrypted, transfer: [...buffers] };
  }

  if (data.role !== 'decrypt') throw new Error('this worker was started for encryption, not decryption');
  // The plaintext is a view of a buffer made here for it alone, so the whole buffer moves without a copy.
  const decrypted = await decryptSegment(task.ciphertext, task.objectName, keys as DecryptKeys, task.sessionKey);
  return { result: decrypted, transfer: [decrypted.plaintext.buffer as ArrayBuffer] };
}

if (!parentPort) throw new Error('segment-worker must run as a worker thread');
const port = parentPort;

port.on('message', (request: TaskRequest<SegmentTask>) => {
  runTask(request.task).then(
    ({ result, transfer }) => {
      const reply: TaskReply<SegmentResult> = { id: request.id, ok: true, result };
      port.postMessage(reply, transfer);
    },
    (error: unknown) => {
      const reply: TaskReply<SegmentResult> = { id: request.id, ok: false, error: serializeError(error) };
      port.postMessage(reply);
    },
  );
});
