import { describe, expect, it } from 'vitest';

import { RateLimiter } from '../../src/util/rate-limiter.js';

describe('RateLimiter', () => {
  it('first second of bytes passes at once', async () => {
    const limiter = new RateLimiter(1_000_000);
    const started = Date.now();
    await limiter.take(500_000);
    expect(Date.now() - started).toBeLessThan(100);
  });

  it('paces bytes beyond the burst', async () => {
    const limiter = new RateLimiter(1_000_000);
    const started = Date.now();
    await limiter.take(1_000_000);
    await limiter.take(300_000);
    // 300 kB over a drained 1 MB/s bucket needs about 300 ms.
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('abort rejects a waiting take', async () => {
    const limiter = new RateLimiter(1000);
    await limiter.take(1000);
    const controller = new AbortController();
    const waiting = limiter.take(10_000, controller.signal);
    controller.abort();
    await expect(waiting).rejects.toThrow();
  });

  it('rejects a non-positive rate', () => {
    expect(() => new RateLimiter(0)).toThrow(RangeError);
  });
});
