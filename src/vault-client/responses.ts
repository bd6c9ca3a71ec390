// Every answer is checked against the API's exact shape before anything is used: a malformed
// body is an error, never a crash and never a partly trusted result. Messages name which field
// is wrong, never what it held (except names that passed the name grammar).
import { globMatch } from '../glob.js';
import { isValidName } from '../names.js';
import { badResponse } from './errors.js';

export interface MintRequest {
  subject: string;
  environment: string;
  keyPattern: string;
  ttlMinutes: number;
  /** null: no limit (--fallback runs; the vault lets no usage-limited token's secrets be cached). */
  usageLimit: number | null;
}

export interface MintedToken {
  token: string;
  jti: string;
  expiresAt: string;
  environment: string;
  keyPattern: string;
  usageLimit: number | null;
}

/** What a batch answer says of caching its secrets (run-with-secrets --fallback). */
export interface FallbackGrant {
  allowed: boolean;
  /** ISO 8601, when allowed. */
  notAfter: string | null;
}

export interface BatchAnswer {
  secrets: Map<string, string>;
  /** undefined: the vault did not say (an older secrets-server), which allows nothing. */
  fallback: FallbackGrant | undefined;
}

/** What GET /api/v1/auth/self says of an API key. */
export interface KeyInfo {
  id: string;
  name: string;
  environments: string[];
  keyPatterns: string[];
  expiresAt: string | null;
  admin: boolean;
}

export interface BatchSelector {
  keys?: string[];
  pattern?: string;
}

const COMPACT_JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_TOKEN_LENGTH = 4096;
const JTI_GRAMMAR = /^[A-Za-z0-9_-]{1,128}$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

type Json = Record<string, unknown>;

function isPlainObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype;
}

/** The object, if it has all of `required`, nothing but `required` and `optional`. */
function exactObject(value: unknown, required: readonly string[], optional: readonly string[], origin: string, what: string): Json {
  if (!isPlainObject(value)) throw badResponse(origin, `the ${what} is not a JSON object`);
  for (const field of Object.keys(value)) {
    if (!required.includes(field) && !optional.includes(field)) throw badResponse(origin, `the ${what} has an unexpected field`);
  }
  for (const field of required) {
    if (!Object.hasOwn(value, field)) throw badResponse(origin, `the ${what} lacks ${field}`);
  }
  return value;
}

/** A secret name as the wrapper may use it; `__proto__` is refused outright (it would poison plain objects downstream). */
function isUsableName(name: unknown): name is string {
  return typeof name === 'string' && isValidName(name) && name !== '__proto__';
}

export function parseMinted(value: unknown, request: MintRequest, origin: string): MintedToken {
  const what = 'token answer';
  const body = exactObject(value, ['token', 'jti', 'expires_at', 'scope', 'usage_limit'], ['token_type'], origin, what);
  const { token, jti, expires_at: expiresAt, usage_limit: usageLimit } = body;
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH || !COMPACT_JWT.test(token)) throw badResponse(origin, 'the token is not a compact JWT');
  if (body.token_type !== undefined && body.token_type !== 'Bearer') throw badResponse(origin, 'token_type is not Bearer');
  if (typeof jti !== 'string' || !JTI_GRAMMAR.test(jti)) throw badResponse(origin, 'jti is not a token id');
  if (typeof expiresAt !== 'string' || !ISO_DATE.test(expiresAt) || Number.isNaN(Date.parse(expiresAt))) {
    throw badResponse(origin, 'expires_at is not an ISO 8601 time');
  }
  // A limit where none was asked is fine (stricter); none where one was asked is not ours to use.
  if (!(usageLimit === null && request.usageLimit === null) && (!Number.isSafeInteger(usageLimit) || (usageLimit as number) < 1)) throw badResponse(origin, 'usage_limit is not a positive integer');
  const scope = exactObject(body.scope, ['environment', 'key_pattern'], ['permissions'], origin, 'token scope');
  // The token must be for exactly what was asked: a broader one is not ours to use.
  if (scope.environment !== request.environment || scope.key_pattern !== request.keyPattern) {
    throw badResponse(origin, `the token's scope is not environment ${request.environment}, pattern ${request.keyPattern} as asked`);
  }
  return { token, jti, expiresAt, environment: request.environment, keyPattern: request.keyPattern, usageLimit: usageLimit as number | null };
}

export function parseBatch(value: unknown, environment: string, selector: BatchSelector, origin: string): BatchAnswer {
  const body = exactObject(value, ['environment', 'secrets'], ['fallback'], origin, 'batch answer');
  if (body.environment !== environment) throw badResponse(origin, `the batch answer is not for environment ${environment}`);
  if (!isPlainObject(body.secrets)) throw badResponse(origin, 'secrets is not a JSON object');
  const secrets = new Map<string, string>();
  for (const name of Object.keys(body.secrets)) {
    const value = body.secrets[name];
    if (!isUsableName(name)) throw badResponse(origin, 'a secret name is not a valid variable name');
    if (typeof value !== 'string') throw badResponse(origin, `the value of ${name} is not a string`);
    if (selector.pattern !== undefined && !globMatch(selector.pattern, name)) throw badResponse(origin, `${name} does not match ${selector.pattern}`);
    if (selector.keys !== undefined && !selector.keys.includes(name)) throw badResponse(origin, `${name} was not asked for`);
    secrets.set(name, value);
  }
  const missing = selector.keys?.find((key) => !secrets.has(key));
  if (missing !== undefined) throw badResponse(origin, `the batch answer lacks ${missing}`);
  return { secrets, fallback: body.fallback === undefined ? undefined : parseFallback(body.fallback, origin) };
}

/** `{allowed: false, not_after: null}` or `{allowed: true, not_after: ISO time}`, nothing else. */
function parseFallback(value: unknown, origin: string): FallbackGrant {
  const body = exactObject(value, ['allowed', 'not_after'], [], origin, 'fallback field');
  const { allowed, not_after: notAfter } = body;
  if (allowed === false && notAfter === null) return { allowed: false, notAfter: null };
  if (allowed !== true) throw badResponse(origin, 'fallback.allowed is not a boolean, or not_after is set when caching is not allowed');
  // The one spelling the server writes (toISOString): no zone to guess, no 31 February rolled over.
  if (typeof notAfter !== 'string' || !ISO_DATE.test(notAfter) || Number.isNaN(Date.parse(notAfter)) || new Date(notAfter).toISOString() !== notAfter) {
    throw badResponse(origin, 'fallback.not_after is not an ISO 8601 UTC time (YYYY-MM-DDTHH:MM:SS.sssZ)');
  }
  return { allowed: true, notAfter };
}

export function parseSecret(value: unknown, environment: string, key: string, origin: string): string {
  const body = exactObject(value, ['environment', 'key', 'value'], [], origin, 'secret answer');
  if (body.environment !== environment || body.key !== key) throw badResponse(origin, `the answer is not for ${key} in environment ${environment}`);
  if (typeof body.value !== 'string') throw badResponse(origin, `the value of ${key} is not a string`);
  return body.value;
}

export function parseKeyList(value: unknown, environment: string, pattern: string | undefined, origin: string): string[] {
  const body = exactObject(value, ['environment', 'keys'], [], origin, 'key list');
  if (body.environment !== environment) throw badResponse(origin, `the key list is not for environment ${environment}`);
  if (!Array.isArray(body.keys)) throw badResponse(origin, 'keys is not a list');
  const seen = new Set<string>();
  for (const name of body.keys as unknown[]) {
    if (!isUsableName(name)) throw badResponse(origin, 'a key name is not a valid variable name');
    if (pattern !== undefined && !globMatch(pattern, name)) throw badResponse(origin, `${name} does not match ${pattern}`);
    if (seen.has(name)) throw badResponse(origin, `${name} is listed twice`);
    seen.add(name);
  }
  return [...seen];
}

const KEY_ID = /^[A-Za-z0-9_-]{1,128}$/;
/**
 * A key's name: any text but controls and lone surrogates, as the server takes it (`dev 👩‍💻`
 * holds a zero-width joiner, a format character). It goes to the user's terminal only through
 * printable(), which escapes format characters (a bidi override) and line separators.
 */
const DISPLAY_TEXT = /^[^\p{Cc}\p{Cs}]{1,256}$/u;
const ENVIRONMENT = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const PATTERN = /^[A-Za-z0-9_*?]{1,256}$/;

export function parseKeyInfo(value: unknown, origin: string): KeyInfo {
  const body = exactObject(value, ['id', 'name', 'environments', 'key_patterns', 'expires_at', 'admin'], [], origin, 'API key answer');
  const { id, name, environments, key_patterns: keyPatterns, expires_at: expiresAt, admin } = body;
  if (typeof id !== 'string' || !KEY_ID.test(id)) throw badResponse(origin, 'id is not a key id');
  if (typeof name !== 'string' || !DISPLAY_TEXT.test(name)) throw badResponse(origin, 'name is not printable text of 1 to 256 characters');
  if (!Array.isArray(environments) || !environments.every((item) => typeof item === 'string' && ENVIRONMENT.test(item))) throw badResponse(origin, 'environments is not a list of environment names');
  if (!Array.isArray(keyPatterns) || !keyPatterns.every((item) => typeof item === 'string' && PATTERN.test(item))) throw badResponse(origin, 'key_patterns is not a list of patterns');
  if (expiresAt !== null && (typeof expiresAt !== 'string' || !ISO_DATE.test(expiresAt) || Number.isNaN(Date.parse(expiresAt)))) throw badResponse(origin, 'expires_at is neither null nor an ISO 8601 time');
  if (typeof admin !== 'boolean') throw badResponse(origin, 'admin is not a boolean');
  return { id, name, environments: [...environments] as string[], keyPatterns: [...keyPatterns] as string[], expiresAt, admin };
}
