#!/usr/bin/env node
/**
 * Measures segment encryption and decryption throughput of the OpenPGP layer
 * with 0 (calling thread), 1 and 2 worker threads. Run "npm run build" first,
 * because this script imports the compiled code from dist/.
 *
 * Usage: node bench/crypto.mjs [TOTAL_MIB] [SEGMENT_MIB]   (defaults: 256 16)
 *
 * Throughput is plaintext MB (10^6 bytes) per second of wall time. Peak RSS
 * is the process maximum so far (process.resourceUsage().maxRSS), so it only
 * grows from one row to the next.
 */
import { randomFillSync } from 'node:crypto';
import { availableParallelism, cpus } from 'node:os';
import * as openpgp from 'openpgp';

import { SegmentDecryptor, SegmentEncryptor, generateAdminKey, generateHostKey } from '../dist/crypto/index.js';

const MIB = 1024 * 1024;
const totalMiB = Number(process.argv[2] ?? 256);
const segmentMiB = Number(process.argv[3] ?? 16);
const segmentCount = Math.ceil(totalMiB / segmentMiB);

async function makeKeys() {
  const host = await generateHostKey({ name: 'bench-host' });
  const admin = await generateAdminKey({ name: 'bench-admin' });
  return {
    signingKey: await openpgp.readPrivateKey({ armoredKey: host.privateKey }),
    verificationKey: await openpgp.readKey({ armoredKey: host.publicKey }),
    recipient: await openpgp.readKey({ armoredKey: admin.publicKey }),
    decryptionKey: await openpgp.readPrivateKey({ armoredKey: admin.privateKey }),
  };
}

/** Runs `work` on every item with at most `concurrency` in flight, keeping order. */
async function mapConcurrently(items, concurrency, work) {
  const results = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: concurrency }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index], index);
    }
  });
  await Promise.all(lanes);
  return results;
}

function megabytesPerSecond(bytes, milliseconds) {
  return (bytes / 1e6 / (milliseconds / 1000)).toFixed(1);
}

function peakRssMiB() {
  return (process.resourceUsage().maxRSS / 1024).toFixed(0);
}

const keys = await makeKeys();

// Random data, so that nothing in the path can profit from repetition.
const segment = new Uint8Array(segmentMiB * MIB);
randomFillSync(segment);
const plaintexts = Array.from({ length: segmentCount }, () => segment);
const totalBytes = segmentCount * segment.byteLength;

console.log(`node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}, availableParallelism ${availableParallelism()}`);
console.log(`${segmentCount} segments of ${segmentMiB} MiB (${totalMiB} MiB)`);
console.log('workers  encrypt MB/s  decrypt MB/s  peak RSS MiB');

for (const workers of [0, 1, 2]) {
  const encryptor = await SegmentEncryptor.create({ recipients: [keys.recipient], signingKey: keys.signingKey, workers });
  const decryptor = await SegmentDecryptor.create({ decryptionKeys: [keys.decryptionKey], verificationKeys: [keys.verificationKey], workers });
  const inFlight = Math.max(1, workers) + 1;

  // One warm-up segment, so that worker start-up and JIT stay out of the figures.
  await decryptor.decrypt((await encryptor.encrypt(segment)).ciphertext, 'warm-up');

  let started = performance.now();
  const ciphertexts = await mapConcurrently(plaintexts, inFlight, async (plaintext) => (await encryptor.encrypt(plaintext)).ciphertext);
  const encryptMs = performance.now() - started;

  started = performance.now();
  await mapConcurrently(ciphertexts, inFlight, (ciphertext, index) => decryptor.decrypt(ciphertext, `segment-${index}`));
  const decryptMs = performance.now() - started;

  await Promise.all([encryptor.close(), decryptor.close()]);
  console.log(
    `${String(workers).padStart(7)}  ${megabytesPerSecond(totalBytes, encryptMs).padStart(12)}  ${megabytesPerSecond(totalBytes, decryptMs).padStart(12)}  ${peakRssMiB().padStart(12)}`,
  );
}
