import * as openpgp from 'openpgp';
import { beforeAll, describe, expect, it } from 'vitest';

import { readPacketFrames } from '../../src/crypto/packet-frames.js';
import { encryptSegment, type EncryptKeys } from '../../src/crypto/segment-operations.js';
import { copyWithRoom, hasRoomToSeal, newSessionKey, SEGMENT_HEADROOM_BYTES, SEGMENT_TAILROOM_BYTES, sealSeipdV1InPlace } from '../../src/crypto/seipd-writer.js';
import { makeAdminKey, makeHostKey, patternBytes, sameBytes, type TestKey } from './fixtures.js';

let host: TestKey;
let alice: TestKey;
let bob: TestKey;
let keys: EncryptKeys;

const emptyParts = { pkeskPackets: new Uint8Array(0), onePassSignatures: new Uint8Array(0), signatures: new Uint8Array(0), sessionKey: newSessionKey(), date: 0 };

beforeAll(async () => {
  host = await makeHostKey();
  alice = await makeAdminKey('alice');
  bob = await makeAdminKey('bob');
  keys = { recipients: [alice.publicKey, bob.publicKey], signingKey: host.privateKey, aead: false };
});

describe('SEIPD v1 segments written by hvbackup', () => {
  it('frames PKESK packets and one SEIPD v1 packet', async () => {
    const { ciphertext, sha256 } = await encryptSegment(patternBytes(300_000, 1), keys);

    const frames = readPacketFrames(ciphertext);
    expect(frames.map((frame) => frame.tag)).toEqual([1, 1, 18]);
    const data = frames[2];
    expect(data.end).toBe(ciphertext.byteLength);
    expect(ciphertext[data.start + 1]).toBe(0xff);
    expect(ciphertext[data.body[0].offset]).toBe(1);
    expect(sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each([0, 1, 17, 1_048_576 + 5])('openpgp.js decrypts and verifies %i bytes', async (length) => {
    const plaintext = patternBytes(length, 2);
    const { ciphertext } = await encryptSegment(plaintext, keys);

    // openpgp.js's own reader, not the in-place path of this project.
    for (const admin of [alice, bob]) {
      const message = await openpgp.readMessage({ binaryMessage: ciphertext.slice() });
      const result = await openpgp.decrypt({ message, decryptionKeys: admin.privateKey, verificationKeys: host.publicKey, format: 'binary', expectSigned: true });
      expect(sameBytes(result.data as Uint8Array, plaintext)).toBe(true);
      expect(await result.signatures[0].verified).toBe(true);
    }
  });

  it('uses a new session key and prefix each time', async () => {
    const plaintext = patternBytes(5000, 3);
    const first = await encryptSegment(plaintext, keys);
    const second = await encryptSegment(plaintext, keys);

    expect(first.sha256).not.toBe(second.sha256);
    const sessionKeys = await Promise.all(
      [first, second].map(async ({ ciphertext }) => {
        const message = await openpgp.readMessage({ binaryMessage: ciphertext.slice() });
        const [key] = await openpgp.decryptSessionKeys({ message, decryptionKeys: alice.privateKey });
        return Buffer.from(key.data).toString('hex');
      }),
    );
    expect(sessionKeys[0]).not.toBe(sessionKeys[1]);
  });

  it('rejects session key of wrong size', () => {
    const plaintext = new Uint8Array(SEGMENT_HEADROOM_BYTES + 10 + SEGMENT_TAILROOM_BYTES).subarray(SEGMENT_HEADROOM_BYTES, SEGMENT_HEADROOM_BYTES + 10);
    expect(() => sealSeipdV1InPlace(plaintext, { ...emptyParts, sessionKey: new Uint8Array(16) })).toThrow(/16 bytes, but AES-256 needs 32/);
  });

  it('rejects plaintext without room', () => {
    const plaintext = patternBytes(1000, 4);
    expect(() => sealSeipdV1InPlace(plaintext, emptyParts)).toThrow(/too little room.*copyWithRoom/);
    expect(sameBytes(plaintext, patternBytes(1000, 4))).toBe(true);
  });

  it('needs room for the PKESK packets too', () => {
    const pkeskPackets = new Uint8Array(SEGMENT_HEADROOM_BYTES);
    const plaintext = copyWithRoom(patternBytes(100, 5));
    expect(hasRoomToSeal(plaintext, { ...emptyParts, pkeskPackets })).toBe(false);
    expect(hasRoomToSeal(plaintext, emptyParts)).toBe(true);
  });

  it('never seals inside a small shared slab', () => {
    // Like a small Buffer in Node's 8 KiB pool: the packets would fit around
    // it, but the bytes around it belong to other Buffers.
    const slab = new Uint8Array(8192);
    const small = slab.subarray(4096, 4196);
    expect(hasRoomToSeal(small, emptyParts)).toBe(false);
  });
});
