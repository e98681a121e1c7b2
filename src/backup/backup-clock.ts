/**
 * The start time of a new backup. Backup ids count whole seconds and order
 * the backups of a domain (the latest is the chain's parent and the
 * rollback guard's reference), so a backup must not start in the second of
 * the one before it. The second of the last id is kept in a file per
 * domain in the state directory (the locks directory holds only locks).
 * Only a backup that would share that second waits for the next one, so a
 * backup that ends within a second no longer holds its lock into the next
 * second.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<unknown>;
}

const systemClock: Clock = { now: () => Date.now(), sleep: (ms) => sleep(ms) };

/**
 * Returns the start time for a new backup id, after waiting for the next
 * second when the previous id (recorded in `path`) has the current second,
 * and records the new second in `path`, whose directory must exist. The
 * caller must hold the domain's lock. A clock set back since the last id
 * does not wait, and the ids then sort by the clock's time.
 */
export async function startAfterPreviousId(path: string, clock: Clock = systemClock): Promise<Date> {
  const previous = await readSecond(path);

  let now = clock.now();
  if (previous !== undefined && Math.floor(now / 1000) === previous) {
    await clock.sleep((previous + 1) * 1000 - now);
    now = clock.now();
  }

  // Written to a temporary name and renamed, so a crash leaves the old second or the new one.
  const temporary = `${path}.tmp`;
  await writeFile(temporary, `${Math.floor(now / 1000)}\n`);
  await rename(temporary, path);
  return new Date(now);
}

async function readSecond(path: string): Promise<number | undefined> {
  try {
    const second = Number.parseInt(await readFile(path, 'utf8'), 10);
    return Number.isSafeInteger(second) ? second : undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
