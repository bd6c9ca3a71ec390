// --mask with --on-change signal:SIG: one child lives through every change, and after the signal
// it may still print a value it was told to drop (a request in flight, a pooled connection that
// logs its URL, a program that rereads its file only when it next needs it). So a replaced value
// stays masked, but not for good: were every change's values kept for the rest of the run, weeks
// of rotations would grow the masks' memory, and the work of scanning every write (one search per
// form of each value), without bound. Kept: the current values always, and those of the last
// KEPT_CHANGES sets replaced, each for KEPT_MS after it was replaced.
import { buildNeedles, type MaskStream } from '../inject/mask.js';

/** Sets of replaced values kept: five changes back, whatever their pace. */
export const KEPT_CHANGES = 5;
/** A day: longer than a request, a pooled connection or a lazy reread should hold an old value. */
export const KEPT_MS = 24 * 60 * 60 * 1000;

interface Replaced {
  needles: Buffer[];
  /** When it stops being masked, on the caller's clock. */
  until: number;
}

/** What to mask at a given time; the clock is the caller's. */
export class MaskGenerations {
  private current: Buffer[];
  /** Oldest first, so the first is the next to expire. */
  private replaced: Replaced[] = [];

  constructor(values: Iterable<string>) {
    this.current = buildNeedles(values);
  }

  replace(values: Iterable<string>, now: number): void {
    this.replaced.push({ needles: this.current, until: now + KEPT_MS });
    this.current = buildNeedles(values);
    this.expire(now);
  }

  /** Forgets the sets past their time or beyond the count; returns when the next one expires. */
  expire(now: number): number | undefined {
    this.replaced = this.replaced.slice(-KEPT_CHANGES).filter((set) => set.until > now);
    return this.replaced[0]?.until;
  }

  needles(): Buffer[] {
    return [...this.current, ...this.replaced.flatMap((set) => set.needles)];
  }
}

/** One child's stdout and stderr masks, kept to MaskGenerations, and the timer of the next expiry. */
export class RetainedMask {
  private readonly generations: MaskGenerations;
  private timer: NodeJS.Timeout | undefined;

  /** A monotonic clock by default: a wall clock set back would keep old values longer. */
  constructor(
    private readonly streams: readonly MaskStream[],
    values: Iterable<string>,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.generations = new MaskGenerations(values);
  }

  replace(values: Iterable<string>): void {
    this.generations.replace(values, this.now());
    this.apply();
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private apply(): void {
    this.close();
    const next = this.generations.expire(this.now());
    const needles = this.generations.needles();
    for (const stream of this.streams) stream.setNeedles(needles);
    if (next === undefined) return;
    // Not a reason to keep the wrapper alive: it ends with its child.
    this.timer = setTimeout(() => this.apply(), Math.max(next - this.now(), 0)).unref();
  }
}
