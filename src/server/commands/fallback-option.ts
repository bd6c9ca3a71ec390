// `serve --fallback-max-age`: how long after a fetch a client may still use its offline copy.
// The batch answer's `fallback.not_after` is never later than now plus this (nor than the key's
// expiry); clients can only shorten it.
import { readDuration } from '../../duration.js';
import { DEFAULT_FALLBACK_MAX_AGE_SECONDS } from '../http/batch/fallback.js';
import { ServerUsageError } from '../usage-error.js';

/** A cap on the cap: an offline copy that outlives a quarter is a second vault nobody audits. */
const MOST_SECONDS = 90 * 86_400;

export function fallbackMaxAge(args: Record<string, unknown>): number {
  const value = args['fallback-max-age'];
  if (value === undefined) return DEFAULT_FALLBACK_MAX_AGE_SECONDS;
  const seconds = readDuration(String(value));
  const shown = JSON.stringify(String(value).slice(0, 64));
  if (seconds === undefined) throw new ServerUsageError(`Expected --fallback-max-age to be a duration such as 30m, 24h or 7d (one whole number and one unit: s, m, h or d; from 1s to 90d), got ${shown}`);
  if (seconds < 1 || seconds > MOST_SECONDS) throw new ServerUsageError(`Expected --fallback-max-age to be from 1s to 90d, got ${shown}`);
  return seconds;
}
