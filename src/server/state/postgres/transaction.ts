// One write transaction on one of the pool's connections, its statements pipelined (node-postgres's
// pipeline mode sends a statement before the answers to those before it arrive; they come back in
// order). What may go out before which answer, and which timer may end a wait, is decided here.
import type pg from 'pg';
import { isAnswerLost, isBroken } from './broken-connection.js';
import { timed } from './client-config.js';
import { statement } from './statements.js';
import { QUERY_TIMEOUT_MS } from './time-limits.js';
import { lockKey, type Row, type Transaction, type TransactionOptions } from '../sql/driver.js';
import { CommitUnknownError, StateUnavailableError } from '../state-errors.js';

/** What the driver lends a transaction. */
export interface TransactionDriver {
  /** For messages: the URL without its password. */
  location: string;
  /** What is left until the transaction's deadline, at most the statement timeout; throws past it. */
  timeLeft(): number;
  /** The state error for what node-postgres threw. */
  wrap(cause: unknown): unknown;
  /**
   * Whether a transaction whose COMMIT went out but whose answer was lost committed, asked on
   * another connection (commit-outcome.ts); undefined when that cannot be known.
   */
  outcome(sent: SentCommit): Promise<'committed' | 'aborted' | undefined>;
}

/** What identifies a transaction whose COMMIT was sent: its id, the session that runs it, and what it wrote. */
export interface SentCommit {
  xid: string;
  pid: number;
  /** A statement that finds a row only if this transaction committed (TransactionOptions.committedIf). */
  proof?: { sql: string; params: readonly unknown[] };
}

/**
 * Runs `fn` in one transaction on `client`, and gives the client back (destroyed if its connection
 * broke). A COMMIT sent but never answered (our timer, a lost connection) leaves the outcome to
 * the database: it may apply a commit we gave up on (deferred triggers, the WAL flush, a
 * synchronous standby: PostgreSQL bounds none of a COMMIT's own work by statement_timeout). So
 * the transaction is then asked after on another connection; committed, its value stands, and
 * the request is answered as what the database holds. Otherwise the failure stands: aborted, or
 * unknown (the database itself unreachable).
 */
export async function runTransaction<T>(client: pg.PoolClient, fn: (tx: Transaction) => Promise<T>, options: TransactionOptions, driver: TransactionDriver): Promise<T> {
  const lost: { commit?: SentCommit; value?: T } = {};
  try {
    return await attempt(client, fn, options, driver, lost);
  } catch (error) {
    // Asked only once the client is given back (destroyed): its pool slot is free for the question.
    if (lost.commit === undefined) throw error;
    const outcome = await driver.outcome(lost.commit);
    if (outcome === 'committed') return lost.value as T;
    if (outcome === 'aborted') throw error;
    throw new CommitUnknownError(driver.location, error);
  }
}

async function attempt<T>(client: pg.PoolClient, fn: (tx: Transaction) => Promise<T>, options: TransactionOptions, driver: TransactionDriver, lost: { commit?: SentCommit; value?: T }): Promise<T> {
  let broken: unknown;
  let sent = false;
  // Each statement gets what is left until the deadline (at most the statement timeout); one
  // past it is not sent, and the transaction fails as unanswered.
  const timeLeft = (): number => {
    const left = driver.timeLeft();
    sent = true;
    return left;
  };
  // A pipelined BEGIN's answer: until it is in, no other answer is handed out (they arrive in
  // order, so each waits only for the check), and if it failed, its error is what they throw.
  let begun: Promise<unknown> | undefined;
  let beginAnswered = false;
  const send = async <R extends Row = Row>(sql: string, params: readonly unknown[], query_timeout: number): Promise<R[]> => {
    sent = true;
    let rows: R[];
    try {
      rows = (await client.query(timed(statement(sql, params), query_timeout))).rows as R[];
    } catch (cause) {
      broken = cause;
      await begun;
      throw driver.wrap(cause);
    }
    await begun;
    return rows;
  };
  // The write whose answer is awaited with the COMMIT's (see Transaction.write): its two
  // statements, and how long the database may take over it.
  const writes: Array<Promise<unknown>> = [];
  let writeMs = 0;
  try {
    const tx: Transaction = {
      write: (sql, params = []) => {
        // One write per transaction: the timers behind it count its time, not that of several
        // run one after another. Sent only once the BEGIN is answered: a write behind a BEGIN
        // that failed would commit on its own. (#appendAudit writes once, after the chain's head.)
        if (writes.length > 0 || (begun !== undefined && !beginAnswered)) throw new Error('a transaction sends one write, once its BEGIN is answered');
        // Once the COMMIT is sent behind the write, closing the connection does not stop the
        // database from applying it: a timer of ours that fired while the write still ran would
        // answer 503 "nothing served" with the use charged and the row written. So the database
        // ends the write by the deadline itself (statement_timeout: a write it cancels aborts the
        // transaction, and the COMMIT becomes a rollback), and our timers on the write and the
        // COMMIT count the write's time on top of their own.
        const left = timeLeft();
        writeMs = left;
        for (const answered of [send(`SET LOCAL statement_timeout TO ${left}`, [], left + QUERY_TIMEOUT_MS), send(sql, params, left + QUERY_TIMEOUT_MS)]) {
          // Awaited at the commit; a failure before then must not be an unhandled rejection.
          answered.catch(() => undefined);
          writes.push(answered);
        }
      },
      // Async, so that a deadline already past fails as a rejected promise, never as a throw
      // that leaves a statement sent before it unawaited (an unhandled rejection, a crash).
      query: async <R extends Row = Row>(sql: string, params: readonly unknown[] = []) => {
        // A statement behind the write waits for its answer first: sent at once, its timer would
        // not count the write's time, and a failure of the write would show as its own. Without
        // a write, nothing is awaited: statements go out in the order they are asked for.
        if (writes.length > 0) await Promise.all(writes);
        return send<R>(sql, params, timeLeft());
      },
      lock: async (name) => void (await tx.query('SELECT pg_advisory_xact_lock($1)', [lockKey(name).toString()])),
      // Both statements in one simple-protocol query: no parameters (the key is our own
      // number), and at READ COMMITTED the second takes its snapshot after the lock is held.
      lockThen: async <R extends Row = Row>(name: string, sql: string) => {
        if (writes.length > 0) await Promise.all(writes);
        const query_timeout = timeLeft();
        let results: pg.QueryResult[];
        try {
          results = (await client.query(timed({ text: `SELECT pg_advisory_xact_lock(${lockKey(name).toString()}); ${sql}` }, query_timeout))) as unknown as pg.QueryResult[];
        } catch (cause) {
          broken = cause;
          await begun;
          throw driver.wrap(cause);
        }
        await begun;
        return (results.at(-1)?.rows ?? []) as R[];
      },
    };
    // Stated, never left to the server's defaults: READ COMMITTED (each statement sees what
    // committed before it, which the audit chain's lock-then-read and the row locks rely on),
    // and whether the commit waits for its WAL flush (and for synchronous standbys, as the
    // server is configured) or is flushed by the WAL writer within a fraction of a second.
    // No parameters, so all go in one message. rws.in_transaction is IN_TRANSACTION's mark. The
    // transaction's id and session are what a COMMIT whose answer is lost is asked after by.
    const begin = `BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit TO ${options.durable === false ? 'OFF' : 'ON'}; SET LOCAL rws.in_transaction TO on; SELECT pg_current_xact_id()::text AS xid, pg_backend_pid() AS pid`;
    let self: SentCommit | undefined;
    const beginning = (client.query(timed({ text: begin }, timeLeft())) as unknown as Promise<pg.QueryResult[]>).then(
      (results) => {
        const row = results.at(-1)?.rows[0] as { xid?: unknown; pid?: unknown } | undefined;
        if (typeof row?.xid === 'string' && typeof row.pid === 'number') self = { xid: row.xid, pid: row.pid };
      },
      (cause: unknown) => {
        broken = cause;
        throw driver.wrap(cause);
      },
    );
    if (options.pipelined === true) {
      begun = beginning;
      // Awaited through every answer after it; a failure meanwhile is not an unhandled rejection.
      begun.then(() => (beginAnswered = true), () => undefined);
    } else {
      await beginning;
    }
    const value = await fn(tx);
    // Not sent once the deadline has passed (a clean rollback). Once sent it gets the whole
    // statement timeout, not what is left: cut short, a commit the database has applied would
    // be reported as failed, "nothing served", with its rows and effects kept.
    driver.timeLeft();
    // The COMMIT goes out behind the write if it is not answered yet (the client pipelines): if
    // the write failed, the transaction is aborted and PostgreSQL skips or refuses this COMMIT,
    // so nothing of it is committed (the catch below ends it with a ROLLBACK), and the write's
    // error is the one thrown. Our timer on the COMMIT starts now and counts the write's time on
    // top of the statement timeout, so the COMMIT's own work gets what a COMMIT sent alone gets.
    // Past that, a COMMIT still at work is asked after (runTransaction). The statement timeout is
    // set back first only so that the write's, possibly a few milliseconds, cannot cancel the
    // COMMIT statement.
    const commit = writes.length === 0 ? statement('COMMIT', []) : { text: `SET LOCAL statement_timeout TO ${QUERY_TIMEOUT_MS}; COMMIT` };
    const committed = client.query(timed(commit, QUERY_TIMEOUT_MS + writeMs)) as Promise<pg.QueryResult | pg.QueryResult[]>;
    committed.catch(() => undefined);
    // From here a connection that fails or a timer that fires leaves the outcome to the database.
    const sentCommit = self;
    const unanswered = (cause: unknown): void => {
      if (sentCommit !== undefined && isAnswerLost(cause)) Object.assign(lost, { commit: { ...sentCommit, proof: options.committedIf?.() }, value });
    };
    await Promise.all(writes).catch((error: unknown) => {
      // What node-postgres threw (kept in `broken`), not the state error made of it.
      unanswered(broken);
      throw error;
    });
    try {
      const answer = await committed;
      // Never reached with the writes above all answered, unless the database disagrees.
      if ((Array.isArray(answer) ? answer.at(-1) : answer)?.command !== 'COMMIT') throw new StateUnavailableError(`the state database ${driver.location} rolled the transaction back at its commit`);
    } catch (cause) {
      broken = cause;
      unanswered(cause);
      throw driver.wrap(cause);
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
