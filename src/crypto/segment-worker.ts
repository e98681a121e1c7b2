/**
 * Worker thread that encrypts or decrypts whole segments. It parses the keys
 * from `workerData` once, then runs TaskRequests from the pool and moves
 * result buffers back instead of copying them.
 */
import { parentPort, workerData } from 'node:worker_threads';

import { decryptSegment, encryptSegment, type DecryptKeys, type EncryptKeys } from './segment-operations.js';
import { parseDecryptKeys, parseEncryptKeys, type SegmentResult, type SegmentTask, type SegmentWorkerData } from './segment-tasks.js';
import { serializeError, transferableCopy, type TaskReply, type TaskRequest } from './worker-protocol.js';

const data = workerData as SegmentWorkerData;

// Parse errors surface on the first task, as a rejected promise of that task.
const keysReady: Promise<EncryptKeys | DecryptKeys> = data.role === 'encrypt' ? parseEncryptKeys(data) : parseDecryptKeys(data);
keysReady.catch(() => undefined);

async function runTask(task: SegmentTask): Promise<{ result: SegmentResult; transfer: ArrayBuffer[] }> {
  const keys = await keysReady;

  if (task.kind === 'encrypt') {
    if (data.role !== 'encrypt') throw new Error('this worker was started for decryption, not encryption');
    const ciphertext = transferableCopy(await encryptSegment(task.plaintext, keys as EncryptKeys));
    return { result: ciphertext.bytes, transfer: [ciphertext.buffer] };
  }

  if (data.role !== 'decrypt') throw new Error('this worker was started for encryption, not decryption');
  const decrypted = await decryptSegment(task.ciphertext, task.objectName, keys as DecryptKeys, task.sessionKey);
  const plaintext = transferableCopy(decrypted.plaintext);
  return { result: { plaintext: plaintext.bytes, signerFingerprint: decrypted.signerFingerprint }, transfer: [plaintext.buffer] };
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
