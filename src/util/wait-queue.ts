/**
 * Callers that wait, in arrival order, for a value that another caller hands
 * over later, such as a free buffer. Aborting a caller's signal takes it out
 * of the queue and rejects its wait with the signal's reason.
 */
interface Waiter<Request, Result> {
  request: Request;
  resolve(result: Result): void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class WaitQueue<Request, Result> {
  private readonly waiters: Waiter<Request, Result>[] = [];

  /** Callers waiting now. */
  get length(): number {
    return this.waiters.length;
  }

  /** Waits until serveNext() hands this caller the result made for `request`. */
  wait(request: Request, signal?: AbortSignal): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      const waiter: Waiter<Request, Result> = { request, resolve, signal };
      if (signal) {
        waiter.onAbort = () => {
          const index = this.waiters.indexOf(waiter);
          if (index >= 0) this.waiters.splice(index, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.waiters.push(waiter);
    });
  }

  /** Hands the first waiter `make(request)` with its own request. Returns false when no caller waits. */
  serveNext(make: (request: Request) => Result): boolean {
    const waiter = this.waiters.shift();
    if (waiter === undefined) return false;

    if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    waiter.resolve(make(waiter.request));
    return true;
  }
}
