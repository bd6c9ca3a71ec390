// How every session of ours is configured: its time limits, how it reads bigint columns, and a
// statement's own read timeout. No state here, so the pool, the lock sessions and the listener
// share it without importing the driver.
import pg from 'pg';
import { CONNECT_TIMEOUT_MS, QUERY_TIMEOUT_MS, withoutUrlLimits } from './time-limits.js';

/** bigint columns (seq, epoch seconds, uses) as numbers: they stay far below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: string) => (oid === 20 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser,
};

/**
 * Every session: statements bounded on both ends, and a transaction whose client stops sending
 * (a replica stopped, frozen or cut off mid-transaction, its connection still open) ended by the
 * database after the same bound. Each write takes the audit chain's lock, which every replica
 * shares: without that bound one replica stalled while holding it left every other replica's
 * every request a 503 for as long as it stalled. Our transactions send their statements back to
 * back, never idling in between. The URL's own time limits are taken out of it first: node-postgres
 * would let them win over these (time-limits.ts).
 */
export function clientConfig(url: string): pg.ClientConfig {
  return {
    connectionString: withoutUrlLimits(url).url,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: QUERY_TIMEOUT_MS,
    statement_timeout: QUERY_TIMEOUT_MS,
    idle_in_transaction_session_timeout: QUERY_TIMEOUT_MS,
    keepAlive: true,
    types,
    application_name: 'secrets-server',
  };
}

/** node-postgres reads a per-query `query_timeout` (its types do not list it). */
export function timed(config: pg.QueryConfig, ms: number): pg.QueryConfig {
  return Object.assign(config, { query_timeout: ms });
}
