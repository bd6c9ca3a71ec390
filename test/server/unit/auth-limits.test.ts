import { describe, expect, it } from 'vitest';
import { AuthLimits } from '../../../src/server/http/limits/auth-limits.js';
import { limitKey, widerPrefix } from '../../../src/server/http/limits/client-address.js';

describe('limitKey', () => {
  it('counts IPv4 per address, IPv4-mapped IPv6 as IPv4, and IPv6 per /64 whatever the spelling', () => {
    expect(limitKey('127.0.0.1')).toBe('127.0.0.1');
    expect(limitKey('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(limitKey('::FFFF:10.1.2.3')).toBe('10.1.2.3');
    const a = limitKey('2001:db8:1:2::1');
    expect(a).toBe('2001:db8:1:2::/64');
    for (const same of ['2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0DB8:0001:0002:0:0:0:9', '2001:db8:1:2::5%eth0', '2001:db8:1:2:0:0:1.2.3.4']) expect(limitKey(same)).toBe(a);
    expect(limitKey('2001:db8:1:3::1')).not.toBe(a);
    expect(limitKey('::1')).toBe('::/64');
    expect(limitKey('2001:db8:0:0:1::1')).toBe('2001:db8::/64');
    expect(limitKey('2001:0:0:1::1')).toBe('2001:0:0:1::/64');
    expect(limitKey('fe80::1')).toBe('fe80::/64');
  });

  it('names the wider prefixes of a /64 the way limitKey names the /64, and none for IPv4', () => {
    const key = limitKey('2001:db8:1:2::1');
    expect([48, 32, 16, 0].map((bits) => widerPrefix(key, bits))).toEqual(['2001:db8:1::/48', '2001:db8::/32', '2001::/16', '::/0']);
    expect(widerPrefix(limitKey('2001:0:0:1::1'), 48)).toBe('2001::/48');
    expect(widerPrefix(limitKey('::1'), 48)).toBe('::/48');
    expect(widerPrefix(key, 64)).toBe(key);
    expect(widerPrefix(limitKey('192.0.2.1'), 48)).toBeUndefined();
    expect(widerPrefix('unknown', 48)).toBeUndefined();
  });

  it('keeps hostile or unknown strings as they are (they can only limit themselves)', () => {
    for (const odd of ['', 'unknown', ':::', '1.2.3.4.5', 'x'.repeat(100)]) expect(limitKey(odd)).toBe(odd);
  });
});

describe('AuthLimits', () => {
  it('limits a /64 as one client: 21 failures from 21 addresses of one prefix', () => {
    const limits = new AuthLimits();
    for (let i = 0; i < 21; i++) limits.recordFailure(`2001:db8::${i.toString(16)}`, 1000 + i);
    expect(limits.admit('2001:db8::ffff', 2000)).toEqual({ limited: true, scope: 'client', retryAfter: 59 });
    expect(limits.admit('2001:db8:0:1::1', 2000)).toEqual({ limited: false });
  });

  it('spends the server-wide budget across addresses, then lets a trickle through per second, until the window passes', () => {
    const limits = new AuthLimits({ serverBudget: 100, tricklePerSecond: 3 });
    for (let i = 0; i < 101; i++) limits.recordFailure(`10.0.${i >> 8}.${i & 255}`, 5_000);
    const admission = limits.admit('192.0.2.1', 5_001);
    expect(admission).toEqual({ limited: true, scope: 'server', retryAfter: 1 });
    expect([1, 2, 3, 4].map(() => limits.takeTrickle(5_500))).toEqual([true, true, true, false]);
    expect(limits.takeTrickle(6_000)).toBe(true);
    expect(limits.admit('192.0.2.1', 65_000)).toEqual({ limited: false });
  });
});
