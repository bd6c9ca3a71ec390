// The Authorization header's Bearer credential, parsed by hand on the hot path: it must take and
// refuse exactly what RFC 6750's `Bearer 1*SP token` regular expression did.
import { describe, expect, it } from 'vitest';
import { bearerOf } from '../../../src/server/http/request.js';

const byRegex = (header: string): string | undefined => /^Bearer +([^ ]+)$/i.exec(header)?.[1];

describe('bearerOf', () => {
  it('agrees with /^Bearer +([^ ]+)$/i on well-formed, odd and hostile headers', () => {
    const token = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqb2IifQ.c2lnbmF0dXJl';
    const headers = [
      `Bearer ${token}`, `bearer ${token}`, `BEARER ${token}`, `bEaReR    ${token}`, `Bearer  ${token}`,
      `Bearer ${token} `, `Bearer ${token} x`, `Bearer\t${token}`, `Bearer${token}`, 'Bearer', 'Bearer ', 'Bearer  ', '',
      `Basic ${token}`, `Bearerx ${token}`, ` Bearer ${token}`, `Bearer ${token}\t`, `Bearer \t${token}`, `Bearer x\ny`,
      'Bearer a', 'Bearer  a', `B\u0130arer ${token}`, `Bear\u212Ar ${token}`, `\u0042earer ${token}`, `Bearer ${'x'.repeat(10_000)}`,
      `Bearer \u00e9\u00ff`, `Bearer ${token.replace('.', '. ')}`,
    ];
    for (const header of headers) expect([header.slice(0, 40), bearerOf(header)]).toEqual([header.slice(0, 40), byRegex(header)]);
    expect(bearerOf(undefined)).toBeUndefined();
    expect(bearerOf(`bEaReR    ${token}`)).toBe(token);
  });
});
