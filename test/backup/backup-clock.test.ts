import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { startAfterPreviousId, type Clock } from '../../src/backup/backup-clock.js';

/** Returns a clock that starts at `start` ms and moves only when slept on, recording each sleep. */
function fakeClock(start: number): Clock & { slept: number[] } {
  let now = start;
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    sleep: async (ms) => {
      slept.push(ms);
      now += ms;
    },
  };
}

describe('startAfterPreviousId', () => {
  let dir: string;
  let path: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hvb-clock-'));
    path = join(dir, 'web.last-backup');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('first backup starts at once', async () => {
    const clock = fakeClock(1_700_000_000_250);

    const started = await startAfterPreviousId(path, clock);

    expect(started.getTime()).toBe(1_700_000_000_250);
    expect(clock.slept).toEqual([]);
    expect(await readFile(path, 'utf8')).toBe('1700000000\n');
  });

  it('same second waits for the next', async () => {
    await writeFile(path, '1700000000\n');
    const clock = fakeClock(1_700_000_000_700);

    const started = await startAfterPreviousId(path, clock);

    expect(clock.slept).toEqual([300]);
    expect(started.getTime()).toBe(1_700_000_001_000);
    expect(await readFile(path, 'utf8')).toBe('1700000001\n');
  });

  it('later second starts at once', async () => {
    await writeFile(path, '1700000000\n');
    const clock = fakeClock(1_700_000_001_010);

    const started = await startAfterPreviousId(path, clock);

    expect(clock.slept).toEqual([]);
    expect(started.getTime()).toBe(1_700_000_001_010);
  });

  it('clock set back does not wait', async () => {
    await writeFile(path, '1700000500\n');
    const clock = fakeClock(1_700_000_000_000);

    await startAfterPreviousId(path, clock);

    expect(clock.slept).toEqual([]);
    expect(await readFile(path, 'utf8')).toBe('1700000000\n');
  });

  it('malformed record starts at once', async () => {
    await writeFile(path, 'garbage');
    const clock = fakeClock(1_700_000_000_000);

    await startAfterPreviousId(path, clock);

    expect(clock.slept).toEqual([]);
  });
});
