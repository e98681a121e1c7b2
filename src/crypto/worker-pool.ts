/**
 * A fixed-size pool of worker threads with a FIFO queue. Each task has a
 * timeout, after which its worker is terminated and replaced. Errors raised
 * in a worker reject only that task's promise, with the original message.
 * Idle workers are unref'd, so an idle pool does not keep the process alive,
 * but close() should still be called to free the threads.
 */
import { Worker } from 'node:worker_threads';

import { deserializeError, type TaskReply, type TaskRequest } from './worker-protocol.js';

/** A task ran longer than its timeout, and its worker was terminated. */
export class TaskTimeoutError extends Error {
  readonly timeoutMs: number;

  constructor(timeoutMs: number) {
    super(`worker task timed out after ${timeoutMs} ms; the worker was terminated and replaced`);
    this.name = 'TaskTimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

/** Restarts of idle workers tolerated before the pool gives up. */
const MAX_IDLE_DEATHS = 3;

export interface WorkerPoolOptions {
  /** Path of the compiled worker module (see resolveWorkerScript). */
  script: string;
  /** Number of worker threads, at least 1. */
  size: number;
  /** Passed to every worker as `workerData`, for example serialized keys. */
  workerData: unknown;
}

export interface RunOptions {
  /** ArrayBuffers to move to the worker instead of copying; they become detached here. */
  transfer?: ArrayBuffer[];
  timeoutMs: number;
}

interface PendingTask<T, R> {
  id: number;
  task: T;
  options: RunOptions;
  resolve(result: R): void;
  reject(error: Error): void;
}

interface Slot<T, R> {
  worker: Worker;
  current?: PendingTask<T, R>;
  timer?: NodeJS.Timeout;
}

export class WorkerPool<T, R> {
  private readonly options: WorkerPoolOptions;
  private readonly slots: Slot<T, R>[] = [];
  private readonly queue: PendingTask<T, R>[] = [];
  private nextId = 1;
  private closing = false;
  /** Workers that died with no task running since the last task completed. */
  private idleDeaths = 0;
  /** Set when workers keep dying on their own, for example on a broken script. */
  private failure: Error | undefined;
  private drained: (() => void) | undefined;

  constructor(options: WorkerPoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) {
      throw new RangeError(`worker pool size must be an integer of at least 1, got ${options.size}`);
    }
    this.options = options;
    for (let index = 0; index < options.size; index += 1) {
      const slot: Slot<T, R> = { worker: this.startWorker() };
      this.slots.push(slot);
      this.watch(slot);
    }
  }

  /** Number of worker threads. */
  get size(): number {
    return this.slots.length;
  }

  /** Queues a task and resolves with the worker's result. */
  run(task: T, options: RunOptions): Promise<R> {
    if (this.closing) return Promise.reject(new Error('worker pool is closed; create a new one'));
    if (this.failure) return Promise.reject(this.failure);

    return new Promise<R>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, task, options, resolve, reject });
      this.dispatch();
    });
  }

  /** Waits for queued and running tasks, then terminates every worker. */
  async close(): Promise<void> {
    this.closing = true;
    if (!this.isIdle()) {
      await new Promise<void>((resolve) => {
        this.drained = resolve;
      });
    }
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
  }

  private startWorker(): Worker {
    const worker = new Worker(this.options.script, { workerData: this.options.workerData });
    worker.unref();
    return worker;
  }

  private watch(slot: Slot<T, R>): void {
    const worker = slot.worker;

    worker.on('message', (reply: TaskReply<R>) => {
      if (slot.worker !== worker) return;
      const task = this.finish(slot, reply.id);
      if (!task) return;
      this.idleDeaths = 0;
      if (reply.ok) task.resolve(reply.result);
      else task.reject(deserializeError(reply.error));
    });

    // An uncaught error or an exit kills the thread; the running task fails
    // with that error and a fresh worker takes the slot.
    worker.on('error', (error) => {
      if (slot.worker !== worker) return;
      this.replace(slot, error);
    });
    worker.on('exit', (exitCode) => {
      if (slot.worker !== worker || this.closing && !slot.current) return;
      this.replace(slot, new Error(`worker thread exited with code ${exitCode} while running a task`));
    });
  }

  private finish(slot: Slot<T, R>, id: number): PendingTask<T, R> | undefined {
    const task = slot.current;
    if (!task || task.id !== id) return undefined;

    clearTimeout(slot.timer);
    slot.current = undefined;
    slot.timer = undefined;
    slot.worker.unref();
    queueMicrotask(() => this.dispatch());
    return task;
  }

  private replace(slot: Slot<T, R>, error: Error): void {
    const task = slot.current;
    clearTimeout(slot.timer);
    slot.current = undefined;
    slot.timer = undefined;

    // A worker that dies without a task, again and again, cannot load its
    // script: stop restarting it and fail every waiting task with the cause.
    if (!task) this.idleDeaths += 1;
    if (this.idleDeaths > MAX_IDLE_DEATHS) {
      this.failure = new Error(`worker threads keep exiting without running a task: ${error.message}`, { cause: error });
      for (const waiting of this.queue.splice(0)) waiting.reject(this.failure);
      void slot.worker.terminate();
      this.dispatch();
      return;
    }

    const old = slot.worker;
    slot.worker = this.startWorker();
    this.watch(slot);
    void old.terminate();

    task?.reject(error);
    this.dispatch();
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) break;
      if (slot.current) continue;

      const task = this.queue.shift() as PendingTask<T, R>;
      slot.current = task;
      slot.worker.ref();
      slot.timer = setTimeout(() => this.replace(slot, new TaskTimeoutError(task.options.timeoutMs)), task.options.timeoutMs);

      const request: TaskRequest<T> = { id: task.id, task: task.task };
      try {
        slot.worker.postMessage(request, task.options.transfer ?? []);
      } catch (error) {
        // postMessage fails synchronously for data that cannot be cloned.
        clearTimeout(slot.timer);
        slot.current = undefined;
        slot.worker.unref();
        task.reject(error as Error);
      }
    }

    if (this.drained && this.isIdle()) {
      const drained = this.drained;
      this.drained = undefined;
      drained();
    }
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && this.slots.every((slot) => !slot.current);
  }
}
