// The server's side of the wrapper's offline fallback (run-with-secrets --fallback): each batch
// answer says whether its secrets may be cached and until when, and a client reports the runs it
// served from its cache while the vault was away, one `secret.offline_use` audit row each.
import { globMatch } from '../../../glob.js';
import { authenticateApiKey } from '../../auth/api-keys.js';
import type { TokenClaims } from '../../auth/tokens.js';
import { isValidSubject } from '../../auth/tokens.js';
import { parseIsoTime } from '../../iso-time.js';
import type { TokenStatus } from '../../state/state-store.js';
import { checkEnvironment, checkFields, checkName } from '../bodies.js';
import type { Exchange, HandlerDeps, Reply } from '../handlers.js';
import { badRequest, forbidden } from '../http-error.js';
import { bearerCredential, readJsonBody } from '../request.js';
import { readQuery } from '../admin/query.js';

export const DEFAULT_FALLBACK_MAX_AGE_SECONDS = 24 * 3600;
/** As many names as a batch may ask for. */
const MAX_KEYS = 1000;
/** A report older than the longest --fallback-max-age cannot describe a legitimate use. */
const OLDEST_USE_SECONDS = 90 * 86_400;
const CLOCK_SKEW_SECONDS = 300;

export interface FallbackAnswer {
  allowed: boolean;
  not_after: string | null;
}

/**
 * Usage-limited tokens are never cached (a copy would outlive the limit), nor is anything a
 * --no-fallback key reads. Otherwise the copy may be used until now plus the server's cap, and
 * never past the key's own expiry.
 */
export function fallbackAnswer(claims: TokenClaims, status: TokenStatus, now: Date, maxAgeSeconds: number): FallbackAnswer {
  const key = status.key;
  if (claims.usage_limit !== null || key === undefined || !key.fallback) return { allowed: false, not_after: null };
  let notAfter = now.getTime() + maxAgeSeconds * 1000;
  if (key.expiresAt !== null) notAfter = Math.min(notAfter, Date.parse(key.expiresAt));
  return { allowed: true, not_after: new Date(notAfter).toISOString() };
}

/**
 * POST /api/v1/fallback/uses with the API key as Bearer: one run served from the cache. The row
 * records the server's time; the run's own time is in its subject, since a client must not be
 * able to date rows of the trail. Names only, checked against the key's grants.
 */
export async function reportOfflineUse(deps: HandlerDeps, x: Exchange, query: string): Promise<Reply> {
  const apiKey = await authenticateApiKey(deps.state, deps.pepper, bearerCredential(x.req), x.now);
  x.audit.api_key_id = apiKey.id;
  x.liveKey = apiKey.id;
  if (apiKey.admin) throw forbidden('an admin API key reads no secrets, so it has no offline uses to report');
  const raw = await readJsonBody(x.req);
  readQuery(query, []);
  checkFields(raw, ['subject', 'environment', 'keys', 'used_at']);
  if (typeof raw.subject !== 'string' || !isValidSubject(raw.subject)) throw badRequest('subject must be a string of 1 to 256 characters without control characters');
  const environment = checkEnvironment(raw.environment);
  if (!Array.isArray(raw.keys) || raw.keys.length > MAX_KEYS) throw badRequest(`keys must be a list of at most ${MAX_KEYS} names`);
  const keys = [...new Set(raw.keys.map(checkName))];
  const usedAt = typeof raw.used_at === 'string' ? parseIsoTime(raw.used_at) : undefined;
  if (usedAt === undefined) throw badRequest('used_at must be an ISO 8601 time such as 2030-01-31T00:00:00Z');
  const age = (x.now.getTime() - usedAt.getTime()) / 1000;
  if (age < -CLOCK_SKEW_SECONDS) throw badRequest("used_at is more than 5 minutes ahead of the server's clock; check the client's clock");
  if (age > OLDEST_USE_SECONDS) throw badRequest('used_at is older than 90 days; a use that old is no longer recorded');
  Object.assign(x.audit, { environment, keys });
  // What the key could never have read, it cannot have used offline: a confused or forged report.
  if (!apiKey.environments.includes(environment)) throw forbidden(`this API key grants no access to environment ${environment}`);
  const outside = keys.find((name) => !apiKey.key_patterns.some((pattern) => globMatch(pattern, name)));
  if (outside !== undefined) throw forbidden(`${outside} is not within this API key's key patterns`);
  const when = ` (offline at ${usedAt.toISOString()})`;
  // Cut by code points, as isValidSubject counts them: a cut between the halves of a surrogate
  // pair (an emoji) would leave a lone surrogate, which the audit trail can only keep as U+FFFD.
  x.audit.subject = `${[...raw.subject].slice(0, 256 - when.length).join('')}${when}`;
  // The client deletes its only record of the use once it has this answer: the row must outlive
  // a power loss before the answer is sent (an fsynced commit, as a mint's).
  return { status: 204, body: undefined, durable: true };
}
