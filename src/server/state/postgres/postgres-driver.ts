// PostgreSQL through node-postgres (`pg`): a small pool, every statement bounded in time so a
// database that stops answering turns into a 503 within the request timeout rather than a hung
// request, and idle-connection errors absorbed so a database restart never crashes the server.
// The pool reconnects by itself once the database is back. Errors never carry the URL's password.
import pg from 'pg';
import { unavailableHint, unavailableWhat } from './unavailable-hint.js';
import { ClosedBeforeLockError, LockBusyError, StateDataError, StateUnavailableError } from '../state-errors.js';
import { keepLock } from './keep-lock.js';
import { holderName, type LockHolder, LOCK_STALL_MS, LOCK_WAIT_MS } from './lock-session.js';
import { type HeldLock, type Row, type SqlDriver, type Transaction, type TransactionOptions } from '../sql/driver.js';
import { ServerUsageError } from '../../usage-error.js';
import { redactUrl, UNSHOWN_URL } from '../../url-credentials.js';
import { printable } from '../../../printable.js';
import { CONNECT_TIMEOUT_MS, QUERY_TIMEOUT_MS } from './time-limits.js';
import { clientConfig, timed } from './client-config.js';
import { isBroken } from './broken-connection.js';
import { statement } from './statements.js';
import { runTransaction } from './transaction.js';
import { commitOutcome, OUTCOME_WAIT_MS } from './commit-outcome.js';
import { endPool, newPool, POOL_SIZE } from './pool.js';

/**
 * `serving`: a server's pool, shared by concurrent requests. Otherwise a one-shot command's, which
 * lets its idle connections go before it waits for a named lock (see lock()).
 */
export async function openPostgres(url: string, options: { serving?: boolean } = {}): Promise<SqlDriver> {
  const location = redactUrl(url);
  // A URL not shown is not named in a hint either: where node-postgres reads its host from a
  // password holding a `/` (postgres://u:pw/x@…), that "host" is a piece of the password.
  const parsed = connectTarget(url);
  const target = location === UNSHOWN_URL ? 'the database' : parsed;
  const pool = newPool(url);
  const driver = new PostgresDriver(location, target, pool, url, options.serving === true);
  try {
    // Every transaction notes its id with pg_current_xact_id() (PostgreSQL 13): on an older
    // server each would fail at its BEGIN, so the server says so once, here.
    // Refused only on a clear answer: a server that says something else (a PostgreSQL-compatible
    // database, a pooler) is left to its first transaction to tell.
    const said = (await driver.query<{ version: unknown }>("SELECT current_setting('server_version_num') AS version"))[0]?.version;
    const version = typeof said === 'string' && /^[1-9]\d{4,6}$/.test(said) ? Number(said) : undefined;
    if (version !== undefined && version < MIN_SERVER_VERSION) {
      // 90624 is 9.6.24; 120005 is 12.5.
      const major = version >= 100_000 ? `${Math.floor(version / 10_000)}` : `${Math.floor(version / 10_000)}.${Math.floor(version / 100) % 100}`;
      throw new StateUnavailableError(
        `the state database ${location} runs PostgreSQL ${major}; secrets-server needs PostgreSQL 13 or later`,
        undefined,
        'upgrade the database server (pg_upgrade), or point the URL at one running PostgreSQL 13 or later',
      );
    }
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
  return driver;
}

/** server_version_num of PostgreSQL 13.0. */
const MIN_SERVER_VERSION = 130_000;

class PostgresDriver implements SqlDriver {
  readonly dialect = 'postgres';
  /** A commit is answered within one statement timeout of being asked for, queued or not. */
  readonly commitWaitMs = QUERY_TIMEOUT_MS;
  /** Aborted by close(): ends the named locks' sessions, waiting or held. */
  readonly #closing = new AbortController();

  constructor(
    readonly location: string,
    /** Where the pool connects (host:port, or a socket), for a connect timeout's message. */
    private readonly target: string,
    private pool: pg.Pool,
    /** For the named locks' sessions, which are not the pool's, and a pool that replaces this one. */
    private readonly url: string,
    private readonly serving: boolean,
  ) {}

  /** One statement, answered or failed within the statement timeout, a wait for a connection included. */
  query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return this.#query<T>(sql, params, Date.now() + QUERY_TIMEOUT_MS);
  }

  async #query<T extends Row = Row>(sql: string, params: readonly unknown[], deadline: number): Promise<T[]> {
    const client = await this.#connect(deadline);
    try {
      const rows = (await client.query(timed(statement(sql, params), this.#timeLeft(deadline)))).rows as T[];
      client.release();
      return rows;
    } catch (cause) {
      client.release(isBroken(cause) ? (cause as Error) : undefined);
      throw this.#wrap(cause);
    }
  }

  /** What is left until `deadline`, at most the statement timeout; past it, the database did not answer. */
  #timeLeft(deadline: number | undefined): number {
    const left = deadline === undefined ? QUERY_TIMEOUT_MS : Math.min(QUERY_TIMEOUT_MS, deadline - Date.now());
    if (left <= 0) throw new StateUnavailableError(`the state database ${this.location} did not answer in time`);
    return left;
  }

  async transaction<T>(fn: (tx: Transaction) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    const client = await this.#connect(options.deadline);
    return runTransaction(client, fn, options, {
      location: this.location,
      timeLeft: () => this.#timeLeft(options.deadline),
      wrap: (cause) => this.#wrap(cause),
      // Asked on another of the pool's connections, within OUTCOME_WAIT_MS in all.
      outcome: (sent) => {
        const deadline = Date.now() + OUTCOME_WAIT_MS;
        return commitOutcome((sql, params) => this.#query(sql, params, deadline), sent);
      },
    });
  }

  async lock(name: string): Promise<HeldLock> {
    // A session of its own, not one of the pool's, held by a thread of its own: see
    // lock-session.ts. If the process dies, the connection closes and the database releases the
    // lock; if it stalls, the database ends the session after LOCK_STALL_MS. Either way no lock
    // is left behind, and a holder that runs on after losing its lock learns it from check().
    // Closing the driver ends its lock sessions too: a server told to stop must not wait out the
    // 15 s of each edit queued behind a held lock (nor open sessions once its state is closed).
    if (this.#closing.signal.aborted) throw new ClosedBeforeLockError(this.location, name);
    // A one-shot command (`secret set --database-url`) waits with its lock session only: its
    // pool's idle connection, kept open while it waited, made each waiting edit hold two of the
    // database's connections, and a dozen edits at once were refused for too many (53300).
    if (!this.serving) await this.#dropIdleConnections();
    const kept = await keepLock({ url: this.url, name, application: holderName() }, this.#closing.signal);
    const { outcome } = kept;
    if (outcome.kind !== 'held' || this.#closing.signal.aborted) {
      await kept.release();
      if (this.#closing.signal.aborted) throw new ClosedBeforeLockError(this.location, name);
      throw outcome.kind === 'busy' ? lockBusy(name, outcome.holder) : this.#wrap({ code: outcome.kind === 'failed' ? outcome.code : undefined });
    }
    return {
      check: async () => {
        if (await kept.check()) return;
        throw new StateUnavailableError(
          `the state database ${this.location} ended the session holding the lock ${name} (idle over ${LOCK_STALL_MS / 1000} s: this process was stopped or paused, or the database restarted or ended the session); nothing was changed`,
          undefined,
          'another edit may hold the lock by now, or have changed the file: see the file as it is (secrets-server secret list) and make the edit again',
        );
      },
      release: () => kept.release(),
    };
  }

  /** A fresh pool in place of this one, whose idle connections are closed before this resolves. */
  async #dropIdleConnections(): Promise<void> {
    if (this.pool.totalCount === 0) return;
    const old = this.pool;
    this.pool = newPool(this.url);
    await endPool(old, QUERY_TIMEOUT_MS);
  }

  /**
   * A connection from the pool: a new one within the connect timeout, or, while every one is busy
   * (on a database that hangs, each until its statement times out), by `deadline`. A connection
   * that arrives after the deadline goes back to the pool unused.
   */
  async #connect(deadline?: number): Promise<pg.PoolClient> {
    const connecting = this.pool.connect();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      if (deadline !== undefined) timer = setTimeout(() => reject(new StateUnavailableError(`the state database ${this.location} did not answer in time`)), Math.max(0, deadline - Date.now()));
    });
    try {
      return await Promise.race([connecting, late]);
    } catch (cause) {
      connecting.then((client) => client.release(), () => undefined);
      // Said as what it is: "connection failed" read as a refusal, and its hint sent the operator
      // to `db status`, which waits for the same connect timeout and fails the same way.
      if (isConnectTimeout(cause)) {
        throw new StateUnavailableError(
          `the state database ${this.location} did not answer: connecting to ${this.target} timed out after ${CONNECT_TIMEOUT_MS / 1000} s`,
          cause,
          `check that ${this.target} is reachable from this host (a firewall or security group may drop the packets) and that PostgreSQL is up and listening there`,
        );
      }
      // Every connection of the pool busy (their statements waiting on a lock, or on a slow
      // server) for the connect timeout: nothing failed to connect, as "connection failed" said.
      if (isPoolWaitTimeout(cause)) {
        throw new StateUnavailableError(
          `the state database ${this.location} is slow to answer: all ${POOL_SIZE} of this process's connections to it were busy for ${CONNECT_TIMEOUT_MS / 1000} s, and this statement got none`,
          cause,
          "see what this process's statements wait for (SELECT pid, wait_event_type, wait_event, now() - query_start, query FROM pg_stat_activity WHERE state = 'active'): a lock another session holds, or a database short of CPU or disk; more replicas share a load this high",
        );
      }
      throw this.#wrap(cause);
    } finally {
      clearTimeout(timer);
    }
  }

  #wrap(cause: unknown): unknown {
    if (cause instanceof StateUnavailableError) return cause;
    const code = (cause as { code?: unknown }).code;
    // Integrity and syntax errors are ours to see (a bug, or a hand-edited schema); everything
    // else but data errors — refused or lost connections, timeouts, shutdowns, a full disk — is
    // unavailability.
    if (typeof code === 'string' && /^(23|42)/.test(code)) return cause;
    // Data errors (class 22) are answers too: a value the database refused, not an outage.
    if (typeof code === 'string' && code.startsWith('22')) return new StateDataError(code, cause);
    const known = typeof code === 'string' ? code : undefined;
    return new StateUnavailableError(`the state database ${this.location} ${unavailableWhat(known)}`, cause, unavailableHint(known, this.target));
  }

  async close(): Promise<void> {
    this.#closing.abort();
    await this.pool.end().catch(() => undefined);
  }
}

/**
 * Where node-postgres connects for `url`, as it resolves it (the URL's host and port, a `host=`
 * in its query, PGHOST, its defaults): `host:port`, `[v6]:port`, or a socket directory's socket.
 * Never a credential. A URL node-postgres cannot parse (a port that is not a number, an unclosed
 * `[`) is the operator's to fix, not a bug of ours to report: a usage error, naming no part of
 * the URL. Making a client parses the URL without connecting; other errors (a missing
 * `sslrootcert` file) surface when it connects, as they did.
 */
function connectTarget(url: string): string {
  let client: pg.Client;
  try {
    client = new pg.Client(clientConfig(url));
  } catch (error) {
    // Connecting then fails with that same error, never with a timeout that would name the target.
    if ((error as { code?: unknown }).code !== 'ERR_INVALID_URL') return 'the database';
    throw new ServerUsageError('the database URL is not a valid URL (a port that is not a number, a host in [ ] not closed?)', 'check --database-url, RWS_DATABASE_URL or the file RWS_DATABASE_URL_FILE names');
  }
  const host = printable(String(client.host));
  if (host.startsWith('/')) return `${host}/.s.PGSQL.${client.port}`;
  return `${host.includes(':') ? `[${host}]` : host}:${client.port}`;
}

/**
 * node-postgres gives a connect timeout no code: pg-pool ends a client that has not connected
 * within `connectionTimeoutMillis` and fails it with this message (the client's own timer,
 * set to the same time, destroys the socket with 'timeout expired').
 */
function isConnectTimeout(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = e.cause) {
    if (e.message === 'Connection terminated due to connection timeout' || e.message === 'timeout expired') return true;
  }
  return false;
}

/** pg-pool's own words, and no code, for a wait for one of its connections past `connectionTimeoutMillis`. */
function isPoolWaitTimeout(error: unknown): boolean {
  return error instanceof Error && error.message === 'timeout exceeded when trying to connect';
}

/** Names who holds the lock as the database shows it, and what to do. */
function lockBusy(name: string, holder: LockHolder | undefined): LockBusyError {
  const waited = LOCK_WAIT_MS / 1000;
  if (holder === undefined) return new LockBusyError(name, 'another edit (let go just now)', waited, 'try again');
  const who = [`database session ${holder.pid}`, holder.client === null ? undefined : `from ${holder.client}`, holder.heldSeconds === null ? undefined : `held for ${holder.heldSeconds} s`].filter((part) => part !== undefined).join(', ');
  return new LockBusyError(
    name,
    `${holder.application === null ? 'another session' : `"${printable(holder.application)}"`} (${who})`,
    waited,
    `a holder that stops answering loses the lock after ${LOCK_STALL_MS / 1000} s, so this one is still at work (a large import takes a while): try again once it is done; if it never ends, stop that process, or end its session: SELECT pg_terminate_backend(${holder.pid})`,
  );
}

