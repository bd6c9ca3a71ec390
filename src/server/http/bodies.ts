// The two request bodies, checked exactly: unknown fields (`__proto__` included) are refused,
// types are what the API says, and every name and pattern is in its grammar.
import { isValidPattern } from '../../glob.js';
import { isValidName } from '../../names.js';
import { badRequest, HttpError } from './http-error.js';
import { ENVIRONMENT_GRAMMAR_TEXT, isValidEnvironment } from '../store/layout.js';
import { isValidSubject } from '../auth/tokens.js';
import { holdsApiKey } from '../../credential-shapes.js';

const MAX_USAGE_LIMIT = 1_000_000;
const MAX_BATCH_KEYS = 1000;

export interface GenerateBody {
  subject: string;
  environment: string;
  key_pattern: string;
  ttl_minutes: number | undefined;
  usage_limit: number | undefined;
}

export interface BatchBody {
  environment: string;
  keys: string[] | undefined;
  pattern: string | undefined;
}

export function checkFields(body: Record<string, unknown>, allowed: readonly string[]): void {
  const unknown = Object.keys(body).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) throw badRequest(`unexpected field ${JSON.stringify(unknown[0]?.slice(0, 64))}; expected only ${allowed.join(', ')}`);
}

/**
 * `body` without the optional fields given as `null`: Go's encoder writes an unset pointer or slice
 * as `null`, Python's an unset `None`, and the answers themselves say `usage_limit: null`,
 * `max_ttl_minutes: null`. Such a field is taken as absent; a required one stays refused.
 */
export function withoutNulls(body: Record<string, unknown>, optional: readonly string[]): Record<string, unknown> {
  const kept: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [field, value] of Object.entries(body)) if (!(value === null && optional.includes(field))) kept[field] = value;
  return kept;
}

export function positiveInteger(value: unknown, field: string, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || (value as number) < 1 || (value as number) > max) {
    throw badRequest(`${field} must be an integer from 1 to ${max}`);
  }
  return value as number;
}

/**
 * `--subject "$RWS_API_KEY"`, `-e $KEY`: what a request names is kept (a token's claims and
 * record, a key's grants, a file name) and shown. Refused, saying why, without quoting it.
 */
export function refuseApiKey(value: unknown, field: string): void {
  if (typeof value === 'string' && holdsApiKey(value)) throw badRequest(`${field} looks like an API key; an API key goes only in the Authorization header`);
}

export function checkEnvironment(value: unknown): string {
  refuseApiKey(value, 'environment');
  if (typeof value !== 'string' || !isValidEnvironment(value)) throw badRequest(ENVIRONMENT_GRAMMAR_TEXT);
  return value;
}

export function checkPattern(value: unknown, field: string): string {
  refuseApiKey(value, field);
  if (typeof value !== 'string' || !isValidPattern(value)) throw badRequest(`${field} must be a glob of letters, digits, _, * and ? (at most 256)`);
  return value;
}

export function checkName(value: unknown): string {
  if (typeof value !== 'string' || !isValidName(value)) {
    throw new HttpError(400, 'RWS_NAME_INVALID', 'secret names must match [A-Za-z_][A-Za-z0-9_]* (at most 128 characters)');
  }
  return value;
}

export function parseGenerateBody(given: Record<string, unknown>): GenerateBody {
  checkFields(given, ['subject', 'environment', 'key_pattern', 'ttl_minutes', 'usage_limit']);
  const body = withoutNulls(given, ['ttl_minutes', 'usage_limit']);
  if (typeof body.subject !== 'string' || !isValidSubject(body.subject)) throw badRequest('subject must be a string of 1 to 256 characters without control characters');
  refuseApiKey(body.subject, 'subject');
  return {
    subject: body.subject,
    environment: checkEnvironment(body.environment),
    key_pattern: checkPattern(body.key_pattern, 'key_pattern'),
    ttl_minutes: positiveInteger(body.ttl_minutes, 'ttl_minutes', 24 * 60),
    usage_limit: positiveInteger(body.usage_limit, 'usage_limit', MAX_USAGE_LIMIT),
  };
}

export function parseBatchBody(given: Record<string, unknown>): BatchBody {
  checkFields(given, ['environment', 'keys', 'pattern']);
  const body = withoutNulls(given, ['keys', 'pattern']);
  const environment = checkEnvironment(body.environment);
  if (body.keys !== undefined && body.pattern !== undefined) throw badRequest('give keys or pattern, not both');
  let keys: string[] | undefined;
  if (body.keys !== undefined) {
    if (!Array.isArray(body.keys) || body.keys.length === 0 || body.keys.length > MAX_BATCH_KEYS) {
      throw badRequest(`keys must be a list of 1 to ${MAX_BATCH_KEYS} names`);
    }
    keys = [...new Set(body.keys.map(checkName))];
  }
  return { environment, keys, pattern: body.pattern === undefined ? undefined : checkPattern(body.pattern, 'pattern') };
}
