/**
 * One benchmark run per host at a time. Every run defines the same test
 * domains (hvb-bench-src and the restore targets), so a second run would
 * remove or redefine the first run's domain in the middle of its
 * measurements. The lock is a file holding the owner's PID; a lock whose
 * PID no longer runs is taken over.
 */
import { open, readFile, rm } from 'node:fs/promises';

const LOCK_PATH = '/run/hvbackup-bench.lock';

function isRunning(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

async function readOwner() {
  const text = await readFile(LOCK_PATH, 'utf8').catch(() => '');
  const pid = Number.parseInt(text, 10);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/** Takes the host's benchmark lock, or throws naming the run that holds it. Returns a function that releases it. */
export async function lockBenchmark() {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const file = await open(LOCK_PATH, 'wx', 0o644);
      await file.write(`${process.pid}\n`);
      await file.close();
      return async () => {
        if ((await readOwner()) === process.pid) await rm(LOCK_PATH, { force: true });
      };
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
    }

    const owner = await readOwner();
    if (owner !== undefined && owner !== process.pid && isRunning(owner)) {
      throw new Error(
        `another benchmark run (PID ${owner}) holds ${LOCK_PATH}; runs share the test domains, so wait for it to finish, or remove the file if PID ${owner} is not a benchmark run`,
      );
    }
    await rm(LOCK_PATH, { force: true });
  }
  throw new Error(`could not take ${LOCK_PATH}: another run took it at the same moment; start the benchmark again`);
}
