import { describe, expect, it } from 'vitest';
import { FailureLimiter } from '../../../src/server/http/limits/rate-limit.js';

describe('FailureLimiter', () => {
  it('locks an address out after more than 20 failures within 60 s, until the minute has passed', () => {
    const limiter = new FailureLimiter();
    const t0 = 1_000_000;
    for (let i = 0; i < 20; i++) limiter.recordFailure('10.0.0.1', t0 + i);
    expect(limiter.retryAfter('10.0.0.1', t0 + 100)).toBe(0);
    limiter.recordFailure('10.0.0.1', t0 + 200);
    expect(limiter.retryAfter('10.0.0.1', t0 + 300)).toBe(60);
    expect(limiter.retryAfter('10.0.0.2', t0 + 300)).toBe(0);
    expect(limiter.retryAfter('10.0.0.1', t0 + 59_999)).toBe(1);
    expect(limiter.retryAfter('10.0.0.1', t0 + 60_000)).toBe(0);
  });

  it('stays bounded under an address flood', () => {
    const limiter = new FailureLimiter(20, 60_000, 100);
    for (let i = 0; i < 1000; i++) limiter.recordFailure(`10.0.${i >> 8}.${i & 255}`, 5);
    for (let i = 0; i < 25; i++) limiter.recordFailure('192.168.0.1', 6);
    expect(limiter.retryAfter('192.168.0.1', 7)).toBeGreaterThan(0);
  });
});
