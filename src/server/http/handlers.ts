// The credentialed routes. Each checks, in order: credential (401), request shape (400),
// scope or grant (403), existence (404), and returns its answer with the effect it needs stored
// (a mint, a use, a revocation). The caller commits the effect and the audit row in one
// transaction before sending the answer; a use that cannot be charged there (the token was spent
// or revoked meanwhile) turns the answer into a 401.
import type { IncomingMessage } from 'node:http';
import { globMatch, patternWithin } from '../../glob.js';
import { isValidName } from '../../names.js';
import { authenticateApiKey, NOT_LIVE } from '../auth/api-keys.js';
import type { AuditRecord } from '../audit/record.js';
import { checkEnvironment, checkName, checkPattern, parseBatchBody, parseGenerateBody } from './bodies.js';
import { forbidden, HttpError, notFound, REFUSED_CREDENTIAL, unauthorized } from './http-error.js';
import { isValidEnvironment } from '../store/layout.js';
import { bearerCredential, readJsonBody } from './request.js';
import { readQuery } from './admin/query.js';
import { answerTag } from './batch/answer-tag.js';
import { ifNoneMatch, matchesTag } from './batch/if-none-match.js';
import type { LongPolls } from './batch/long-polls.js';
import { batchWait } from './batch/wait-param.js';
import type { SecretFile, SecretSource } from '../store/secret-source.js';
import type { ServerMetrics } from './observe/metrics.js';
import type { SecretsAdmin } from '../store/secrets-admin.js';
import type { ConsoleHooks } from './console-hooks.js';
import type { Effect, PresentedToken, StateStore, TokenOutcome, TokenStatus } from '../state/state-store.js';
import { DamagedRowError } from '../state/state-errors.js';
import { DEFAULT_FALLBACK_MAX_AGE_SECONDS, fallbackAnswer } from './batch/fallback.js';
import { DEFAULT_TTL_MINUTES, MINT_AGAIN, SERVER_MAX_TTL_MINUTES, type TokenAuthority, type TokenClaims } from '../auth/tokens.js';

export interface HandlerDeps {
  state: StateStore;
  secrets: SecretSource;
  tokens: TokenAuthority;
  pepper: Uint8Array;
  /** The key of batch answers' ETags (batch/answer-tag.ts); never leaves the server. */
  answerTagKey: Uint8Array;
  /** Batch requests held by `?wait=` (absent: none are held, a 304 is answered at once). */
  longPolls?: LongPolls;
  /** The admin API's access to the store's files (absent: those routes answer 404). */
  secretsAdmin?: SecretsAdmin;
  /** serve --fallback-max-age, in seconds: the latest `fallback.not_after` of a batch answer. */
  fallbackMaxAgeSeconds?: number;
  /** What GET /metrics shows an admin key on the public listener. */
  metrics?: ServerMetrics;
  /** The web console (`serve --console`): its pages, sign-in and session cookies. */
  console?: ConsoleHooks;
}

export interface Exchange {
  req: IncomingMessage;
  now: Date;
  /** Filled in as the handler learns who and what; written to the audit log by the caller. */
  audit: Partial<AuditRecord>;
  /** The API key the request was let in by: the commit checks it is still live (Commit.liveKey). */
  liveKey?: string;
}

export interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** A body that is not JSON (the metrics text): sent instead of `body`. */
  text?: { body: string; contentType: string };
  /** Stored with the audit row; the answer stands only if it can be. */
  effect?: Effect;
  /** Audit fields that hold only if the answer stands (the names a list would show). */
  auditOnSuccess?: Partial<AuditRecord>;
  /** No credential was presented and nothing was done: no audit row (honoured only then). */
  unaudited?: true;
  /** The row must survive a power loss though the change is not in the database (a secrets file). */
  durable?: boolean;
  /**
   * For a change kept outside the database: runs around the commit of the audit row, holding
   * what the change needs (the file's lock) and making the change only once the row is stored.
   */
  around?: (commit: () => Promise<void>) => Promise<void>;
}

export async function generateToken(deps: HandlerDeps, x: Exchange, query: string): Promise<Reply> {
  // The credential first (401), then the body (413, 415, 400), on every route: a client without
  // one learns nothing from the shape of its request, and its refusals count toward the 429.
  const apiKey = await authenticateApiKey(deps.state, deps.pepper, bearerCredential(x.req), x.now);
  x.audit.api_key_id = apiKey.id;
  const raw = await readJsonBody(x.req);
  // `?usage_limit=1`, ignored, would mint an unlimited token to a client that thinks it asked for one use.
  readQuery(query, []);
  // Admin keys manage and never read: a token would let them read any secret they can set.
  if (apiKey.admin) throw forbidden('an admin API key mints no read tokens; use a read key');
  const body = parseGenerateBody(raw);
  Object.assign(x.audit, { subject: body.subject, environment: body.environment, keys: null });
  // The caller has authenticated with this key: telling it what the key grants points at the fix
  // (a typo in -e, a -k too wide). The client parses this sentence; keep its shape.
  const grants = `it grants environments ${apiKey.environments.join(', ')} with key patterns ${apiKey.key_patterns.join(', ')}`;
  if (!apiKey.environments.includes(body.environment)) throw forbidden(`this API key grants no access to environment ${body.environment}; ${grants}`);
  if (!apiKey.key_patterns.some((grant) => patternWithin(body.key_pattern, grant))) {
    throw forbidden(`key_pattern ${body.key_pattern} is not within this API key's key patterns; ${grants}`);
  }
  const ttlMinutes = Math.min(body.ttl_minutes ?? DEFAULT_TTL_MINUTES, apiKey.max_ttl_minutes ?? SERVER_MAX_TTL_MINUTES, SERVER_MAX_TTL_MINUTES);
  const scope = { environment: body.environment, key_pattern: body.key_pattern, permissions: ['read'] as ['read'] };
  // A token ends with its key: its signed expiry, not the key's row, is then what bounds it, so a
  // later expires_at written into the row by hand lends the token no time (grant-seal.ts).
  const notAfter = apiKey.expires_at === null ? null : Date.parse(apiKey.expires_at);
  const { token, claims } = await deps.tokens.sign({ subject: body.subject, scope, ttlMinutes, usageLimit: body.usage_limit ?? null, notAfter }, x.now);
  x.audit.jti = claims.jti;
  return {
    status: 201,
    body: { token, token_type: 'Bearer', jti: claims.jti, expires_at: new Date(claims.exp * 1000).toISOString(), scope, usage_limit: claims.usage_limit },
    // The record is the claims as a token presents them: each later use must match it exactly.
    effect: { kind: 'issue', token: { ...presented(claims), api_key_id: apiKey.id } },
  };
}

/**
 * Who the presented API key is and what it grants: the key's own record, never its hash. A key
 * record may carry an `admin` flag (admin keys); any other record is not an admin.
 */
export async function describeApiKey(deps: HandlerDeps, x: Exchange, query: string): Promise<Reply> {
  const apiKey = await authenticateApiKey(deps.state, deps.pepper, bearerCredential(x.req), x.now);
  x.audit.api_key_id = apiKey.id;
  x.liveKey = apiKey.id;
  readQuery(query, []);
  const admin = (apiKey as { readonly admin?: unknown }).admin === true;
  const { id, name, environments, key_patterns, expires_at } = apiKey;
  return { status: 200, body: { id, name, environments, key_patterns, expires_at, admin } };
}

export async function readSecret(deps: HandlerDeps, x: Exchange, envParam: string, keyParam: string, query: string): Promise<Reply> {
  noteRequested(x, envParam, [keyParam]);
  const claims = await verifyToken(deps, x);
  return checkedByCommit(deps, x, claims, answerRead(deps, x, claims, envParam, keyParam, query));
}

async function answerRead(deps: HandlerDeps, x: Exchange, claims: TokenClaims, envParam: string, keyParam: string, query: string): Promise<Reply> {
  readQuery(query, []);
  const environment = checkEnvironment(envParam);
  x.audit.environment = environment;
  const key = checkName(keyParam);
  x.audit.keys = [key];
  if (environment !== claims.scope.environment || !globMatch(claims.scope.key_pattern, key)) throw outsideScope(claims, 'the token does not cover this secret');
  const file = await openEnvironment(deps.secrets, environment);
  if (!file.names.includes(key)) throw notFound(`environment ${environment} has no secret ${key}`);
  const value = file.decrypt(key);
  return { status: 200, body: { environment, key, value }, effect: use(claims) };
}

export async function listSecrets(deps: HandlerDeps, x: Exchange, envParam: string, query: string): Promise<Reply> {
  noteRequested(x, envParam, []);
  const claims = await verifyToken(deps, x);
  return checkedByCommit(deps, x, claims, answerList(deps, x, claims, envParam, query));
}

async function answerList(deps: HandlerDeps, x: Exchange, claims: TokenClaims, envParam: string, query: string): Promise<Reply> {
  const pattern = listPattern(query);
  const environment = checkEnvironment(envParam);
  x.audit.environment = environment;
  const file = await openScoped(deps, claims, environment, pattern === undefined ? undefined : checkPattern(pattern, 'pattern'));
  const keys = namesInScope(file, claims, pattern);
  // Named in the row only if the list is served: a token the commit refuses saw none of them.
  return { status: 200, body: { environment, keys }, effect: use(claims), auditOnSuccess: { keys } };
}

function listPattern(query: string): string | undefined {
  const params = new URLSearchParams(query);
  const names = [...params.keys()];
  if (names.some((name) => name !== 'pattern') || names.length > 1) throw new HttpError(400, 'RWS_BAD_REQUEST', 'the only query parameter is pattern, given once');
  return params.get('pattern') ?? undefined;
}

/**
 * A read whose answer is a use leaves the state's verdict on its token to the commit: the use is
 * charged only if the token's row is live (unknown, revoked, spent or with a dead key, the answer
 * becomes the 401), so a read that would succeed skips a separate look at the row. One that would
 * be refused looks first, so that a 401 still comes before its 400, 403 or 404.
 */
function checkedByCommit(deps: HandlerDeps, x: Exchange, claims: TokenClaims, answer: Promise<Reply>): Promise<Reply> {
  // The answer's own promise, with a reaction only for a refusal: every read comes here, and an
  // async step around it was a measurable share of one.
  return answer.catch(async (error: unknown) => {
    await checkTokenState(deps, x, claims);
    throw error;
  });
}

/** What a batch request gets now, and what a long-poll needs to hold it (batch.ts). */
export interface BatchAnswer {
  /** 200 with the values, or 304 when the client holds this answer's tag; either way one use. */
  reply: Reply;
  environment: string;
  /** Seconds to hold a 304 (`?wait=`), 0 for none. */
  wait: number;
  /** The token's expiry, seconds since the epoch: a hold ends by then. */
  tokenExpires: number;
  apiKeyId: string;
}

/**
 * The batch answer for this request at `x.now`. Its `ETag` is a keyed digest of what it serves
 * (batch/answer-tag.ts); with `If-None-Match` holding that tag it is a 304, charged as a use like a
 * 200. The query and the header are request shape: checked after the credential, before scope.
 */
export async function answerBatch(deps: HandlerDeps, x: Exchange, raw: Record<string, unknown> | (() => Promise<Record<string, unknown>>), query: string): Promise<BatchAnswer> {
  const { claims, status } = await authenticateTokenWithKey(deps, x);
  const body = parseBatchBody(typeof raw === 'function' ? await raw() : raw);
  const wait = batchWait(query);
  const held = ifNoneMatch(x.req);
  x.audit.environment = body.environment;
  let file: SecretFile;
  let keys: string[];
  if (body.keys === undefined) {
    file = await openScoped(deps, claims, body.environment, body.pattern);
    keys = namesInScope(file, claims, body.pattern);
  } else {
    keys = body.keys;
    x.audit.keys = keys;
    if (body.environment !== claims.scope.environment || !keys.every((key) => globMatch(claims.scope.key_pattern, key))) {
      throw outsideScope(claims, 'the token does not cover every secret asked for');
    }
    file = await openEnvironment(deps.secrets, body.environment);
    const missing = keys.find((key) => !file.names.includes(key));
    if (missing !== undefined) throw notFound(`environment ${body.environment} has no secret ${missing}`);
  }
  x.audit.keys = keys;
  const secrets: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const key of keys) secrets[key] = file.decrypt(key);
  const etag = answerTag(deps.answerTagKey, body.environment, secrets);
  const reply: Reply = matchesTag(held, etag)
    ? { status: 304, body: undefined, headers: { etag }, effect: use(claims) }
    : { status: 200, body: { environment: body.environment, secrets, fallback: fallbackAnswer(claims, status, x.now, deps.fallbackMaxAgeSeconds ?? DEFAULT_FALLBACK_MAX_AGE_SECONDS) }, headers: { etag }, effect: use(claims) };
  return { reply, environment: body.environment, wait, tokenExpires: claims.exp, apiKeyId: x.audit.api_key_id ?? claims.jti };
}

export async function revokeToken(deps: HandlerDeps, x: Exchange, query: string): Promise<Reply> {
  const claims = await deps.tokens.verify(bearerCredential(x.req), x.now);
  Object.assign(x.audit, { jti: claims.jti, subject: claims.sub, environment: claims.scope.environment });
  // A token whose record is damaged (edited by hand) is revoked all the same, where this answered
  // 500: its signature verified, and revoking must stay possible whatever its row holds (fail
  // closed). Its claims cannot be compared with that row, so only its jti is revoked.
  const status = await deps.state.tokenStatus(presented(claims), x.now).catch((error: unknown) => {
    if (error instanceof DamagedRowError) return 'damaged' as const;
    throw error;
  });
  if (status !== 'damaged') {
    x.audit.api_key_id = status.apiKeyId;
    // Revoking is idempotent: a revoked or spent token may still be revoked (again). One the state
    // holds no record of, or whose claims differ from its record, is refused like on any route.
    if (status.outcome === 'unknown') throw tokenRefusal('unknown');
  }
  await readJsonBody(x.req, { optional: true });
  readQuery(query, []);
  return { status: 204, body: undefined, effect: { kind: 'revoke', jti: claims.jti } };
}

/** Lets a refused request's audit line say what was asked for (only well-formed names). */
function noteRequested(x: Exchange, environment: string, keys: string[]): void {
  if (isValidEnvironment(environment)) x.audit.environment = environment;
  if (keys.length > 0 && keys.every(isValidName)) x.audit.keys = keys;
}

/**
 * The token's signature, expiry and claims: the state's record of it is checked apart. A missing
 * or malformed credential throws at once: callers await it first thing in an async function.
 */
function verifyToken(deps: HandlerDeps, x: Exchange): Promise<TokenClaims> {
  return deps.tokens.verify(bearerCredential(x.req), x.now).then((claims) => {
    x.audit.jti = claims.jti;
    x.audit.subject = claims.sub;
    return claims;
  });
}

/** The state's record of the token: its 401 when refused, else its status. */
async function checkTokenState(deps: HandlerDeps, x: Exchange, claims: TokenClaims): Promise<TokenStatus> {
  const status = await deps.state.tokenStatus(presented(claims), x.now);
  x.audit.api_key_id = status.apiKeyId;
  const refusal = tokenRefusal(status.outcome);
  if (refusal) throw refusal;
  return status;
}

/** The token's claims, and its status with what the batch answer needs of its key. */
async function authenticateTokenWithKey(deps: HandlerDeps, x: Exchange): Promise<{ claims: TokenClaims; status: TokenStatus }> {
  const claims = await verifyToken(deps, x);
  return { claims, status: await checkTokenState(deps, x, claims) };
}

/** The 401 for a token the state refuses; undefined when it is good. */
export function tokenRefusal(outcome: TokenOutcome): HttpError | undefined {
  const challenge = REFUSED_CREDENTIAL;
  if (outcome === 'revoked') return new HttpError(401, 'RWS_TOKEN_REVOKED', `token has been revoked; ${MINT_AGAIN}`, challenge);
  if (outcome === 'exhausted') return new HttpError(401, 'RWS_TOKEN_EXHAUSTED', `token has no uses left; ${MINT_AGAIN}`, challenge);
  // The API key that made the request was revoked (or expired) before its commit: the answer a
  // revoked key gets at the door.
  if (outcome === 'key_revoked') return unauthorized(NOT_LIVE);
  // Fail closed: a correctly signed token the state holds no record of (lost, emptied or rolled
  // back state) is refused, never trusted.
  if (outcome === 'unknown') return new HttpError(401, 'RWS_AUTH_FAILED', `this vault holds no record of the token; ${MINT_AGAIN}`, challenge);
  return undefined;
}

/** The claims in the terms of the token's record, which the state compares field by field. */
const presented = (claims: TokenClaims): PresentedToken => ({
  jti: claims.jti,
  subject: claims.sub,
  environment: claims.scope.environment,
  key_pattern: claims.scope.key_pattern,
  issued_at: claims.iat,
  expires_at: claims.exp,
  usage_limit: claims.usage_limit,
});
const use = (claims: TokenClaims): Effect => ({ kind: 'use', token: presented(claims) });

/**
 * A 403 that says what the token does cover, which its holder can read in it anyway: the fix is
 * another request, or a token minted for the other scope. Not in the mint refusal's words, which
 * the wrapper parses as a key's grants.
 */
function outsideScope(claims: TokenClaims, what: string): HttpError {
  return forbidden(`${what}; the token's scope is environment ${claims.scope.environment}, key pattern ${claims.scope.key_pattern}`);
}

/** For list and batch by pattern: the pattern, when given, must lie within the token's scope. */
async function openScoped(deps: HandlerDeps, claims: TokenClaims, environment: string, pattern: string | undefined): Promise<SecretFile> {
  if (environment !== claims.scope.environment) throw outsideScope(claims, 'the token does not cover this environment');
  if (pattern !== undefined && !patternWithin(pattern, claims.scope.key_pattern)) throw outsideScope(claims, 'pattern is not within the token scope');
  return openEnvironment(deps.secrets, environment);
}

function openEnvironment(secrets: SecretSource, environment: string): Promise<SecretFile> {
  return secrets.open(environment).then((file) => {
    if (file === undefined) throw notFound(`no environment ${environment}`);
    return file;
  });
}

function namesInScope(file: SecretFile, claims: TokenClaims, pattern: string | undefined): string[] {
  return file.names.filter((name) => isValidName(name) && globMatch(claims.scope.key_pattern, name) && (pattern === undefined || globMatch(pattern, name)));
}
