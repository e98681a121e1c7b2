/** Liveness of other processes, for locks and leftovers that record their owner's PID. */

/**
 * Returns true when a process with this PID exists. EPERM means it exists
 * but belongs to another user, which counts as running.
 */
export function isProcessRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
