// The registry of held requests on its own: bounds, what wakes a request, checks that overlap a
// change, and closing. The watch is a plain function the test calls, as the store's watcher does.
import { describe, expect, it } from 'vitest';
import { HttpError } from '../../../src/server/http/http-error.js';
import { LongPolls } from '../../../src/server/http/batch/long-polls.js';

function watchable() {
  const listeners = new Map<string, Set<() => void>>();
  return {
    watch: (environment: string, listener: () => void) => {
      const set = listeners.get(environment) ?? new Set();
      listeners.set(environment, set);
      set.add(listener);
      return () => set.delete(listener);
    },
    change: (environment: string) => {
      for (const listener of [...(listeners.get(environment) ?? [])]) listener();
    },
    watching: (environment: string) => listeners.get(environment)?.size ?? 0,
  };
}

const later = (ms: number) => Date.now() + ms;
const tick = () => new Promise((resolve) => setTimeout(resolve, 10));

describe('LongPolls', () => {
  it('refuses past the per-key bound with 429 and past the total with 503, and frees a slot on release', async () => {
    const polls = new LongPolls({ total: 3, perKey: 2 }, watchable().watch);
    const request = (apiKeyId: string) => ({ environment: 'prod', apiKeyId, until: later(60_000), unchanged: async () => true });
    const first = polls.hold(request('a'));
    void polls.hold(request('a'));
    const refusal = (run: () => unknown) => {
      try {
        run();
      } catch (error) {
        return `${(error as HttpError).status} ${(error as HttpError).code}`;
      }
      return 'held';
    };
    expect(refusal(() => polls.hold(request('a')))).toBe('429 RWS_RATE_LIMITED');
    void polls.hold(request('b'));
    expect(refusal(() => polls.hold(request('c')))).toBe('503 RWS_SERVER_BUSY');
    expect(polls.held).toBe(3);
    polls.closeAll();
    await first;
    expect(polls.held).toBe(0);
    // Closed: later requests are answered at once, not held.
    await polls.hold(request('a'));
    expect(polls.held).toBe(0);
  });

  it('answers at the deadline, and stops watching then', async () => {
    const files = watchable();
    const polls = new LongPolls({ total: 10, perKey: 10 }, files.watch);
    const started = Date.now();
    const held = polls.hold({ environment: 'prod', apiKeyId: 'a', until: later(100), unchanged: async () => true });
    expect(files.watching('prod')).toBe(1);
    await held;
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(files.watching('prod')).toBe(0);
  });

  it('wakes only when the check says the answer changed; a throwing check keeps it held', async () => {
    const files = watchable();
    const polls = new LongPolls({ total: 10, perKey: 10 }, files.watch);
    let answer: 'same' | 'throw' | 'changed' = 'same';
    let checks = 0;
    let done = false;
    void polls
      .hold({
        environment: 'prod',
        apiKeyId: 'a',
        until: later(60_000),
        unchanged: async () => {
          checks++;
          if (answer === 'throw') throw new Error('half-written file');
          return answer === 'same';
        },
      })
      .then(() => (done = true));
    files.change('prod');
    files.change('staging');
    await tick();
    answer = 'throw';
    files.change('prod');
    await tick();
    expect([checks, done]).toEqual([2, false]);
    answer = 'changed';
    files.change('prod');
    await tick();
    expect([checks, done]).toEqual([3, true]);
    expect(polls.held).toBe(0);
  });

  it('looks once more when a change comes while a check is running, and not twice for changes while queued', async () => {
    const files = watchable();
    const polls = new LongPolls({ total: 10, perKey: 10 }, files.watch);
    let release: (() => void) | undefined;
    let version = 0;
    const seen: number[] = [];
    void polls.hold({
      environment: 'prod',
      apiKeyId: 'a',
      until: later(60_000),
      unchanged: async () => {
        const read = version;
        await new Promise<void>((resolve) => (release = resolve));
        seen.push(read);
        return read < 2;
      },
    });
    files.change('prod'); // check 1 starts, reads version 0
    version = 2;
    files.change('prod'); // while running: one more look afterwards
    files.change('prod');
    release?.();
    await tick();
    release?.();
    await tick();
    expect(seen).toEqual([0, 2]);
    expect(polls.held).toBe(0);
  });

  it('re-checks every held request when the state moved, and none when it did not', async () => {
    let moved = false;
    const polls = new LongPolls({ total: 10, perKey: 10 }, undefined, async () => moved);
    let checks = 0;
    void polls.hold({ environment: 'prod', apiKeyId: 'a', until: later(60_000), unchanged: async () => (checks++, true) });
    await new Promise((resolve) => setTimeout(resolve, 5_200));
    expect(checks).toBe(0);
    moved = true;
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    expect(checks).toBe(1);
    polls.closeAll();
  }, 15_000);

  it('lets the request end its own hold (a client that hung up)', async () => {
    const polls = new LongPolls({ total: 10, perKey: 10 }, watchable().watch);
    let end: (() => void) | undefined;
    const held = polls.hold({ environment: 'prod', apiKeyId: 'a', until: later(60_000), unchanged: async () => true, onHeld: (release) => (end = release) });
    end?.();
    await held;
    expect(polls.held).toBe(0);
  });
});
