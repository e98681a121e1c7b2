/**
 * Reading a one-pass signed literal message (RFC 9580 section 10.3) whose
 * bytes are already authenticated by the MDC: one-pass signature packets,
 * one binary literal data packet, then the signature packets. The literal
 * content is gathered in place, and openpgp.js checks the signatures as
 * detached signatures over it. A binary signature covers the literal
 * content alone, not the packet's file name or date, so the result is the
 * same as openpgp.js reading the whole message, with no copy of the content.
 *
 * Messages of any other form (compressed, text mode, old-style signed) get
 * undefined here, and the caller has openpgp.js read them.
 */
import * as openpgp from 'openpgp';

import { gatherBody, PacketTag, tryReadPacketFrames, type PacketFrame } from './packet-frames.js';
import type { SignatureResult } from './signers.js';
import { forEachChunk, sliced } from './slices.js';

/** Literal data format of RFC 9580 section 5.9 for binary data. */
const BINARY_FORMAT = 0x62;

/** Format byte, file name length and four date bytes around the file name. */
const LITERAL_HEADER_BYTES = 6;

/**
 * Finds the literal content and checks the signatures of the message in
 * `packets`, rearranging the literal packet's bytes in place. Returns
 * undefined, with `packets` unchanged, when the message has another form.
 */
export async function verifySignedLiteral(
  packets: Uint8Array,
  verificationKeys: openpgp.PublicKey[],
): Promise<{ content: Uint8Array; signatures: SignatureResult[] } | undefined> {
  const frames = oneSignedLiteralFrames(packets);
  if (frames === undefined) return undefined;
  const { literal, signatures } = frames;

  const first = literal.body[0];
  if (literal.bodyLength < LITERAL_HEADER_BYTES || packets[first.offset] !== BINARY_FORMAT) return undefined;
  const nameBytes = packets[first.offset + 1];
  if (LITERAL_HEADER_BYTES + nameBytes > literal.bodyLength) return undefined;

  const length = gatherBody(packets, literal.body, first.offset);
  const content = packets.subarray(first.offset + LITERAL_HEADER_BYTES + nameBytes, first.offset + length);

  const signature = await openpgp.readSignature({ binarySignature: packets.subarray(signatures.start, signatures.end) });
  const message = await openpgp.createMessage({ binary: sliced(content), format: 'binary' });
  const result = await openpgp.verify({ message, signature, verificationKeys, format: 'binary' });
  await drain(result.data);
  return { content, signatures: result.signatures };
}

/** Returns the literal packet and the span of the signature packets when the message is k one-pass signatures, one literal, k signatures. */
function oneSignedLiteralFrames(packets: Uint8Array): { literal: PacketFrame; signatures: { start: number; end: number } } | undefined {
  const frames = tryReadPacketFrames(packets);
  if (frames === undefined) return undefined;

  const count = (frames.length - 1) / 2;
  if (!Number.isInteger(count) || count < 1) return undefined;
  const onePass = frames.slice(0, count);
  const literal = frames[count];
  const signatures = frames.slice(count + 1);
  if (!onePass.every((frame) => frame.tag === PacketTag.onePassSignature)) return undefined;
  if (literal.tag !== PacketTag.literalData) return undefined;
  if (!signatures.every((frame) => frame.tag === PacketTag.signature)) return undefined;

  return { literal, signatures: { start: signatures[0].start, end: signatures[signatures.length - 1].end } };
}

/** Reads a stream to its end; openpgp.js finishes its hashes as the data passes. */
async function drain(stream: ReadableStream<Uint8Array> | Uint8Array): Promise<void> {
  if (stream instanceof Uint8Array) return;
  await forEachChunk(stream, () => undefined);
}
