// All mutable server state sits behind this one interface: API keys, issued tokens with their
// uses and revocations, the web console's sessions, and the audit trail. `sql/sql-state-store.ts` implements it once over a
// small driver interface, with a driver for SQLite (the default, one file in the store) and one
// for PostgreSQL (replicas). The guarantees every implementation keeps, checked by the shared
// conformance suite (test/server/state/conformance.ts):
// - a token is good only while its issue record is held and its claims equal the record (the
//   record, never the claims, decides scope and limit): unknown tokens are refused;
// - `commit` applies a request's effect (mint, use, revoke) and appends its audit row in one
//   transaction, durable before it resolves; if it rejects, nothing was charged or recorded;
// - uses are exact under any concurrency, across processes and replicas.
import type { AuditQuery, AuditRecord, StoredAuditRow } from '../audit/record.js';

export interface ApiKeyRecord {
  readonly id: string;
  readonly name: string;
  /** The first characters of the key, for lookup; the key itself is never stored. */
  readonly prefix: string;
  /** HMAC-SHA256 of the whole key under the server's pepper, hex. */
  readonly hash: string;
  readonly environments: readonly string[];
  readonly key_patterns: readonly string[];
  readonly max_ttl_minutes: number | null;
  readonly created_at: string;
  readonly expires_at: string | null;
  readonly revoked_at: string | null;
  /** An admin key manages keys, tokens, secrets and reads the audit trail; it never reads a secret. */
  readonly admin: boolean;
  /** False for keys made with --no-fallback: batch answers then forbid caching their secrets. */
  readonly fallback: boolean;
}

/** A key as read back from the database. */
export interface StoredApiKey extends ApiKeyRecord {
  /**
   * False when the columns the server never changes no longer match the MAC stored with them
   * (changed outside secrets-server, or damaged), or there is none: the key is refused as an
   * unknown key, and listings mark it. See grant-seal.ts.
   */
  readonly grants_intact: boolean;
}

export interface ApiKeyView extends StoredApiKey {
  readonly last_used_at: string | null;
  /** Its tokens that would be honoured now: not revoked, expired or spent, and the key live. */
  readonly live_tokens: number;
}

/** What the server remembers of a token it minted; the token itself is never stored. */
export interface TokenRecord {
  readonly jti: string;
  readonly api_key_id: string;
  readonly subject: string;
  readonly environment: string;
  readonly key_pattern: string;
  /** Seconds since the epoch. */
  readonly issued_at: number;
  /** Seconds since the epoch. */
  readonly expires_at: number;
  readonly usage_limit: number | null;
}

/** A token record as the admin API lists it: the record, its uses and its revocation. */
export interface TokenView extends TokenRecord {
  readonly uses: number;
  readonly revoked_at: string | null;
}

export interface TokenQuery {
  apiKeyId?: string;
  /** Only tokens that would be honoured now (see ApiKeyView.live_tokens). */
  active?: boolean;
  now: Date;
  /** Newest first, at most this many. */
  limit: number;
}

/**
 * A token as presented: its signed claims, in the terms of its record (every field of the record
 * but the issuing key, which no claim names).
 */
export type PresentedToken = Omit<TokenRecord, 'api_key_id'>;

/**
 * `unknown`: no issue record (never minted here, or the state was lost or rolled back), or one
 * whose fields differ from the presented claims (a jti signed again with other claims);
 * `revoked`: the token, or the API key that minted it, was revoked or has expired;
 * `key_revoked`: the API key that made the request (`Commit.liveKey`, or the key a console
 * session is opened for) is no longer live.
 */
export type TokenOutcome = 'ok' | 'unknown' | 'revoked' | 'exhausted' | 'key_revoked';

export interface TokenStatus {
  readonly outcome: TokenOutcome;
  /** The issuing API key, when the record is held. */
  readonly apiKeyId: string | null;
  /**
   * That key's expiry (ISO 8601) and whether it allows an offline fallback, when its row is held
   * and its grants are intact (else absent: no fallback is allowed).
   */
  readonly key?: { readonly expiresAt: string | null; readonly fallback: boolean };
}

export type Effect =
  | { readonly kind: 'issue'; readonly token: TokenRecord }
  | { readonly kind: 'use'; readonly token: PresentedToken }
  | { readonly kind: 'revoke'; readonly jti: string }
  // Admin changes over HTTP: stored with the request's audit row, like a mint.
  | { readonly kind: 'apikey.create'; readonly record: ApiKeyRecord }
  | { readonly kind: 'apikey.revoke'; readonly id: string }
  // Console sessions: opened only for a live admin key, ended by sign-out. A sign-in ends the
  // session the browser already held (`replaces`, its id hash), in the same transaction.
  | { readonly kind: 'session.create'; readonly session: SessionRecord; readonly replaces?: string }
  | { readonly kind: 'session.delete'; readonly idHash: string };

/** A console session as stored: a hash of its id, never the id (the cookie's value). */
export interface SessionRecord {
  readonly id_hash: string;
  readonly api_key_id: string;
  readonly created_at: string;
  readonly last_seen_at: string;
  /** The hard end (8 hours after sign-in); the idle end is `last_seen_at` plus the idle time. */
  readonly expires_at: string;
}

/** What a session check asks: is it live now, and should it count as activity? */
export interface SessionCheck {
  readonly idHash: string;
  readonly now: Date;
  /** A session unused since before this time has ended (idle). */
  readonly idleSince: Date;
  /** Moves `last_seen_at` to now (false for a page's background polling). */
  readonly touch: boolean;
}

/** Requests per bucket of the audit trail, for the console's chart. */
export interface AuditBuckets {
  /** Each bucket's start, ISO 8601 (UTC), oldest first; only buckets with requests. */
  readonly buckets: ReadonlyArray<{ readonly start: string; readonly success: number; readonly failure: number }>;
}

export interface Commit {
  /** Applied only if it can be: a use of a spent token is not counted. */
  readonly effect?: Effect;
  /** Make the row survive a power loss even without an effect (an admin change kept outside the database). */
  readonly durable?: boolean;
  /**
   * The API key that made the request, found live by a lookup that may have come from a cache:
   * the commit looks again, in its transaction, and if the key was revoked or expired meanwhile
   * (on another replica, its notice not yet here) the outcome is `key_revoked`, the effect is not
   * applied, and the answer is a 401.
   */
  readonly liveKey?: string;
  /**
   * The audit row, built once the effect's outcome is known (`ok` without an effect). For a use,
   * `apiKeyId` is the issuing key the token's row names (null when no row is held): a handler
   * that left the token's check to the commit learns it here.
   */
  audit(outcome: TokenOutcome, apiKeyId?: string | null): AuditRecord;
}

export interface StateStore {
  readonly kind: 'sqlite' | 'postgres';
  /** Where the state lives, fit for output: a file path, or a database URL without its password. */
  readonly location: string;

  /** Every key, oldest first, with its live tokens counted at `now`. */
  listApiKeys(now: Date): Promise<ApiKeyView[]>;
  getApiKey(id: string, now: Date): Promise<ApiKeyView | undefined>;
  /** The key whose stored HMAC is `hash` (of the whole presented key), if any. */
  findApiKey(hash: string): Promise<StoredApiKey | undefined>;
  addApiKey(record: ApiKeyRecord, audit: AuditRecord): Promise<void>;
  /** False when there is no such key; revoking twice keeps the first time. */
  revokeApiKey(id: string, at: Date, audit: AuditRecord): Promise<boolean>;

  /** Is this token still good, and which key minted it? Counts nothing. */
  tokenStatus(token: PresentedToken, now: Date): Promise<TokenStatus>;
  listTokens(query: TokenQuery): Promise<TokenView[]>;
  findToken(jti: string): Promise<TokenView | undefined>;
  /** One request's effect and audit row, in one transaction; resolves with the effect's outcome. */
  commit(commit: Commit, now: Date): Promise<TokenOutcome>;

  /** The live session (idle and hard ends not passed, its key a live admin key), touched if asked. */
  checkSession(check: SessionCheck): Promise<SessionRecord | undefined>;

  /** Newest first. */
  queryAudit(query: AuditQuery): Promise<StoredAuditRow[]>;
  /**
   * Requests (folded rows count as many) from `since` up to `until` (excluded), by outcome, in
   * buckets of one minute or ten (the first 16 or 15 characters of the ISO time), counted by the
   * database.
   */
  auditBuckets(since: string, until: string, bucketMinutes: 1 | 10): Promise<AuditBuckets>;
  /** Rows in `seq` order from `afterSeq` on, at most `limit`. */
  auditAfter(afterSeq: number, limit: number): Promise<StoredAuditRow[]>;
  /** The newest row's seq and hash, which every commit appends to; throws when it is damaged. */
  auditHead(): Promise<{ seq: number; hash: string }>;

  /**
   * Runs `fn` while no other process holds the same name (held by the database, never a file).
   * `stillHeld` throws `StateUnavailableError` once the database has let the lock go (the session
   * that held it ended): call it before a change the lock protects.
   */
  withLock<T>(name: string, fn: (stillHeld: () => Promise<void>) => Promise<T>): Promise<T>;
  schemaVersion(): Promise<number>;
  close(): Promise<void>;
}

/** Raised by a store when the database cannot be reached or written: the server answers 503. */
export { StateUnavailableError } from './state-errors.js';
