/**
 * A token bucket that paces bytes to a rate, for the per-run bandwidth
 * limit. Callers take the size of a whole object before sending it, so the
 * long-run average stays at the rate while a single object may burst up to
 * one second's worth of bytes (or its own size, whichever is larger).
 */
import { setTimeout as sleep } from 'node:timers/promises';

export class RateLimiter {
  private available: number;
  private updatedAt = Date.now();
  private queue: Promise<void> = Promise.resolve();

  constructor(readonly bytesPerSecond: number) {
    if (!(bytesPerSecond > 0)) throw new RangeError(`rate must be positive, got ${bytesPerSecond}`);
    this.available = bytesPerSecond;
  }

  /** Waits until `bytes` may be sent. Requests are served in arrival order. */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    const turn = this.queue.then(() => this.wait(bytes, signal));
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async wait(bytes: number, signal?: AbortSignal): Promise<void> {
    this.refill();
    this.available -= bytes;
    if (this.available >= 0) return;

    // Going into debt lets an object larger than the bucket through after its share of time.
    const delayMs = (-this.available / this.bytesPerSecond) * 1000;
    await sleep(delayMs, undefined, { signal });
    this.refill();
  }

  private refill(): void {
    const now = Date.now();
    this.available = Math.min(this.bytesPerSecond, this.available + ((now - this.updatedAt) / 1000) * this.bytesPerSecond);
    this.updatedAt = now;
  }
}
