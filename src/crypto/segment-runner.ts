/**
 * Runs segment tasks either in a worker pool or, with zero workers, on the
 * calling thread. Both paths apply the same watchdog and raise CryptoError
 * when it fires.
 */
import { CryptoError } from '../errors.js';
import { resolveWorkerScript } from '../util/worker-script.js';
import { TaskTimeoutError, WorkerPool } from './worker-pool.js';
import type { SegmentResult, SegmentTask, SegmentWorkerData } from './segment-tasks.js';
import { watchdogTimeoutMs } from './segment-tasks.js';

export interface RunnerOptions {
  workers: number;
  workerData: SegmentWorkerData;
  /** Runs a task on the calling thread, used when `workers` is 0. */
  runInProcess(task: SegmentTask): Promise<SegmentResult>;
  /** Overrides the watchdog bound, in milliseconds; meant for tests. */
  timeoutMs?: number;
}

/** Input bytes of a task, and whether the caller gives up ownership of them. */
export interface TaskPayload {
  bytes: Uint8Array;
  transfer: boolean;
  /**
   * Whether the caller owns the whole ArrayBuffer behind `bytes` and gives
   * it up too, so that a view of part of it moves as well. Without it only
   * a view that fills its ArrayBuffer moves: a smaller one may share memory
   * with other buffers, such as Node's pool of small Buffers.
   */
  wholeBuffer?: boolean;
  /** Whether the task overwrites its input bytes, as encryption and decryption in place do. */
  overwritesInput?: boolean;
  /** Words for errors, for example "encrypting a 16777216-byte segment". */
  description: string;
}

export class SegmentRunner {
  private readonly pool: WorkerPool<SegmentTask, SegmentResult> | undefined;
  private readonly options: RunnerOptions;

  constructor(options: RunnerOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 0) {
      throw new RangeError(`workers must be an integer of 0 or more, got ${options.workers}`);
    }
    this.options = options;
    if (options.workers > 0) {
      this.pool = new WorkerPool({
        script: resolveWorkerScript(import.meta.url, 'segment-worker'),
        size: options.workers,
        workerData: options.workerData,
      });
    }
  }

  /**
   * Runs `makeTask(bytes)`. For a worker, the bytes are moved when the
   * caller gives them up and owns what moves (see `wholeBuffer`), and copied
   * once otherwise. On the calling thread, a task that overwrites its input
   * gets a copy unless the caller gave the bytes up.
   */
  async run(payload: TaskPayload, makeTask: (bytes: Uint8Array) => SegmentTask): Promise<SegmentResult> {
    const timeoutMs = this.options.timeoutMs ?? watchdogTimeoutMs(payload.bytes.byteLength);

    try {
      if (!this.pool) {
        const bytes = payload.overwritesInput === true && !payload.transfer ? payload.bytes.slice() : payload.bytes;
        return await withWatchdog(this.options.runInProcess(makeTask(bytes)), timeoutMs);
      }

      const movable = payload.transfer && (payload.wholeBuffer === true ? payload.bytes.buffer instanceof ArrayBuffer : ownsWholeBuffer(payload.bytes));
      const bytes = movable ? payload.bytes : payload.bytes.slice();
      return await this.pool.run(makeTask(bytes), { transfer: [bytes.buffer as ArrayBuffer], timeoutMs });
    } catch (error) {
      if (error instanceof TaskTimeoutError) {
        throw new CryptoError(`${payload.description} timed out after ${Math.round(timeoutMs / 1000)} s and was aborted`, {
          cause: error,
          hint: 'the input may be malformed so that decoding hangs; check its SHA-256 against the manifest',
        });
      }
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.pool?.close();
  }
}

function ownsWholeBuffer(view: Uint8Array): boolean {
  return view.buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === view.buffer.byteLength;
}

/**
 * Rejects when `work` takes longer than `timeoutMs`.
 * NOTE: on the calling thread the abandoned work cannot be stopped: a busy
 * loop keeps the thread, and only a worker can be terminated.
 */
async function withWatchdog<R>(work: Promise<R>, timeoutMs: number): Promise<R> {
  let timer: NodeJS.Timeout | undefined;
  const watchdog = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TaskTimeoutError(timeoutMs)), timeoutMs);
  });

  try {
    return await Promise.race([work, watchdog]);
  } finally {
    clearTimeout(timer);
  }
}
