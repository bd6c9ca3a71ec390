// The grant MAC alone: every sealed column changes it, nothing but the exact MAC matches, and its
// key is not the pepper (which already hashes keys and console sessions).
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalGrant, GrantSeal } from '../../../src/server/state/grant-seal.js';
import type { ApiKeyRecord } from '../../../src/server/state/state-store.js';

const PEPPER = new TextEncoder().encode('a'.repeat(64));
const RECORD: ApiKeyRecord = {
  id: 'ak_0123456789abcdef',
  name: 'ci',
  prefix: '01234567',
  hash: 'f'.repeat(64),
  environments: ['production'],
  key_patterns: ['DB_*'],
  max_ttl_minutes: 5,
  created_at: '2030-01-01T00:00:00.000Z',
  expires_at: '2031-01-01T00:00:00.000Z',
  revoked_at: null,
  admin: false,
  fallback: false,
};

describe('GrantSeal', () => {
  const seal = new GrantSeal(PEPPER);
  const mac = seal.mac(RECORD);

  it('matches its own MAC only, in any record that differs in a sealed column not at all', () => {
    expect(seal.matches(RECORD, mac)).toBe(true);
    const changes: Array<Partial<ApiKeyRecord>> = [
      { id: 'ak_0123456789abcdee' },
      { name: 'cj' },
      { prefix: '01234568' },
      { hash: 'e'.repeat(64) },
      { environments: ['production', 'staging'] },
      { environments: ['production,staging'] },
      { key_patterns: ['*'] },
      { max_ttl_minutes: 60 },
      { max_ttl_minutes: null },
      { created_at: '2029-01-01T00:00:00.000Z' },
      { expires_at: null },
      { admin: true },
      { fallback: true },
    ];
    for (const change of changes) expect([change, seal.matches({ ...RECORD, ...change }, mac)]).toEqual([change, false]);
  });

  it('leaves out what changes after creation: a revocation keeps the MAC', () => {
    expect(seal.matches({ ...RECORD, revoked_at: '2030-06-01T00:00:00.000Z' }, mac)).toBe(true);
  });

  it('refuses a NULL, a MAC in upper case or cut short, and text that is no MAC', () => {
    for (const stored of [null, undefined, '', mac.toUpperCase(), mac.slice(0, 62), `${mac}00`, `${mac.slice(0, 63)}g`, 42]) expect(seal.matches(RECORD, stored)).toBe(false);
  });

  it('is keyed by a key derived from the pepper, never by the pepper itself, nor by another pepper', () => {
    expect(mac).not.toBe(createHmac('sha256', PEPPER).update(canonicalGrant(RECORD)).digest('hex'));
    expect(new GrantSeal(new TextEncoder().encode('b'.repeat(64))).matches(RECORD, mac)).toBe(false);
  });
});
