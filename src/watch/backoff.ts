// Waits between refreshes that failed: full jitter (AWS architecture blog, "Exponential Backoff
// And Jitter"), doubling from 1 s and capped at 60 s, so a thousand wrappers that lost their
// vault at once neither spin nor come back in step (vault#12566 was DoS'd by clients that did).

export const BACKOFF_BASE_MS = 1000;
export const BACKOFF_CAP_MS = 60_000;

export class Backoff {
  private failures = 0;

  constructor(
    private readonly random: () => number = Math.random,
    private readonly baseMs = BACKOFF_BASE_MS,
    private readonly capMs = BACKOFF_CAP_MS,
  ) {}

  /** The wait before the next attempt, after one more failure. Never below a tenth of the base. */
  next(): number {
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    return Math.max(this.baseMs / 10, Math.round(this.random() * ceiling));
  }

  reset(): void {
    this.failures = 0;
  }

  get failing(): boolean {
    return this.failures > 0;
  }
}

/**
 * A step that no source will announce again once it failed (a secrets file refused by a full
 * runtime directory): `again` is called after the next backoff delay, until `reset`.
 */
export class RetryTimer {
  private readonly backoff = new Backoff();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly again: () => void) {}

  /** Schedules the next try (replacing one already scheduled); returns its delay in ms. */
  schedule(): number {
    this.cancel();
    const ms = this.backoff.next();
    this.timer = setTimeout(this.again, ms);
    return ms;
  }

  /** It succeeded: the next failure starts from the shortest delay again. */
  reset(): void {
    this.backoff.reset();
    this.cancel();
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
