import { afterEach, describe, expect, it, vi } from 'vitest';
import { Backoff, BACKOFF_CAP_MS, RetryTimer } from '../../../src/watch/backoff.js';

describe('Backoff', () => {
  it('doubles its ceiling from 1 s and never exceeds 60 s, however long the failures last', () => {
    const top = new Backoff(() => 0.999999);
    const waits = Array.from({ length: 40 }, () => top.next());
    expect(waits.slice(0, 7)).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000]);
    expect(Math.max(...waits)).toBeLessThanOrEqual(BACKOFF_CAP_MS);
  });

  it('never waits less than 100 ms, so an unlucky draw cannot spin', () => {
    const bottom = new Backoff(() => 0);
    expect(Array.from({ length: 5 }, () => bottom.next())).toEqual([100, 100, 100, 100, 100]);
  });

  it('starts over after a success', () => {
    const backoff = new Backoff(() => 0.999999);
    backoff.next();
    backoff.next();
    expect(backoff.failing).toBe(true);
    backoff.reset();
    expect(backoff.failing).toBe(false);
    expect(backoff.next()).toBe(1000);
  });
});

describe('RetryTimer', () => {
  afterEach(() => vi.useRealTimers());

  it('calls again once per schedule, after the delay it returns; a new schedule replaces the pending one; reset cancels it', () => {
    vi.useFakeTimers();
    let calls = 0;
    const retry = new RetryTimer(() => calls++);
    const first = retry.schedule();
    expect(first).toBeGreaterThanOrEqual(100);
    expect(first).toBeLessThanOrEqual(1000);
    retry.schedule();
    vi.advanceTimersByTime(BACKOFF_CAP_MS);
    expect(calls).toBe(1);
    retry.schedule();
    retry.reset();
    vi.advanceTimersByTime(BACKOFF_CAP_MS);
    expect(calls).toBe(1);
    // After a reset the next delay is short again.
    expect(retry.schedule()).toBeLessThanOrEqual(1000);
    retry.cancel();
  });
});
