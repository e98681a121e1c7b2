import { describe, expect, it } from 'vitest';

import { WaitQueue } from '../../src/util/wait-queue.js';

describe('WaitQueue', () => {
  it('serves waiters in arrival order', async () => {
    const queue = new WaitQueue<string, string>();
    const first = queue.wait('a');
    const second = queue.wait('b');

    queue.serveNext((request) => `${request}1`);
    queue.serveNext((request) => `${request}2`);

    expect(await first).toBe('a1');
    expect(await second).toBe('b2');
    expect(queue.length).toBe(0);
  });

  it('serveNext reports an empty queue', () => {
    const queue = new WaitQueue<undefined, number>();
    let calls = 0;

    expect(queue.serveNext(() => (calls += 1))).toBe(false);
    expect(calls).toBe(0);
  });

  it('abort removes only that waiter', async () => {
    const queue = new WaitQueue<string, string>();
    const cancel = new AbortController();
    const aborted = queue.wait('a', cancel.signal);
    const remaining = queue.wait('b');

    cancel.abort(new Error('stopped'));
    queue.serveNext((request) => request);

    await expect(aborted).rejects.toThrow('stopped');
    expect(await remaining).toBe('b');
    expect(queue.length).toBe(0);
  });
});
