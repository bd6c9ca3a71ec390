import { describe, expect, it } from 'vitest';
import { Debouncer, type Timers } from '../../../src/watch/debounce.js';

/** A clock the test moves by hand. */
class FakeTimers implements Timers {
  time = 0;
  private timers = new Map<number, { at: number; callback: () => void }>();
  private next = 1;
  now(): number {
    return this.time;
  }
  set(callback: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.set(id, { at: this.time + ms, callback });
    return id;
  }
  clear(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, timer]) => timer.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.time = due[1].at;
      due[1].callback();
    }
    this.time = end;
  }
}

describe('Debouncer', () => {
  it('five changes within a second fire once, after the last one has been quiet for the debounce', () => {
    const timers = new FakeTimers();
    const fired: Array<{ at: number; reasons: string[] }> = [];
    const debouncer = new Debouncer(2000, 30_000, (reasons) => fired.push({ at: timers.time, reasons }), timers);
    for (let index = 0; index < 5; index++) {
      debouncer.nudge(index % 2 === 0 ? 'a.env' : 'b.env');
      timers.advance(200);
    }
    expect(fired).toEqual([]);
    timers.advance(5000);
    expect(fired).toEqual([{ at: 800 + 2000, reasons: ['a.env', 'b.env'] }]);
  });

  it('a change every second still fires at the maximum wait', () => {
    const timers = new FakeTimers();
    const fired: number[] = [];
    const debouncer = new Debouncer(2000, 5000, () => fired.push(timers.time), timers);
    for (let index = 0; index < 12; index++) {
      debouncer.nudge('x');
      timers.advance(1000);
    }
    expect(fired).toEqual([5000, 10_000]);
  });

  it('a debounce of 0 fires on the next turn, once for a synchronous burst', () => {
    const timers = new FakeTimers();
    const fired: number[] = [];
    const debouncer = new Debouncer(0, 30_000, () => fired.push(timers.time), timers);
    debouncer.nudge('x');
    debouncer.nudge('x');
    expect(fired).toEqual([]);
    timers.advance(0);
    expect(fired).toEqual([0]);
  });

  it('cancel drops what is pending', () => {
    const timers = new FakeTimers();
    const fired: number[] = [];
    const debouncer = new Debouncer(100, 1000, () => fired.push(timers.time), timers);
    debouncer.nudge('x');
    expect(debouncer.pending).toBe(true);
    debouncer.cancel();
    timers.advance(5000);
    expect(fired).toEqual([]);
    expect(debouncer.pending).toBe(false);
  });
});
