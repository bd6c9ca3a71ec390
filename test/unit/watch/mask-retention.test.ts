import { afterEach, describe, expect, it, vi } from 'vitest';
import { maskedForms, MaskStream } from '../../../src/inject/mask.js';
import { KEPT_CHANGES, KEPT_MS, MaskGenerations, RetainedMask } from '../../../src/watch/mask-retention.js';

const masked = (generations: MaskGenerations): string[] => generations.needles().map((needle) => needle.toString());
const value = (index: number): string => `rotated-value-${index}`;

describe('MaskGenerations', () => {
  it(`keeps the current values and those of the last ${KEPT_CHANGES} sets replaced, not every set since the start`, () => {
    const generations = new MaskGenerations([value(0)]);
    for (let index = 1; index <= 20; index++) generations.replace([value(index)], index);
    const now = masked(generations);
    for (let index = 20 - KEPT_CHANGES; index <= 20; index++) expect(now).toContain(value(index));
    for (let index = 0; index < 20 - KEPT_CHANGES; index++) expect(now).not.toContain(value(index));
    // Its size does not grow with the number of changes.
    const kept = Array.from({ length: KEPT_CHANGES + 1 }, (_, index) => maskedForms(value(20 - index)).length);
    expect(generations.needles()).toHaveLength(kept.reduce((sum, count) => sum + count, 0));
  });

  it(`masks a replaced value for ${KEPT_MS / 3_600_000} h after it was replaced, then no more`, () => {
    const generations = new MaskGenerations(['first-value']);
    generations.replace(['second-value'], 1000);
    expect(generations.expire(1000 + KEPT_MS - 1)).toBe(1000 + KEPT_MS);
    expect(masked(generations)).toContain('first-value');
    expect(generations.expire(1000 + KEPT_MS)).toBeUndefined();
    expect(masked(generations)).not.toContain('first-value');
    expect(masked(generations)).toContain('second-value');
  });

  it('a value that comes back is masked as current, whatever has expired', () => {
    const generations = new MaskGenerations(['first-value']);
    generations.replace(['second-value'], 0);
    generations.replace(['first-value'], 10);
    generations.expire(10 + KEPT_MS);
    expect(masked(generations)).toContain('first-value');
    expect(masked(generations)).not.toContain('second-value');
  });
});

describe('RetainedMask', () => {
  afterEach(() => vi.useRealTimers());

  /** What the stream passes on for `text` (one write, then the tail it holds back, by ending it). */
  const through = (stream: MaskStream, text: string): string => {
    const out: Buffer[] = [];
    const onData = (chunk: Buffer): number => out.push(chunk);
    stream.on('data', onData);
    stream.write(`${text}\n`);
    stream.off('data', onData);
    return Buffer.concat(out).toString();
  };

  it('drops a replaced value from the streams by itself once its time is up, with no output or change to prompt it', () => {
    vi.useFakeTimers();
    const stream = new MaskStream([]);
    const mask = new RetainedMask([stream], ['first-value'], () => Date.now());
    mask.replace(['second-value']);
    expect(through(stream, 'first-value second-value')).toBe('****** ******\n');
    vi.advanceTimersByTime(KEPT_MS - 1);
    expect(through(stream, 'first-value')).toBe('******\n');
    vi.advanceTimersByTime(1);
    expect(through(stream, 'first-value second-value')).toBe('first-value ******\n');
    mask.close();
  });
});
