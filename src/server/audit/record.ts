// The audit trail: one row per request that reaches a credentialed route (the admin routes too,
// reads included: who looked at keys, tokens, names and the trail is worth knowing), one per admin change,
// and one per client (an IPv4 address or an IPv6 /64, or a wider prefix: refusal-folder.ts) and
// minute of rate-limited refusals. Only these fields, in this order:
// never a value, a token or an API key (names and ids only).
import { printableJson } from '../../printable.js';

export type AuditEventName =
  | 'token.generate'
  | 'secret.read'
  | 'secret.list'
  | 'secret.batch'
  | 'token.revoke'
  | 'auth.self'
  | 'auth.failure'
  | 'auth.rate_limited'
  | 'apikey.create'
  | 'apikey.revoke'
  | 'state.import'
  | 'state.rollback'
  | 'secret.set'
  | 'secret.delete'
  | 'audit.read'
  | 'apikey.list'
  | 'token.list'
  | 'environment.list'
  | 'metrics.read'
  | 'status.read'
  | 'console.signin'
  | 'console.session'
  | 'console.signout'
  | 'secret.offline_use';

export const AUDIT_EVENTS: readonly AuditEventName[] = [
  'token.generate',
  'secret.read',
  'secret.list',
  'secret.batch',
  'token.revoke',
  'auth.self',
  'auth.failure',
  'auth.rate_limited',
  'apikey.create',
  'apikey.revoke',
  'state.import',
  'state.rollback',
  'secret.set',
  'secret.delete',
  'audit.read',
  'apikey.list',
  'token.list',
  'environment.list',
  'metrics.read',
  'status.read',
  'console.signin',
  'console.session',
  'console.signout',
  'secret.offline_use',
];

export interface AuditRecord {
  time: string;
  event: AuditEventName;
  outcome: 'success' | 'failure';
  status: number;
  error_code: string | null;
  api_key_id: string | null;
  jti: string | null;
  subject: string | null;
  environment: string | null;
  /** The names asked for or served; on a refusal at most 50 and `+N more` (refused-names.ts). */
  keys: readonly string[] | null;
  client: string;
  /** How many requests the row stands for: 1, or more for folded 429s. */
  count: number;
}

export interface StoredAuditRow extends AuditRecord {
  /** Dense, from 1. */
  seq: number;
  /** SHA-256 over the previous row's hash and this row's canonical JSON, hex. */
  hash: string;
}

/**
 * Whether two rows agree in every field after `time` (all but seq, time and hash): what the rows
 * of a batch of reads of one token by one client share, which sealing serialises once and the
 * SQLite INSERT binds once. Names are compared one by one and only as arrays (a row of a tampered
 * trail may hold anything there); `aKeys` stands for `a.keys` where the caller keeps a copy.
 */
export function sameAfterTime(a: AuditRecord, b: AuditRecord, aKeys: readonly string[] | null = a.keys): boolean {
  if (a.event !== b.event || a.outcome !== b.outcome || a.status !== b.status || a.error_code !== b.error_code || a.api_key_id !== b.api_key_id) return false;
  if (a.jti !== b.jti || a.subject !== b.subject || a.environment !== b.environment || a.client !== b.client || a.count !== b.count) return false;
  const bKeys: unknown = b.keys;
  if (aKeys === null || bKeys === null) return aKeys === bKeys;
  if (!Array.isArray(aKeys) || !Array.isArray(bKeys) || aKeys.length !== bKeys.length) return false;
  for (let i = 0; i < aKeys.length; i++) if (aKeys[i] !== bKeys[i]) return false;
  return true;
}

export interface AuditQuery {
  apiKeyId?: string;
  event?: string;
  outcome?: 'success' | 'failure';
  environment?: string;
  /** ISO 8601, inclusive. */
  since?: string;
  /** ISO 8601, exclusive. */
  until?: string;
  /** Only rows older than this seq (cursor paging). */
  beforeSeq?: number;
  /** Only rows newer than this seq (following). */
  afterSeq?: number;
  /** Oldest first (following); newest first otherwise. */
  ascending?: boolean;
  limit: number;
}

/** `r` stored as row `seq` with `hash`: its fields in their fixed order, and nothing else. */
export function storedRow(r: AuditRecord, seq: number, hash: string): StoredAuditRow {
  return { seq, time: r.time, event: r.event, outcome: r.outcome, status: r.status, error_code: r.error_code, api_key_id: r.api_key_id, jti: r.jti, subject: r.subject, environment: r.environment, keys: r.keys, client: r.client, count: r.count, hash };
}

/** The row with its fields in their fixed order, and nothing else (the admin API's events). */
export function auditObject(row: StoredAuditRow): StoredAuditRow {
  return storedRow(row, row.seq, row.hash);
}

/**
 * The row as one JSON line, fields in their fixed order (the audit file sink and `audit --json`,
 * `--follow`): read on terminals too, so a subject's bidi override or U+2028 is written as a
 * `\uXXXX` escape, the same JSON value (the hash covers the value, not this text).
 */
export function auditJson(row: StoredAuditRow): string {
  return printableJson(auditObject(row));
}

/** The row of a change made from the server's host (an admin command), not over HTTP. */
export function localChange(event: AuditEventName, apiKeyId: string | null, now: Date, subject: string | null = null): AuditRecord {
  return { time: now.toISOString(), event, outcome: 'success', status: 0, error_code: null, api_key_id: apiKeyId, jti: null, subject, environment: null, keys: null, client: 'local', count: 1 };
}
