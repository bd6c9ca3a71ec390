// What became of a transaction whose COMMIT was sent but never answered (our timer fired, or the
// connection was lost). PostgreSQL may still apply such a COMMIT: its deferred triggers, its WAL
// flush and its wait for a synchronous standby are not bounded by statement_timeout, and closing
// our connection does not stop them. Answering 503 "nothing was served" then would be false once
// the database applies it (a use charged, an audit row written). So the session that runs it is
// ended first, if it is still in that transaction (the transaction can then no longer go either
// way later), and the transaction's status is read: `aborted` is final; `committed` counts only
// with the transaction's own row found too. A transaction id is not proof enough: after a crash
// (commits whose WAL was not yet flushed are lost) or a failover (the new primary never saw them),
// the database gives the same id again, and another transaction's commit would pass for ours.
//
// Where synchronous standbys are configured, no session is ended: one waiting for a standby has
// its commit written here, and ending it would make the commit stand unreplicated, overriding
// what the operator asked of the database (no commit acknowledged before a standby has it). Its
// wait event alone cannot tell: a session still flushing its WAL, or between two waits, would
// take the signal as an end to the wait it is about to begin. Its status stays `in progress`
// until the standby answers: the outcome is unknown, and said so.
import type { Row } from '../sql/driver.js';
import type { SentCommit } from './transaction.js';

/**
 * How long in all the outcome is asked after (the caller's deadline for `ask`): a request whose
 * COMMIT went out just before the database hung answers this much later than the others.
 */
export const OUTCOME_WAIT_MS = 2_000;
const POLL_MS = 50;

/**
 * `ask` runs one statement on another connection of the pool, by a deadline. Undefined when the
 * outcome cannot be known in time: the database does not answer, or the status stays open.
 */
export async function commitOutcome(ask: (sql: string, params: readonly unknown[]) => Promise<Row[]>, sent: SentCommit): Promise<'committed' | 'aborted' | undefined> {
  // Only the session still in this very transaction: the pid alone may by now be another
  // session's, which must not be ended. Ending one of the same role needs no privilege; refused
  // (a pooler's other role), the status is still read, and may settle by itself.
  await ask(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND backend_xid = xid($2::xid8) AND current_setting('synchronous_standby_names') = ''",
    [sent.pid, sent.xid],
  ).catch(() => undefined);
  try {
    const until = Date.now() + OUTCOME_WAIT_MS;
    for (;;) {
      const status = (await ask('SELECT pg_xact_status($1::xid8) AS status', [sent.xid]))[0]?.status;
      if (status === 'aborted') return status;
      if (status === 'committed') {
        if (sent.proof === undefined) return undefined;
        if ((await ask(sent.proof.sql, sent.proof.params)).length > 0) return status;
      } else if (status !== 'in progress') return undefined;
      if (Date.now() >= until) return undefined;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } catch {
    // The database does not answer this either: the failure stands as it was.
    return undefined;
  }
}
