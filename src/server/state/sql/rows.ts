// Rows of the state database as the model's records: every column checked on the way in, since a
// row may have been edited by hand (a list that is not a list refuses the row; a stored hash of
// another length matches nothing; only 1 makes an admin).
import type { StoredAuditRow } from '../../audit/record.js';
import type { ApiKeyRecord, ApiKeyView, PresentedToken, SessionRecord, StoredApiKey, TokenOutcome, TokenView } from '../state-store.js';
import type { Queryable, Row } from './driver.js';
import type { AuditHead, TokenStatusRow } from './sql-state-store.js';
import { RowValues } from './row-values.js';

export function selectTokenStatus(db: Queryable, jti: string): Promise<TokenStatusRow[]> {
  return db
    .query(
      `SELECT t.jti, t.api_key_id, t.subject, t.environment, t.key_pattern, t.issued_at, t.expires_at, t.usage_limit, t.uses, t.revoked_at,
              k.revoked_at AS key_revoked_at, k.expires_at AS key_expires_at, k.id AS key_id, k.fallback AS key_fallback
         FROM tokens t LEFT JOIN api_keys k ON k.id = t.api_key_id WHERE t.jti = $1`,
      [jti],
    )
    .then((rows) =>
      rows.map((row) => {
        // The key's columns, read (and named when damaged) as toApiKey reads them.
        const key = new RowValues({ id: row.key_id, revoked_at: row.key_revoked_at, expires_at: row.key_expires_at }, 'api_keys', 'id');
        return {
          ...toTokenView(row),
          key_revoked_at: key.textOrNull('revoked_at'),
          key_expires_at: key.instantOrNull('expires_at'),
          key_exists: row.key_id !== null && row.key_id !== undefined,
          key_fallback: Number(row.key_fallback) === 1,
        };
      }),
    );
}

/**
 * The record decides, never the claims: a token whose claims differ from its record in any field
 * (signed again by someone holding the secret, with a wider scope or without its limit) is not
 * the token the record is of, and is refused as one with no record at all. A record imported
 * from the file state holds no subject or scope, so no token matches it (fail closed).
 */
export function judge(row: TokenStatusRow | undefined, token: PresentedToken, now: Date): TokenOutcome {
  if (row === undefined || !sameClaims(row, token)) return 'unknown';
  if (row.revoked_at !== null || !row.key_exists || row.key_revoked_at !== null) return 'revoked';
  if (row.key_expires_at !== null && row.key_expires_at <= now.toISOString()) return 'revoked';
  if (row.usage_limit !== null && row.uses >= row.usage_limit) return 'exhausted';
  return 'ok';
}

/** Every claim a record holds is the same in both (a record and a token, or two tokens). */
export function sameClaims(a: PresentedToken, b: PresentedToken): boolean {
  return a.jti === b.jti && a.subject === b.subject && a.environment === b.environment && a.key_pattern === b.key_pattern && a.issued_at === b.issued_at && a.expires_at === b.expires_at && a.usage_limit === b.usage_limit;
}

export function toApiKey(row: Row): ApiKeyRecord {
  const values = new RowValues(row, 'api_keys', 'id');
  return {
    id: values.text('id'),
    name: values.text('name'),
    prefix: values.text('prefix'),
    hash: values.text('hash'),
    environments: parseList(values, 'environments'),
    key_patterns: parseList(values, 'key_patterns'),
    max_ttl_minutes: values.integerOrNull('max_ttl_minutes', 1),
    created_at: values.text('created_at'),
    // The expiry is compared as text in SQL and as an instant here: only one form means the same to both.
    expires_at: values.instantOrNull('expires_at'),
    // Any revocation time revokes, whatever its form (fail closed).
    revoked_at: values.textOrNull('revoked_at'),
    // Only 1 grants admin: a hand-edited value other than 0 or 1 never makes a key an admin.
    admin: Number(row.admin) === 1,
    // Likewise only 1 allows a fallback cache: a damaged value forbids it (fail closed).
    fallback: Number(row.fallback) === 1,
  };
}

/** A listed key: its record as read (and checked against its MAC), with its last use and live tokens. */
export function toApiKeyView(row: Row, key: StoredApiKey): ApiKeyView {
  return { ...key, last_used_at: new RowValues(row, 'api_keys', 'id').textOrNull('last_used_at'), live_tokens: Number(row.live_tokens ?? 0) };
}

export function toTokenView(row: Row): TokenView {
  const values = new RowValues(row, 'tokens', 'jti');
  return {
    jti: values.text('jti'),
    api_key_id: values.text('api_key_id'),
    subject: values.text('subject'),
    environment: values.text('environment'),
    key_pattern: values.text('key_pattern'),
    // Shown as ISO times (the admin API, the console): one past year 9999 failed the whole list.
    issued_at: values.epochSeconds('issued_at'),
    expires_at: values.epochSeconds('expires_at'),
    usage_limit: values.integerOrNull('usage_limit', 1),
    // A negative count was uses given back: -1000 let a token limited to 3 be read 1,003 times.
    uses: values.integer('uses', 0),
    revoked_at: values.textOrNull('revoked_at'),
  };
}

export function toAuditRow(row: Row): StoredAuditRow {
  return {
    seq: Number(row.seq),
    time: row.time as string,
    event: row.event as StoredAuditRow['event'],
    outcome: row.outcome as StoredAuditRow['outcome'],
    status: Number(row.status),
    error_code: (row.error_code as string | null) ?? null,
    api_key_id: (row.api_key_id as string | null) ?? null,
    jti: (row.jti as string | null) ?? null,
    subject: (row.subject as string | null) ?? null,
    environment: (row.environment as string | null) ?? null,
    // A list edited into something else still yields a row, whose hash then fails `audit verify`.
    keys: row.keys === null || row.keys === undefined ? null : tryParseList(row.keys),
    client: row.client as string,
    count: Number(row.count),
    hash: row.hash as string,
  };
}

/**
 * The chain's newest row, which the next rows are sealed onto. Its seq must be a whole number: a
 * text seq (SQLite keeps one) sorted last and read as NaN, so every row sealed after it had a NULL
 * seq that no listing, check or `audit verify` ever reached, and `audit` printed nothing.
 */
export function toAuditHead(row: Row): AuditHead {
  const values = new RowValues(row, 'audit', 'seq');
  const hash = values.text('hash');
  if (!/^[0-9a-f]{64}$/.test(hash)) throw values.damaged('hash', 'is not a SHA-256 in hex');
  return { seq: values.integer('seq', 1), hash };
}

function tryParseList(value: unknown): string[] {
  return listOf(value) ?? [`(not a list: ${String(value).slice(0, 64)})`];
}

/** A JSON array of strings from a row; anything else means the row was tampered with. */
function parseList(values: RowValues, column: string): string[] {
  const parsed = listOf(values.text(column));
  if (parsed === undefined) throw values.damaged(column, 'is not a JSON array of names');
  return parsed;
}

function listOf(value: unknown): string[] | undefined {
  let parsed: unknown;
  try {
    parsed = typeof value === 'string' ? JSON.parse(value) : undefined;
  } catch {
    parsed = undefined;
  }
  return Array.isArray(parsed) && parsed.every((item) => typeof item === 'string') ? parsed : undefined;
}

export function toSession(row: Row): SessionRecord {
  return {
    id_hash: String(row.id_hash),
    api_key_id: String(row.api_key_id),
    created_at: String(row.created_at),
    last_seen_at: String(row.last_seen_at),
    expires_at: String(row.expires_at),
  };
}
