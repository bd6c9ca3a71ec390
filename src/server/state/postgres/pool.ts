// The driver's pool of connections, and letting it go. pg-pool has no way to close its idle
// connections but ending the pool, so a pool whose idle connections must go is ended and another
// takes its place (postgres-driver.ts).
import pg from 'pg';
import { clientConfig } from './client-config.js';

/** Connections per process: a server's concurrent statements, at most. */
export const POOL_SIZE = 6;

export function newPool(url: string): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(url), pipeline: true, max: POOL_SIZE, idleTimeoutMillis: 30_000 });
  // An idle client whose server went away emits 'error' on the pool: it is dropped, not fatal.
  pool.on('error', () => undefined);
  // A client taken from the pool has no 'error' listener (pg-pool listens only while it is idle),
  // and node-postgres emits 'error' for a server's FATAL message that arrives with no statement in
  // flight: one read holding a statement's answer and then the FATAL of a restart or
  // pg_terminate_backend (a busy event loop reads both at once) would end the process. Absorbed:
  // the client is then unqueryable, so its next statement fails as unavailable, and the pool
  // drops it when it is released.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/**
 * Ends `pool`, and waits until its idle connections are closed (the database has seen each one
 * go), at most `waitMs`. A connection in use is closed when it is released, without waiting.
 */
export async function endPool(pool: pg.Pool, waitMs: number): Promise<void> {
  const idle = pool.idleCount;
  let removed = 0;
  let timer: NodeJS.Timeout | undefined;
  const closed = new Promise<void>((resolve) => {
    if (idle === 0) return resolve();
    pool.on('remove', () => void (++removed >= idle && resolve()));
    timer = setTimeout(resolve, waitMs);
  });
  // pg-pool's end() resolves only once every connection is back: not waited for.
  pool.end().catch(() => undefined);
  await closed;
  clearTimeout(timer);
}
