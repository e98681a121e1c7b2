/**
 * Collection of short-lived buffers on demand. openpgp.js makes several
 * copies of every slice it encrypts or decrypts. V8 frees such buffers only
 * after tens of MiB of them pile up in a thread (its external memory limit),
 * so each worker thread carried about 70 MiB of dead buffers at its peak. A young-generation collection every couple of MiB frees them while
 * they are young; it takes well under a millisecond on the small heap of a
 * worker (bench/notes.md has the measurements).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collector = (options: { type: 'minor' | 'major' }) => void;

/** Undefined until first use; null when this runtime offers no collector. */
let collector: Collector | null | undefined;

/** Runs a young-generation collection, or nothing when the runtime does not allow it. */
export function collectYoungGarbage(): void {
  collector ??= loadCollector();
  collector?.({ type: 'minor' });
}

function loadCollector(): Collector | null {
  try {
    // The flag adds gc() only to contexts created after it is set, hence the new context.
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as Collector) : null;
  } catch {
    return null;
  }
}

/** Bytes of short-lived buffers between two young-generation collections. */
const COLLECT_EVERY_BYTES = 2 * 1024 * 1024;

/**
 * Counts the bytes of short-lived buffers that a loop leaves behind and runs
 * a young-generation collection after every 2 MiB of them.
 */
export class YoungGarbagePacer {
  private sinceCollection = 0;

  /** Records `bytes` more of garbage, collecting when 2 MiB have piled up. */
  add(bytes: number): void {
    this.sinceCollection += bytes;
    if (this.sinceCollection < COLLECT_EVERY_BYTES) return;

    this.sinceCollection = 0;
    collectYoungGarbage();
  }
}
