#!/usr/bin/env node
/**
 * Compares three ways to decrypt AES-256-CFB (the cipher mode of SEIPD v1)
 * on one core, on the same 16 MiB of ciphertext, alternating round by round:
 *
 * - node-cfb: Node's own aes-256-cfb decipher, which openpgp.js uses;
 * - ecb-xor: AES-ECB of the ciphertext shifted by one block, then an XOR
 *   with the ciphertext in JavaScript on 32-bit words;
 * - ecb-cbc: AES-ECB of the ciphertext, then AES-CBC decryption of that with
 *   AES(IV) as IV (what src/crypto/seipd-v1.ts does).
 *
 * Usage: node bench/cfb.mjs [ROUNDS]   (default 10). Every method works in
 * 64 KiB steps and its result is compared with node-cfb's.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { cpus } from 'node:os';

const SEGMENT_BYTES = 16 * 1024 * 1024;
const STEP_BYTES = 64 * 1024;
const BLOCK_BYTES = 16;
const rounds = Number(process.argv[2] ?? 10);

const key = randomBytes(32);
const zeroIv = Buffer.alloc(BLOCK_BYTES);
const plaintext = randomBytes(SEGMENT_BYTES);
const encryptor = createCipheriv('aes-256-cfb', key, zeroIv);
const ciphertext = Buffer.concat([encryptor.update(plaintext), encryptor.final()]);

function nodeCfb(data) {
  const decipher = createDecipheriv('aes-256-cfb', key, zeroIv);
  for (let start = 0; start < data.length; start += STEP_BYTES) {
    data.set(decipher.update(data.subarray(start, start + STEP_BYTES)), start);
  }
}

function ecbXor(data) {
  const ecb = createCipheriv('aes-256-ecb', key, null);
  ecb.setAutoPadding(false);
  let previous = zeroIv;
  for (let start = 0; start < data.length; start += STEP_BYTES) {
    const step = data.subarray(start, start + STEP_BYTES);
    const keystream = Buffer.concat([ecb.update(previous), ecb.update(step.subarray(0, step.length - BLOCK_BYTES))]);
    previous = Buffer.from(step.subarray(step.length - BLOCK_BYTES));
    const words = new Int32Array(step.buffer, step.byteOffset, step.length / 4);
    const keyWords = new Int32Array(keystream.buffer, keystream.byteOffset, step.length / 4);
    for (let index = 0; index < words.length; index++) words[index] ^= keyWords[index];
  }
}

function ecbCbc(data) {
  const ecb = createCipheriv('aes-256-ecb', key, null);
  ecb.setAutoPadding(false);
  const cbc = createDecipheriv('aes-256-cbc', key, ecb.update(zeroIv));
  cbc.setAutoPadding(false);
  for (let start = 0; start < data.length; start += STEP_BYTES) {
    data.set(cbc.update(ecb.update(data.subarray(start, start + STEP_BYTES))), start);
  }
}

const methods = { 'node-cfb': nodeCfb, 'ecb-xor': ecbXor, 'ecb-cbc': ecbCbc };
const seconds = Object.fromEntries(Object.keys(methods).map((name) => [name, []]));

for (let round = 0; round <= rounds; round++) {
  for (const [name, decrypt] of Object.entries(methods)) {
    // A copy in fresh, 4-byte aligned memory, so the XOR may use 32-bit words.
    const data = new Uint8Array(SEGMENT_BYTES);
    data.set(ciphertext);
    const started = process.hrtime.bigint();
    decrypt(data);
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    if (!Buffer.from(data.buffer).equals(plaintext)) throw new Error(`${name} decrypted to wrong plaintext`);
    if (round > 0) seconds[name].push(elapsed); // round 0 warms up
  }
}

console.log(`${cpus()[0].model}, Node.js ${process.versions.node}, OpenSSL ${process.versions.openssl}, ${rounds} rounds of 16 MiB`);
for (const [name, samples] of Object.entries(seconds)) {
  const sorted = samples.toSorted((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  console.log(`${name.padEnd(9)} ${(SEGMENT_BYTES / median / 2 ** 20).toFixed(0).padStart(5)} MiB/s (median)`);
}
