// When a cache may stand in for the vault, and when it may not. Two clocks: `now` is the real
// time, `judged` is the time the limits are checked against. They differ only under the test
// hook RWS_TEST_CLOCK_AHEAD_SECONDS, which moves `judged` forward and never back: it can make a
// cache expire sooner, never later. "Dated in the future" is checked against the real time, so
// the hook cannot hide a file from the future either.
import { formatDuration } from '../duration.js';
import { FallbackError, RwsError } from '../errors.js';
import type { CacheMetadata } from './cache-format.js';

/** A clock stepped back a little (NTP) must not make a fresh file unusable. */
const FUTURE_TOLERANCE_MS = 60_000;
/** The statuses a vault answers with while it is down or behind a proxy that cannot reach it. */
const UNAVAILABLE_STATUSES = new Set([502, 503, 504]);

export interface FallbackClock {
  now(): Date;
  /** Seconds added to the time limits are judged at (test hook; 0 in production). */
  aheadSeconds: number;
}

/** How long the cache served this run for, and how long it may still. */
export interface CacheStanding {
  ageSeconds: number;
  leftSeconds: number;
  until: Date;
}

// By code (and status), not by class: the vault client is a bundle of its own, loaded lazily.

/** Only these mean "the vault is away": the cache may stand in. */
export function isAvailabilityFailure(error: unknown): boolean {
  if (!(error instanceof RwsError)) return false;
  if (error.code === 'RWS_VAULT_UNREACHABLE' || error.code === 'RWS_VAULT_TIMEOUT') return true;
  const status = (error as { status?: unknown }).status;
  return error.code === 'RWS_VAULT_UNAVAILABLE' && typeof status === 'number' && UNAVAILABLE_STATUSES.has(status);
}

/** The vault said no to this key or this selection: the cache must go, and the run fails as it would have. */
export function isRefusal(error: unknown): boolean {
  return error instanceof RwsError && (error.code === 'RWS_VAULT_AUTH' || error.code === 'RWS_VAULT_FORBIDDEN' || error.code === 'RWS_VAULT_NOT_FOUND');
}

/** The standing of a cache at this moment, or the refusal that applies (checked in this order). */
export function judgeCache(metadata: CacheMetadata, maxAgeSeconds: number, clock: FallbackClock, path: string): CacheStanding {
  const now = clock.now();
  const judged = new Date(now.getTime() + clock.aheadSeconds * 1000);
  const fetchedAt = new Date(metadata.fetched_at);
  const notAfter = new Date(metadata.not_after);
  if (fetchedAt.getTime() > now.getTime() + FUTURE_TOLERANCE_MS) {
    throw new FallbackError('RWS_FALLBACK_FUTURE', `the fallback cache ${path} is dated ${metadata.fetched_at}, in the future: the clock of this host was moved back, or the file is not what it claims`, 'check the system clock; a successful online run rewrites the cache');
  }
  if (judged.getTime() > notAfter.getTime()) {
    throw new FallbackError('RWS_FALLBACK_EXPIRED', `the fallback cache ${path} expired at ${metadata.not_after}, the limit the vault set when it was fetched`, 'bring the vault back; its limit (secrets-server serve --fallback-max-age, and the API key\'s expiry) cannot be extended from here');
  }
  const ageSeconds = (judged.getTime() - fetchedAt.getTime()) / 1000;
  if (ageSeconds > maxAgeSeconds) {
    throw new FallbackError('RWS_FALLBACK_TOO_OLD', `the fallback cache ${path} was fetched ${formatDuration(ageSeconds)} ago, more than --fallback-max-age ${formatDuration(maxAgeSeconds)}`, 'bring the vault back, or allow an older cache with a longer --fallback-max-age (the vault\'s own limit still applies)');
  }
  const until = new Date(Math.min(notAfter.getTime(), fetchedAt.getTime() + maxAgeSeconds * 1000));
  return { ageSeconds, leftSeconds: (until.getTime() - judged.getTime()) / 1000, until };
}
