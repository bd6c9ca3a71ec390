// PostgreSQL through node-postgres (`pg`): a small pool, every statement bounded in time so a
// database that stops answering turns into a 503 within the request timeout rather than a hung
// request, and idle-connection errors absorbed so a database restart never crashes the server.
// The pool reconnects by itself once the database is back. Errors never carry the URL's password.
import { createHash } from 'node:crypto';
import pg from 'pg';
import { unavailableHint, unavailableWhat } from './unavailable-hint.js';
import { ClosedBeforeLockError, LockBusyError, StateDataError, StateUnavailableError } from '../state-errors.js';
import { keepLock } from './keep-lock.js';
import { holderName, type LockHolder, LOCK_STALL_MS, LOCK_WAIT_MS } from './lock-session.js';
import { type HeldLock, lockKey, type Row, type SqlDriver, type Transaction, type TransactionOptions } from '../sql/driver.js';
import { ServerUsageError } from '../../usage-error.js';
import { redactUrl, UNSHOWN_URL } from '../../url-credentials.js';
import { printable } from '../../../printable.js';
import { CONNECT_TIMEOUT_MS, QUERY_TIMEOUT_MS } from './time-limits.js';
import { clientConfig, timed } from './client-config.js';
import { endPool, newPool, POOL_SIZE } from './pool.js';

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
function statement(sql: string, params: readonly unknown[]): pg.QueryConfig {
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
    await driver.query('SELECT 1');
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
  return driver;
}

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
  async query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    const deadline = Date.now() + QUERY_TIMEOUT_MS;
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
    let broken: unknown;
    let sent = false;
    // Each statement gets what is left until the deadline (at most the statement timeout); one
    // past it is not sent, and the transaction fails as unanswered.
    const timeLeft = (): number => {
      const left = this.#timeLeft(options.deadline);
      sent = true;
      return left;
    };
    // A pipelined BEGIN's answer: until it is in, no other answer is handed out (they arrive in
    // order, so each waits only for the check), and if it failed, its error is what they throw.
    let begun: Promise<unknown> | undefined;
    const send = async <R extends Row = Row>(sql: string, params: readonly unknown[], query_timeout: number): Promise<R[]> => {
      sent = true;
      let rows: R[];
      try {
        rows = (await client.query(timed(statement(sql, params), query_timeout))).rows as R[];
      } catch (cause) {
        broken = cause;
        await begun;
        throw this.#wrap(cause);
      }
      await begun;
      return rows;
    };
    // Writes whose answers are awaited with the COMMIT's (see Transaction.write), and how long
    // the database may take over them, each bounded by the database itself.
    const writes: Array<Promise<unknown>> = [];
    let writesMs = 0;
    try {
      const tx: Transaction = {
        write: (sql, params = []) => {
          // Once the COMMIT is sent behind a write, no timer of ours may end the wait: closing the
          // connection then does not stop the database from applying a COMMIT it has already
          // received, and the request would be answered 503 "nothing served" with its use charged
          // and its row written. So the database ends the write by the deadline itself (a write it
          // cancels fails the transaction, and the COMMIT becomes a rollback), and our timers on
          // the write and the COMMIT count its time on top of their own (see below).
          const left = timeLeft();
          writesMs += left;
          for (const answered of [send(`SET LOCAL statement_timeout TO ${left}`, [], left + QUERY_TIMEOUT_MS), send(sql, params, left + QUERY_TIMEOUT_MS)]) {
            // Awaited at the commit; a failure before then must not be an unhandled rejection.
            answered.catch(() => undefined);
            writes.push(answered);
          }
        },
        // Async, so that a deadline already past fails as a rejected promise, never as a throw
        // that leaves a statement sent before it unawaited (an unhandled rejection, a crash).
        query: async <R extends Row = Row>(sql: string, params: readonly unknown[] = []) => send<R>(sql, params, timeLeft()),
        lock: async (name) => void (await tx.query('SELECT pg_advisory_xact_lock($1)', [lockKey(name).toString()])),
        // Both statements in one simple-protocol query: no parameters (the key is our own
        // number), and at READ COMMITTED the second takes its snapshot after the lock is held.
        lockThen: async <R extends Row = Row>(name: string, sql: string) => {
          const query_timeout = timeLeft();
          let results: pg.QueryResult[];
          try {
            results = (await client.query(timed({ text: `SELECT pg_advisory_xact_lock(${lockKey(name).toString()}); ${sql}` }, query_timeout))) as unknown as pg.QueryResult[];
          } catch (cause) {
            broken = cause;
            await begun;
            throw this.#wrap(cause);
          }
          await begun;
          return (results.at(-1)?.rows ?? []) as R[];
        },
      };
      // Stated, never left to the server's defaults: READ COMMITTED (each statement sees what
      // committed before it, which the audit chain's lock-then-read and the row locks rely on),
      // and whether the commit waits for its WAL flush (and for synchronous standbys, as the
      // server is configured) or is flushed by the WAL writer within a fraction of a second.
      // No parameters, so all go in one message. rws.in_transaction is IN_TRANSACTION's mark.
      const begin = `BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit TO ${options.durable === false ? 'OFF' : 'ON'}; SET LOCAL rws.in_transaction TO on`;
      const beginning = client.query(timed({ text: begin }, timeLeft())).catch((cause: unknown) => {
        broken = cause;
        throw this.#wrap(cause);
      });
      if (options.pipelined === true) {
        begun = beginning;
        // Awaited through every answer after it; a failure meanwhile is not an unhandled rejection.
        begun.catch(() => undefined);
      } else {
        await beginning;
      }
      const value = await fn(tx);
      // Not sent once the deadline has passed (a clean rollback). Once sent it gets the whole
      // statement timeout, not what is left: cut short, a commit the database has applied would
      // be reported as failed, "nothing served", with its rows and effects kept.
      this.#timeLeft(options.deadline);
      // The COMMIT goes out behind the writes not yet answered (the client pipelines): if one of
      // them failed, the transaction is aborted and PostgreSQL answers this COMMIT with a
      // ROLLBACK, so nothing of it is committed, and that write's error is the one thrown.
      // Behind writes, the COMMIT gets the statement timeout back (each write had what was left)
      // and our timer on it also counts the writes' time: it fires only once the database has had
      // all of that, as a COMMIT sent alone gets the whole statement timeout of its own.
      const commit = writes.length === 0 ? statement('COMMIT', []) : { text: `SET LOCAL statement_timeout TO ${QUERY_TIMEOUT_MS}; COMMIT` };
      const committed = client.query(timed(commit, QUERY_TIMEOUT_MS + writesMs)) as Promise<pg.QueryResult | pg.QueryResult[]>;
      committed.catch(() => undefined);
      await Promise.all(writes);
      try {
        const answer = await committed;
        // Never reached with the writes above all answered, unless the database disagrees.
        if ((Array.isArray(answer) ? answer.at(-1) : answer)?.command !== 'COMMIT') throw new StateUnavailableError(`the state database ${this.location} rolled the transaction back at its commit`);
      } catch (cause) {
        broken = cause;
        throw this.#wrap(cause);
      }
      broken = undefined;
      return value;
    } catch (error) {
      // A connection that failed or whose statement timed out is dropped without a ROLLBACK: the
      // database rolls back a dropped session's transaction by itself, and on a connection that
      // does not answer the ROLLBACK would wait behind the hung statement for another timeout.
      if (sent && !isBroken(broken)) await client.query('ROLLBACK').catch((cause: unknown) => (broken = cause));
      throw error;
    } finally {
      // A client whose connection failed is destroyed, not returned to the pool.
      client.release(isBroken(broken) ? (broken as Error) : undefined);
    }
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

function isBroken(error: unknown): boolean {
  return error instanceof Error && isConnectionError(error);
}

function isConnectionError(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code !== 'string' || /^(08|57|53|XX)/.test(code) || /^E[A-Z]+$/.test(code);
}
