// How a statement goes to PostgreSQL: named (prepared once per connection) or as text.
import { createHash } from 'node:crypto';
import type pg from 'pg';

const statementNames = new Map<string, string>();
const MAX_NAMED = 1_000;
/** Larger statements (audit inserts of batches past 50 rows) stay unnamed: the database keeps a plan per name and connection. */
const MAX_NAMED_PARAMETERS = 700;

/**
 * A query with parameters is named, so each connection has PostgreSQL parse and plan it once
 * (a batch's INSERT of audit rows and the use's UPDATE are planned per batch otherwise). Only a
 * statement that lists what it returns: a newer server's migration that adds columns must not
 * change the result of a statement prepared before it (PostgreSQL refuses such a cached plan),
 * so `*` keeps a statement unnamed. Without parameters a query goes as simple text (several
 * statements may share it). Prepared statements live in a session, as LISTEN does: a pooler
 * between us and the database must keep sessions (PgBouncer's session mode), never hand a
 * session's statements to another client.
 */
export function statement(sql: string, params: readonly unknown[]): pg.QueryConfig {
  const values = params as unknown[];
  if (values.length === 0 || values.length > MAX_NAMED_PARAMETERS || sql.includes('*')) return { text: sql, values };
  let name = statementNames.get(sql);
  if (name === undefined) {
    if (statementNames.size >= MAX_NAMED) return { text: sql, values };
    name = `rws_${createHash('sha256').update(sql).digest('hex').slice(0, 32)}`;
    statementNames.set(sql, name);
  }
  return { name, text: sql, values };
}
