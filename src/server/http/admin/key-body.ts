// The body of `POST /api/v1/auth/keys`, checked exactly like the CLI's flags: a read key names
// the environments and patterns it may read; an admin key names none (it reads no secret).
import { type ApiKeyGrant, isValidKeyName } from '../../auth/api-keys.js';
import { SERVER_MAX_TTL_MINUTES } from '../../auth/tokens.js';
import { parseIsoTime } from '../../iso-time.js';
import { checkEnvironment, checkFields, checkPattern, positiveInteger, refuseApiKey, withoutNulls } from '../bodies.js';
import { badRequest } from '../http-error.js';

const MAX_GRANTS = 100;

// `admin` and `fallback` are not among them: a null there is more likely a falsy "no" than an
// unset field, and `fallback: null` taken as absent would allow the offline copy it meant to forbid.
const NULLABLE = ['environments', 'key_patterns', 'max_ttl_minutes', 'expires_at'];

export function parseKeyBody(given: Record<string, unknown>, now: Date): ApiKeyGrant {
  checkFields(given, ['name', ...NULLABLE, 'admin', 'fallback']);
  const body = withoutNulls(given, NULLABLE);
  refuseApiKey(body.name, 'name');
  if (typeof body.name !== 'string' || !isValidKeyName(body.name)) throw badRequest('name must be a string of 1 to 128 characters without control characters');
  if (body.admin !== undefined && typeof body.admin !== 'boolean') throw badRequest('admin must be true or false');
  const admin = body.admin === true;
  if (body.fallback !== undefined && typeof body.fallback !== 'boolean') throw badRequest('fallback must be true or false');
  const environments = list(body.environments, 'environments', (value) => checkEnvironment(value));
  const keyPatterns = list(body.key_patterns, 'key_patterns', (value) => checkPattern(value, 'each of key_patterns'));
  const maxTtlMinutes = positiveInteger(body.max_ttl_minutes, 'max_ttl_minutes', SERVER_MAX_TTL_MINUTES) ?? null;
  if (admin && (environments.length > 0 || keyPatterns.length > 0 || maxTtlMinutes !== null)) {
    throw badRequest('an admin key takes no environments, key_patterns or max_ttl_minutes: it manages, and reads no secret');
  }
  if (!admin && (environments.length === 0 || keyPatterns.length === 0)) throw badRequest('a read key needs at least one of environments and of key_patterns');
  return { name: body.name, environments, keyPatterns, maxTtlMinutes, expiresAt: expiry(body.expires_at, now), admin, fallback: body.fallback !== false };
}

function list(value: unknown, field: string, check: (item: unknown) => string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > MAX_GRANTS) throw badRequest(`${field} must be a list of at most ${MAX_GRANTS} entries`);
  return [...new Set(value.map(check))];
}

function expiry(value: unknown, now: Date): Date | null {
  if (value === undefined) return null;
  const date = typeof value === 'string' ? parseIsoTime(value) : undefined;
  if (date === undefined) throw badRequest('expires_at must be an ISO 8601 time such as 2030-01-31T00:00:00Z');
  if (date <= now) throw badRequest('expires_at is in the past');
  return date;
}
