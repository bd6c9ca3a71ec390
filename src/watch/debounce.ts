// A trailing debounce with a maximum wait: act once a burst of changes has been quiet for
// `quietMs`, but never later than `maxWaitMs` after its first change. Five edits within a second
// make one restart (vault#20940 restarted per edit), and a file rewritten every second still
// gets through. The clock is a parameter so that the unit tests need no sleeping.

export interface Timers {
  now(): number;
  set(callback: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const realTimers: Timers = {
  now: () => performance.now(),
  set: (callback, ms) => setTimeout(callback, ms),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export class Debouncer {
  private firstAt: number | undefined;
  private timer: unknown;
  private reasons: string[] = [];

  constructor(
    private readonly quietMs: number,
    private readonly maxWaitMs: number,
    private readonly fire: (reasons: string[]) => void,
    private readonly timers: Timers = realTimers,
  ) {}

  /** A change (or a hint of one) was seen; `reason` is kept for the line that names it. */
  nudge(reason: string): void {
    const now = this.timers.now();
    this.firstAt ??= now;
    if (!this.reasons.includes(reason)) this.reasons.push(reason);
    if (this.timer !== undefined) this.timers.clear(this.timer);
    const delay = Math.max(0, Math.min(this.quietMs, this.firstAt + this.maxWaitMs - now));
    this.timer = this.timers.set(() => this.flush(), delay);
  }

  get pending(): boolean {
    return this.firstAt !== undefined;
  }

  cancel(): void {
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
    this.firstAt = undefined;
    this.reasons = [];
  }

  private flush(): void {
    const reasons = this.reasons;
    this.timer = undefined;
    this.firstAt = undefined;
    this.reasons = [];
    this.fire(reasons);
  }
}
