// Group commit's deadlines on their own: a commit waiting behind a batch that hangs fails by its
// own deadline, and a batch runs with the earliest deadline of its commits.
import { describe, expect, it } from 'vitest';
import { CommitQueue } from '../../../src/server/state/sql/commit-queue.js';

describe('CommitQueue with maxWaitMs', () => {
  it('fails a commit still waiting at its deadline, without waiting for the batch before it', async () => {
    let release: () => void = () => undefined;
    const deadlines: Array<number | undefined> = [];
    const queue = new CommitQueue<string, string>(
      async (items, deadline) => {
        deadlines.push(deadline);
        if (items.includes('hangs')) await new Promise<void>((resolve) => (release = resolve));
        return items.map((item) => `${item} done`);
      },
      { maxWaitMs: 200, expired: () => new Error('expired') },
    );
    const askedAt = Date.now();
    const first = queue.push('hangs');
    await new Promise((resolve) => setTimeout(resolve, 20));
    const second = queue.push('second');
    await expect(second).rejects.toThrow('expired');
    const waited = Date.now() - askedAt;
    expect(waited).toBeGreaterThanOrEqual(200);
    expect(waited).toBeLessThan(2_000);
    release();
    await expect(first).resolves.toBe('hangs done');
    // The hung batch ran with its commit's deadline; the expired commit never ran.
    expect(deadlines).toHaveLength(1);
    expect(deadlines[0]).toBeGreaterThanOrEqual(askedAt + 200);
    await expect(queue.push('later')).resolves.toBe('later done');
    await queue.drained();
  });

  it('fails each waiting commit by its own deadline, one after another, and keeps one not yet due', async () => {
    let release: () => void = () => undefined;
    const ran: string[][] = [];
    const queue = new CommitQueue<string, string>(
      async (items) => {
        ran.push(items);
        if (items.includes('hangs')) await new Promise<void>((resolve) => (release = resolve));
        return items.map((item) => `${item} done`);
      },
      { maxWaitMs: 300, expired: () => new Error('expired') },
    );
    const first = queue.push('hangs');
    await new Promise((resolve) => setTimeout(resolve, 10));
    const settled: string[] = [];
    const track = (name: string, promise: Promise<string>) => promise.then(() => settled.push(`${name} ok`), () => settled.push(`${name} expired`));
    const early = track('early', queue.push('early'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const middle = track('middle', queue.push('middle'));
    await Promise.all([early, middle]);
    expect(settled).toEqual(['early expired', 'middle expired']);
    // Asked for after those expired, and released before its own deadline: it runs.
    const late = queue.push('late');
    release();
    await expect(first).resolves.toBe('hangs done');
    await expect(late).resolves.toBe('late done');
    expect(ran).toEqual([['hangs'], ['late']]);
  });

  it('without maxWaitMs, waits its turn however long it takes, with no deadline', async () => {
    const deadlines: Array<number | undefined> = [];
    const queue = new CommitQueue<number, number>(async (items, deadline) => {
      deadlines.push(deadline);
      await new Promise((resolve) => setTimeout(resolve, 50));
      return items.map((item) => item * 2);
    });
    const results = await Promise.all([queue.push(1), queue.push(2)]);
    expect(results).toEqual([2, 4]);
    expect(deadlines).toEqual([undefined]);
  });
});
