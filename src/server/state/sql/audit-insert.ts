// The INSERT of a batch of sealed audit rows. Most batches are reads of one token by one client:
// rows that differ only in `seq`, `time` and `hash`. On SQLite, binding a parameter costs more
// than the row it fills (each text is converted to UTF-8 on its own), so such a batch binds what
// its rows share once and three values a row. PostgreSQL, which takes parameters as they come,
// keeps the one form (it would need casts for the shared form, and its prepared plans per count).
import { sameAfterTime, type StoredAuditRow } from '../../audit/record.js';

const AUDIT_COLUMNS = ['seq', 'time', 'event', 'outcome', 'status', 'error_code', 'api_key_id', 'jti', 'subject', 'environment', 'keys', 'client', 'count', 'hash'] as const;

/** The fields every row of a shared-form batch has in common, in AUDIT_COLUMNS' order. */
const SHARED = ['event', 'outcome', 'status', 'error_code', 'api_key_id', 'jti', 'subject', 'environment', 'keys', 'client', 'count'] as const;

export interface AuditInsert {
  sql: string;
  params: unknown[];
}

/** The statement and parameters that insert `rows` (at most a few hundred: callers chunk). */
export function auditInsert(rows: readonly StoredAuditRow[], sharedForm: boolean): AuditInsert {
  const first = rows[0] as StoredAuditRow;
  if (sharedForm && rows.length > 1 && rows.every((row) => sameAfterTime(row, first))) {
    const params: unknown[] = [first.event, first.outcome, first.status, first.error_code, first.api_key_id, first.jti, first.subject, first.environment, keysText(first.keys), first.client, first.count];
    for (const r of rows) params.push(r.seq, r.time, r.hash);
    return { sql: sharedInsert(rows.length), params };
  }
  const params: unknown[] = [];
  // Field by field in AUDIT_COLUMNS' order: a loop over the names is a keyed lookup per value.
  for (const r of rows) {
    params.push(r.seq, r.time, r.event, r.outcome, r.status, r.error_code, r.api_key_id, r.jti, r.subject, r.environment, keysText(r.keys), r.client, r.count, r.hash);
  }
  return { sql: fullInsert(rows.length), params };
}

const keysText = (keys: readonly string[] | null): string | null => (keys === null ? null : JSON.stringify(keys));

// Made once per row count: drivers cache the prepared statement by its text.
const fullInserts = new Map<number, string>();
const sharedInserts = new Map<number, string>();

function fullInsert(count: number): string {
  let sql = fullInserts.get(count);
  if (sql === undefined) {
    const width = AUDIT_COLUMNS.length;
    const tuples = Array.from({ length: count }, (_, row) => `(${AUDIT_COLUMNS.map((_, column) => `$${row * width + column + 1}`).join(', ')})`);
    sql = `INSERT INTO audit (${AUDIT_COLUMNS.join(', ')}) VALUES ${tuples.join(', ')}`;
    fullInserts.set(count, sql);
  }
  return sql;
}

/** $1…$11 the shared fields, then `seq`, `time` and `hash` of each row. */
function sharedInsert(count: number): string {
  let sql = sharedInserts.get(count);
  if (sql === undefined) {
    const first = SHARED.length;
    const tuples = Array.from({ length: count }, (_, row) => `($${first + row * 3 + 1}, $${first + row * 3 + 2}, $${first + row * 3 + 3})`);
    const values = AUDIT_COLUMNS.map((column) => (column === 'seq' || column === 'time' || column === 'hash' ? `v.${column}` : `$${SHARED.indexOf(column) + 1}`));
    sql = `WITH v (seq, time, hash) AS (VALUES ${tuples.join(', ')}) INSERT INTO audit (${AUDIT_COLUMNS.join(', ')}) SELECT ${values.join(', ')} FROM v`;
    sharedInserts.set(count, sql);
  }
  return sql;
}
