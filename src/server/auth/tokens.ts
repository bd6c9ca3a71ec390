// Access tokens: HS256 JWTs through jose, with everything jose leaves open pinned here (see
// shared/SECURITY.md "Tokens" and RFC 8725): the compact grammar with nothing trimmed and one
// base64url spelling per part, a size bound, an exact header ({alg, typ}: no kid, crit, jwk, jku,
// x5u), issuer, audience, integer dates, a bounded lifetime and an exact claim schema.
import { randomBytes, webcrypto } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { isValidPattern } from '../../glob.js';
import { HttpError, REFUSED_CREDENTIAL, unauthorized } from '../http/http-error.js';
import { isValidEnvironment } from '../store/layout.js';

export const TOKEN_TYPE = 'rws-access+jwt';
export const TOKEN_ISSUER = 'secrets-server';
export const TOKEN_AUDIENCE = 'run-with-secrets';
export const SERVER_MAX_TTL_MINUTES = 60;
export const DEFAULT_TTL_MINUTES = 5;
const CLOCK_SKEW_SECONDS = 30;
const MAX_TOKEN_LENGTH = 4095;
/** What to do next, said by every refusal of a token: one is minted in a request, not repaired. */
export const MINT_AGAIN = 'mint a new one with POST /api/v1/vault/tokens/generate';
const MALFORMED = 'malformed token; send the token field of the tokens/generate answer, whole';
const INVALID = `invalid token; ${MINT_AGAIN}`;
const COMPACT_GRAMMAR = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const JTI_GRAMMAR = /^[A-Za-z0-9_-]{16,64}$/;
const SUBJECT_GRAMMAR = /^[^\p{Cc}\p{Cs}]{1,256}$/u;
const CLAIMS = ['iss', 'aud', 'sub', 'iat', 'nbf', 'exp', 'jti', 'scope'];
const OPTIONAL_CLAIMS = ['usage_limit'];
const SCOPE_KEYS = ['environment', 'key_pattern', 'permissions'];

export interface TokenScope {
  environment: string;
  key_pattern: string;
  permissions: ['read'];
}

export interface TokenClaims {
  sub: string;
  jti: string;
  iat: number;
  exp: number;
  scope: TokenScope;
  usage_limit: number | null;
}

export interface TokenRequest {
  subject: string;
  scope: TokenScope;
  ttlMinutes: number;
  usageLimit: number | null;
  /** The API key's expiry, epoch ms, or null: the token ends no later (never before its first second). */
  notAfter?: number | null;
}

/** The HS256 key, imported once: jose would otherwise import raw bytes again on every call. */
export type TokenKey = webcrypto.CryptoKey | Uint8Array;

export async function importTokenKey(secret: Uint8Array): Promise<webcrypto.CryptoKey> {
  return webcrypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
}

export function isValidJti(jti: string): boolean {
  return JTI_GRAMMAR.test(jti);
}

export function isValidSubject(subject: string): boolean {
  return SUBJECT_GRAMMAR.test(subject);
}

export async function signToken(secret: TokenKey, request: TokenRequest, now: Date): Promise<{ token: string; claims: TokenClaims }> {
  const iat = Math.floor(now.getTime() / 1000);
  const claims: TokenClaims = {
    sub: request.subject,
    jti: randomBytes(16).toString('base64url'),
    iat,
    exp: request.notAfter === undefined || request.notAfter === null ? iat + request.ttlMinutes * 60 : Math.max(iat + 1, Math.min(iat + request.ttlMinutes * 60, Math.floor(request.notAfter / 1000))),
    scope: request.scope,
    usage_limit: request.usageLimit,
  };
  const payload: Record<string, unknown> = { scope: claims.scope };
  if (claims.usage_limit !== null) payload.usage_limit = claims.usage_limit;
  const token = await new SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256', typ: TOKEN_TYPE })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(TOKEN_AUDIENCE)
    .setSubject(claims.sub)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(claims.exp)
    .setJti(claims.jti)
    .sign(secret);
  return { token, claims };
}

/** The claims of a token this server issued and that is valid now, or a 401. */
export async function verifyToken(secret: TokenKey, token: string, now: Date): Promise<TokenClaims> {
  // A client's likeliest mistake: the API key sent where the token it mints goes.
  if (token.startsWith('rws_sk_')) throw unauthorized('this route takes a token, not an API key: mint one with POST /api/v1/vault/tokens/generate');
  if (token.length > MAX_TOKEN_LENGTH || !COMPACT_GRAMMAR.test(token)) throw unauthorized(MALFORMED);
  if (!token.split('.').every(isCanonicalBase64url)) throw unauthorized(MALFORMED);
  checkHeader(token);
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, secret, {
      algorithms: ['HS256'],
      typ: TOKEN_TYPE,
      issuer: TOKEN_ISSUER,
      audience: TOKEN_AUDIENCE,
      requiredClaims: ['iss', 'aud', 'sub', 'iat', 'nbf', 'exp', 'jti'],
      maxTokenAge: SERVER_MAX_TTL_MINUTES * 60,
      clockTolerance: CLOCK_SKEW_SECONDS,
      currentDate: now,
    }));
  } catch (error) {
    if (error instanceof joseErrors.JWTExpired) throw new HttpError(401, 'RWS_TOKEN_EXPIRED', `token has expired; ${MINT_AGAIN}`, REFUSED_CREDENTIAL);
    throw unauthorized(INVALID);
  }
  return checkClaims(payload);
}

function isCanonicalBase64url(part: string): boolean {
  return Buffer.from(part, 'base64url').toString('base64url') === part;
}

function checkHeader(token: string): void {
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(token) as Record<string, unknown>;
  } catch {
    throw unauthorized(MALFORMED);
  }
  const keys = Object.keys(header).sort();
  if (keys.length !== 2 || keys[0] !== 'alg' || keys[1] !== 'typ' || header.alg !== 'HS256' || header.typ !== TOKEN_TYPE) {
    throw unauthorized(INVALID);
  }
}

function hasExactKeys(value: unknown, required: readonly string[], optional: readonly string[] = []): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  if (Object.getPrototypeOf(value) !== Object.prototype) return false;
  const keys = Object.keys(value);
  return required.every((key) => Object.hasOwn(value, key)) && keys.every((key) => required.includes(key) || optional.includes(key));
}

function checkClaims(payload: unknown): TokenClaims {
  const fail = (): never => {
    throw unauthorized(INVALID);
  };
  if (!hasExactKeys(payload, CLAIMS, OPTIONAL_CLAIMS)) return fail();
  const { iss, aud, sub, jti, iat, nbf, exp, scope, usage_limit: usageLimit } = payload;
  if (iss !== TOKEN_ISSUER || aud !== TOKEN_AUDIENCE) return fail();
  if (typeof sub !== 'string' || !isValidSubject(sub)) return fail();
  if (typeof jti !== 'string' || !JTI_GRAMMAR.test(jti)) return fail();
  if (!isInt(iat) || !isInt(nbf) || !isInt(exp)) return fail();
  if (nbf < iat || exp <= nbf || exp - iat > SERVER_MAX_TTL_MINUTES * 60) return fail();
  if (usageLimit !== undefined && !(isInt(usageLimit) && usageLimit > 0)) return fail();
  if (!hasExactKeys(scope, SCOPE_KEYS)) return fail();
  const { environment, key_pattern: keyPattern, permissions } = scope;
  if (typeof environment !== 'string' || !isValidEnvironment(environment)) return fail();
  if (typeof keyPattern !== 'string' || !isValidPattern(keyPattern)) return fail();
  if (!Array.isArray(permissions) || permissions.length !== 1 || permissions[0] !== 'read') return fail();
  return {
    sub,
    jti,
    iat,
    exp,
    scope: { environment, key_pattern: keyPattern, permissions: ['read'] },
    usage_limit: (usageLimit as number | undefined) ?? null,
  };
}

function isInt(value: unknown): value is number {
  return Number.isSafeInteger(value);
}

/** A JWT's signature segment (the whole string when it has no dot). */
function signatureOf(token: string): string {
  return token.slice(token.lastIndexOf('.') + 1);
}

/**
 * Signs and verifies with one key, remembering tokens it has fully verified (by their exact
 * string, bounded) so that a token used many times is checked in full once: later uses only
 * re-check its time window. Uses, revocations and scope are checked on every request elsewhere.
 */
export class TokenAuthority {
  // Keyed by the signature, the token's last 43 characters: a lookup hashes those rather than
  // all 400 or so of the token on every request (a measurable share of a read). A hit counts only
  // if the whole token is the one remembered, so a signature pasted onto other claims is a miss.
  readonly #verified = new Map<string, { token: string; claims: TokenClaims }>();

  constructor(
    private readonly key: TokenKey,
    private readonly maxRemembered = 10_000,
  ) {}

  async sign(request: TokenRequest, now: Date): Promise<{ token: string; claims: TokenClaims }> {
    const signed = await signToken(this.key, request, now);
    // A token is known from its birth, so that its first use from a rate-limited address counts
    // as a valid credential (http/limits/credential-check.ts) without a full verification.
    this.#remember(signed.token, signed.claims, now.getTime() / 1000);
    return signed;
  }

  /** Whether `token` is one this authority issued or verified and is within its lifetime now. */
  isKnown(token: string, now: Date): boolean {
    const known = this.#known(token);
    const seconds = now.getTime() / 1000;
    return known !== undefined && seconds < known.exp + CLOCK_SKEW_SECONDS && seconds >= known.iat - CLOCK_SKEW_SECONDS;
  }

  verify(token: string, now: Date): Promise<TokenClaims> {
    const known = this.#known(token);
    const seconds = now.getTime() / 1000;
    // A token seen before and still in its window (every read of a token after its first): no
    // async step of its own.
    if (known !== undefined && seconds < known.exp + CLOCK_SKEW_SECONDS && seconds >= known.iat - CLOCK_SKEW_SECONDS) return Promise.resolve(known);
    return this.#verifyAfresh(token, now, known !== undefined);
  }

  async #verifyAfresh(token: string, now: Date, wasKnown: boolean): Promise<TokenClaims> {
    if (wasKnown) {
      this.#verified.delete(signatureOf(token));
      return verifyToken(this.key, token, now); // reports expiry exactly as a first sight would
    }
    const claims = await verifyToken(this.key, token, now);
    this.#remember(token, claims, now.getTime() / 1000);
    return claims;
  }

  /** The claims remembered for exactly this token string, if any. */
  #known(token: string): TokenClaims | undefined {
    const entry = this.#verified.get(signatureOf(token));
    return entry !== undefined && entry.token === token ? entry.claims : undefined;
  }

  #remember(token: string, claims: TokenClaims, seconds: number): void {
    if (this.#verified.size >= this.maxRemembered) this.#forgetExpired(seconds);
    if (this.#verified.size < this.maxRemembered) this.#verified.set(signatureOf(token), { token, claims });
  }

  #forgetExpired(seconds: number): void {
    for (const [key, { claims }] of this.#verified) if (claims.exp + CLOCK_SKEW_SECONDS <= seconds) this.#verified.delete(key);
    // Still full of live tokens: forget the oldest half rather than grow.
    let drop = this.#verified.size >= this.maxRemembered ? this.#verified.size / 2 : 0;
    for (const token of this.#verified.keys()) {
      if (drop-- <= 0) break;
      this.#verified.delete(token);
    }
  }
}
