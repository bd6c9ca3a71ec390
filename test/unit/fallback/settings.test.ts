// The flag rules of --fallback/--offline that need no server: --offline --watch (wired here for
// when --watch exists), tokens, the test clock hook, and where the cache goes.
import { describe, expect, it } from 'vitest';
import { withFallback, type FallbackRequest } from '../../../src/fallback/settings.js';
import { VaultSource } from '../../../src/sources/vault.js';

const API_KEY = `rws_sk_${'5e'.repeat(16)}`;
const client = { baseUrl: 'https://vault.example:8200', timeoutMs: 1000, retries: 0, insecureHttp: false };
const base: FallbackRequest = {
  path: '',
  maxAge: undefined,
  offline: false,
  watch: false,
  credential: { kind: 'api-key', value: API_KEY, origin: 'RWS_API_KEY' },
  client,
  environment: 'prod',
  patterns: ['DB_*'],
  keys: [],
  perKeyRequests: false,
  subject: 'test',
  env: { HOME: '/home/someone' },
  uid: 1000,
  cwd: '/srv/job',
};
const vault = new VaultSource({ client, environment: 'prod', patterns: ['DB_*'], keys: [], credential: base.credential, subject: 'test', ttlMinutes: 1, perKeyRequests: false, fallback: true });
const refusal = (request: Partial<FallbackRequest>) => {
  try {
    withFallback(vault, { ...base, ...request });
  } catch (error) {
    return `${(error as { code: string }).code}: ${(error as Error).message}`;
  }
  return 'accepted';
};

describe('--fallback and --offline settings', () => {
  it('refuses --offline with --watch, a token, --per-key-requests and a malformed max age', () => {
    expect(refusal({ offline: true, watch: true })).toBe('RWS_USAGE: --offline cannot be combined with --watch: an offline run hears of no changes');
    expect(refusal({ watch: true })).toBe('RWS_USAGE: --fallback cannot be combined with --watch');
    expect(refusal({ credential: { kind: 'token', value: 'a.b.c', origin: '--token-file t' } })).toContain('RWS_USAGE: --fallback and --offline need an API key');
    expect(refusal({ perKeyRequests: true })).toContain('need the batch endpoint');
    for (const maxAge of ['24', '1h30m', '-1h', ' 1h']) expect(refusal({ maxAge })).toContain('--fallback-max-age expects a duration');
    // A duration, but under the least there is: the range is what is said.
    for (const maxAge of ['0s', '0d']) expect(refusal({ maxAge })).toBe(`RWS_USAGE: --fallback-max-age must be at least 1s (a copy is never younger than that), got "${maxAge}"`);
    expect(refusal({ path: undefined, maxAge: '1h' })).toBe('RWS_USAGE: --fallback-max-age needs --fallback or --offline');
  });

  it('takes the test clock hook only as a forward whole number of seconds', () => {
    for (const value of ['-1', '1e3', '0x10', '99999999999', 'soon']) expect(refusal({ env: { ...base.env, RWS_TEST_CLOCK_AHEAD_SECONDS: value } })).toContain('RWS_TEST_CLOCK_AHEAD_SECONDS must be a whole number');
    expect(refusal({ env: { ...base.env, RWS_TEST_CLOCK_AHEAD_SECONDS: '3600' } })).toBe('accepted');
  });

  it('puts the cache under XDG_STATE_HOME, else ~/.local/state, else refuses; --fallback=PATH is taken from the working directory', () => {
    const where = (request: Partial<FallbackRequest>) => (withFallback(vault, { ...base, ...request }) as unknown as { settings: { cache: { path: string } } }).settings.cache.path;
    expect(where({})).toMatch(/^\/home\/someone\/\.local\/state\/run-with-secrets\/fallback\/[0-9a-f]{32}\.bin$/);
    expect(where({ env: { HOME: '/home/someone', XDG_STATE_HOME: '/var/state' } })).toMatch(/^\/var\/state\/run-with-secrets\/fallback\/[0-9a-f]{32}\.bin$/);
    expect(where({ env: { HOME: '/home/someone', XDG_STATE_HOME: 'relative' } })).toMatch(/^\/home\/someone\/\.local\/state\//);
    expect(where({ path: 'cache/nightly.bin' })).toBe('/srv/job/cache/nightly.bin');
    // Each API key queues its offline uses apart: they are reported with the key of the run that sends them.
    const queue = (request: Partial<FallbackRequest>) => (withFallback(vault, { ...base, ...request }) as unknown as { settings: { queue: { dir: string } } }).settings.queue.dir;
    const other = { kind: 'api-key' as const, value: `rws_sk_${'7f'.repeat(16)}`, origin: 'RWS_API_KEY' };
    expect(queue({ path: 'cache/nightly.bin' })).toMatch(/^\/srv\/job\/cache\/nightly\.bin\.[0-9a-f]{12}\.uses$/);
    expect(queue({ path: 'cache/nightly.bin', credential: other })).not.toBe(queue({ path: 'cache/nightly.bin' }));
    expect(queue({})).toBe(`${where({})}.uses`);
    expect(refusal({ env: {} })).toContain('neither XDG_STATE_HOME nor HOME is set');
  });
});
