// One named lock's PostgreSQL session: a transaction that holds `pg_advisory_xact_lock` and
// sends a statement every second while it does. The session is opened with
// `idle_in_transaction_session_timeout`, so a holder that stops sending (a process stopped by
// SIGSTOP, a paused VM: the kernel still keeps its socket open, so the database cannot tell it
// from a live one) loses the lock after LOCK_STALL_MS: PostgreSQL ends the session, and the lock
// with it. The heartbeat is what tells a stalled holder from a slow one: it runs on a thread of
// its own (lock-keeper.ts), which keeps ticking while the edit's thread is busy for seconds (a
// 60,000-value `secret import` into a file as large keeps the event loop for over 8 s) but stops
// with the process. So the bound is on a stalled holder, never on a long edit.
import { hostname } from 'node:os';
import pg from 'pg';
import { clientConfig, timed } from './client-config.js';
import { QUERY_TIMEOUT_MS } from './time-limits.js';
import { withoutPairs } from './url-query.js';
import { lockKey } from '../sql/driver.js';
// Each statement but the wait is bounded as every other session's.

/** A lock session idle this long is ended by the database, its lock released. */
export const LOCK_STALL_MS = 10_000;
/** How often a holder's session shows it is alive: a tenth of the bound, for a thread that lags. */
const HEARTBEAT_MS = 1_000;
/** How often the database looks whether a lock session's client is still there (PostgreSQL 14+). */
const CLIENT_CHECK_MS = 1_000;
/** How long an edit waits for the lock: past a stalled holder's bound, so it then proceeds. */
export const LOCK_WAIT_MS = LOCK_STALL_MS + 5_000;

/** Who holds a lock another edit waited for, as pg_stat_activity shows it (null: not visible to this role). */
export interface LockHolder {
  pid: number;
  application: string | null;
  client: string | null;
  /** Seconds since its transaction began, and since it last sent a statement. */
  heldSeconds: number | null;
  idleSeconds: number | null;
}

export type LockOutcome = { kind: 'held' } | { kind: 'busy'; holder: LockHolder | undefined } | { kind: 'failed'; code: string | undefined };

/** Names this process in pg_stat_activity, so that a waiting edit can say who holds the lock. */
export function holderName(pid: number = process.pid): string {
  return `secrets-server edit pid ${pid} on ${hostname()}`;
}

/**
 * The lock session's application_name: ours first, whatever the URL gives (node-postgres lets a
 * URL's `application_name` replace the one it is given, and a waiting edit could then name the
 * holder only by session and address), then the URL's own in parentheses, cut where PostgreSQL
 * cuts it (63 bytes) but never inside a character.
 */
export function sessionName(ours: string, theirs: string | undefined): string {
  const name = theirs === undefined || theirs === '' ? ours : `${ours} (${theirs})`;
  return Buffer.from(name, 'utf8').subarray(0, 63).toString('utf8').replace(/\uFFFD$/, '');
}

export class LockSession {
  #lost: Error | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #forget: () => void = () => undefined;
  #ended = false;

  private constructor(
    private readonly client: pg.Client,
    private readonly key: bigint,
  ) {
    client.on('error', (error) => void (this.#lost ??= error));
  }

  /**
   * Connects and waits for the lock, at most LOCK_WAIT_MS; holds it (and beats) when the outcome is
   * `held`. `abandon` aborted ends the session at once, whether it waits or holds: its wait fails,
   * its lock is let go and check() says so.
   */
  static async acquire(url: string, name: string, application: string, abandon?: AbortSignal): Promise<{ outcome: LockOutcome; session?: LockSession }> {
    let theirs: string | undefined;
    const own = withoutPairs(url, ({ name: parameter, value }) => {
      if (parameter !== 'application_name') return false;
      theirs = value;
      return true;
    });
    const client = new pg.Client({ ...clientConfig(own), application_name: sessionName(application, theirs), idle_in_transaction_session_timeout: LOCK_STALL_MS });
    const session = new LockSession(client, lockKey(name));
    if (abandon !== undefined) {
      const end = (): void => void session.#end();
      if (abandon.aborted) return { outcome: { kind: 'failed', code: undefined } };
      abandon.addEventListener('abort', end, { once: true });
      session.#forget = () => abandon.removeEventListener('abort', end);
    }
    try {
      await client.connect();
      // lock_timeout bounds the wait with its own SQLSTATE (55P03), told apart from a database
      // that does not answer; the statement's own bound is lifted for the wait only.
      // client_connection_check_interval: a backend waiting for a lock reads nothing from its
      // client, so a wait whose process is gone (SIGKILL, SIGTERM) kept its connection slot until
      // lock_timeout; with it the database looks at the socket every CLIENT_CHECK_MS and ends the
      // session. PostgreSQL 13 has no such setting: current_setting(…, true) is then NULL, and
      // CASE never calls set_config, which would fail on a name it does not know.
      await client.query(
        timed(
          {
            text: `BEGIN; SET LOCAL lock_timeout = ${LOCK_WAIT_MS}; SET LOCAL statement_timeout = ${LOCK_WAIT_MS + QUERY_TIMEOUT_MS}; SELECT CASE WHEN current_setting('client_connection_check_interval', true) IS NOT NULL THEN set_config('client_connection_check_interval', '${CLIENT_CHECK_MS}', true) END`,
          },
          QUERY_TIMEOUT_MS,
        ),
      );
      try {
        await client.query(timed({ text: 'SELECT pg_advisory_xact_lock($1)', values: [session.key.toString()] }, LOCK_WAIT_MS + QUERY_TIMEOUT_MS));
      } catch (error) {
        if ((error as { code?: unknown }).code !== '55P03') throw error;
        await client.query(timed({ text: 'ROLLBACK' }, QUERY_TIMEOUT_MS));
        const holder = await session.#holder();
        await session.#end();
        return { outcome: { kind: 'busy', holder } };
      }
      await client.query(timed({ text: `SET LOCAL statement_timeout = ${QUERY_TIMEOUT_MS}` }, QUERY_TIMEOUT_MS));
    } catch (error) {
      await session.#end();
      const code = (error as { code?: unknown }).code;
      return { outcome: { kind: 'failed', code: typeof code === 'string' ? code : undefined } };
    }
    // Abandoned meanwhile: its session is ended, and a heartbeat started now would never stop.
    if (session.#ended) return { outcome: { kind: 'failed', code: undefined } };
    session.#heartbeat = setInterval(() => {
      client.query(timed({ text: 'SELECT 1' }, QUERY_TIMEOUT_MS)).catch((error: Error) => void (session.#lost ??= error));
    }, HEARTBEAT_MS);
    return { outcome: { kind: 'held' }, session };
  }

  /** Whether the lock is still held: asked of the database, one round trip, never assumed. */
  async check(): Promise<boolean> {
    if (this.#lost !== undefined) return false;
    try {
      const rows = await this.client.query(timed({ text: `SELECT 1 FROM pg_locks WHERE ${this.#locksSql('pid = pg_backend_pid()')}`, values: this.#keyParts() }, QUERY_TIMEOUT_MS));
      return this.#lost === undefined && rows.rows.length === 1;
    } catch (error) {
      this.#lost ??= error as Error;
      return false;
    }
  }

  /** Ends the transaction, and with it the lock; the session is closed either way. */
  async release(): Promise<void> {
    if (this.#lost === undefined) await this.client.query(timed({ text: 'ROLLBACK' }, QUERY_TIMEOUT_MS)).catch(() => undefined);
    await this.#end();
  }

  async #end(): Promise<void> {
    this.#ended = true;
    this.#forget();
    clearInterval(this.#heartbeat);
    await this.client.end().catch(() => undefined);
  }

  async #holder(): Promise<LockHolder | undefined> {
    const rows = await this.client.query<{ pid: number; application_name: string | null; client: string | null; held: number | null; idle: number | null }>(
      timed(
        {
          text: `SELECT a.pid, a.application_name, host(a.client_addr) AS client, floor(extract(epoch FROM now() - a.xact_start))::int AS held, floor(extract(epoch FROM now() - a.state_change))::int AS idle
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE ${this.#locksSql('true', 'l.')} LIMIT 1`,
          values: this.#keyParts(),
        },
        QUERY_TIMEOUT_MS,
      ),
    );
    const row = rows.rows[0];
    return row === undefined ? undefined : { pid: row.pid, application: row.application_name || null, client: row.client, heldSeconds: row.held, idleSeconds: row.idle };
  }

  /**
   * pg_locks shows a bigint advisory key as its high and low 32 bits, with objsubid 1, and lists
   * the whole server's locks: those of another database on it, with the same key, are not ours.
   */
  #locksSql(who: string, prefix = ''): string {
    return `${prefix}locktype = 'advisory' AND ${prefix}granted AND ${prefix}database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND ${prefix}classid = $1 AND ${prefix}objid = $2 AND ${prefix}objsubid = 1 AND ${who}`;
  }

  #keyParts(): number[] {
    return [Number(this.key >> 32n), Number(this.key & 0xffffffffn)];
  }
}
