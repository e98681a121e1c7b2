/**
 * Messages between the worker pool and its worker threads, and the transport
 * of errors, which structured clone would reduce to plain Errors.
 */
import { CryptoError, HvError, VerificationError } from '../errors.js';

export interface TaskRequest<T> {
  id: number;
  task: T;
}

export type TaskReply<R> = { id: number; ok: true; result: R } | { id: number; ok: false; error: SerializedError };

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  hint?: string;
  check?: string;
  object?: string;
}

/** Turns a thrown value into data that postMessage can carry. */
export function serializeError(error: unknown): SerializedError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };

  const serialized: SerializedError = { name: error.name, message: error.message };
  if (error instanceof HvError) {
    serialized.code = error.code;
    serialized.hint = error.hint;
  }
  if (error instanceof VerificationError) {
    serialized.check = error.check;
    serialized.object = error.object;
  }
  return serialized;
}

/**
 * Rebuilds the error class of this project that the worker raised, with the
 * same message and hint. Other errors become plain Errors with the original
 * message and name.
 */
export function deserializeError(serialized: SerializedError): Error {
  const options = serialized.hint === undefined ? undefined : { hint: serialized.hint };

  if (serialized.name === 'VerificationError' && serialized.check !== undefined && serialized.object !== undefined) {
    // VerificationError prefixes its message with "CHECK failed for OBJECT: ".
    const prefix = `${serialized.check} failed for ${serialized.object}: `;
    const reason = serialized.message.startsWith(prefix) ? serialized.message.slice(prefix.length) : serialized.message;
    return new VerificationError(serialized.check, serialized.object, reason, options);
  }
  if (serialized.name === 'CryptoError') return new CryptoError(serialized.message, options);

  const error = new Error(serialized.message);
  error.name = serialized.name;
  return error;
}

/**
 * Returns the ArrayBuffer to transfer for `view`, copying first when the view
 * covers only part of its buffer (for example a pooled Node Buffer), so that
 * a transfer never hands over bytes that belong to someone else.
 */
export function transferableCopy(view: Uint8Array): { bytes: Uint8Array; buffer: ArrayBuffer } {
  const whole = view.buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === view.buffer.byteLength;
  const bytes = whole ? view : view.slice();
  return { bytes, buffer: bytes.buffer as ArrayBuffer };
}
