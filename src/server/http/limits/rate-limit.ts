// Failed authentications per client address: more than `limit` 401s within a window starting at
// the first of them locks the address out (429) until the window has passed.

export class FailureLimiter {
  readonly #windows = new Map<string, { start: number; failures: number }>();

  constructor(
    private readonly limit = 20,
    private readonly windowMs = 60_000,
    private readonly maxAddresses = 100_000,
  ) {}

  /** Seconds until `address` may try again, or 0 when it is not locked out. */
  retryAfter(address: string, now: number): number {
    const window = this.#windows.get(address);
    if (window === undefined) return 0;
    const left = window.start + this.windowMs - now;
    if (left <= 0) {
      this.#windows.delete(address);
      return 0;
    }
    return window.failures > this.limit ? Math.ceil(left / 1000) : 0;
  }

  recordFailure(address: string, now: number): void {
    const window = this.#windows.get(address);
    if (window !== undefined && now - window.start < this.windowMs) {
      window.failures++;
      return;
    }
    if (this.#windows.size >= this.maxAddresses) this.#sweep(now);
    this.#windows.set(address, { start: now, failures: 1 });
  }

  #sweep(now: number): void {
    for (const [address, window] of this.#windows) if (now - window.start >= this.windowMs) this.#windows.delete(address);
    // Still full: an address flood. Forget the oldest rather than grow without bound.
    for (const address of this.#windows.keys()) {
      if (this.#windows.size < this.maxAddresses) break;
      this.#windows.delete(address);
    }
  }
}
