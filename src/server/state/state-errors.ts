import { RwsError } from '../../errors.js';
import { printable } from '../../printable.js';

/** The state database could not be reached or written; nothing was changed by the request. */
export class StateUnavailableError extends RwsError {
  constructor(message: string, cause?: unknown, hint = 'check that the state database is reachable and writable: for SQLite, the file, its permissions and its disk (full, read-only); for PostgreSQL, the database URL, and that the server is up') {
    super('RWS_STATE_UNAVAILABLE', message, { cause, hint });
  }
}

/**
 * A commit was sent and the database's answer never came, nor could it be told afterwards
 * whether it applied (PostgreSQL: commit-outcome.ts). Nothing was served; the request's use and
 * its audit row may yet be in the database.
 */
export class CommitUnknownError extends StateUnavailableError {
  constructor(location: string, cause?: unknown) {
    super(
      `the state database ${location} did not answer a commit, and whether it applied could not be told (it may be waiting for a synchronous standby)`,
      cause,
      'whether it applied shows later in the audit trail (secrets-server audit --limit 5), though a secrets file edit was not made either way; a synchronous standby that is down holds every commit until it is back or synchronous_standby_names is changed',
    );
  }
}

/** The extra audit file sink could not be written; the transaction is rolled back. */
export class AuditSinkError extends RwsError {
  constructor(message: string, cause?: unknown, hint = 'check the --audit-log file and its filesystem') {
    super('RWS_AUDIT_UNAVAILABLE', message, { cause, hint });
  }
}

/**
 * Another server already writes this --audit-log file (it holds the lock beside it): two writers
 * would interleave their lines, and each one's cut-back of a failed write could cut the other's.
 */
export class AuditLogInUseError extends RwsError {
  /** `stopped`: the holders' pids that are stopped (SIGSTOP, a paused container), which keep it as long. */
  constructor(file: string, lockFile: string, holder: string | undefined, stopped: readonly number[] = []) {
    super('RWS_AUDIT_LOG_IN_USE', `the audit log ${file} is written by another server: ${holder ?? 'another process'} holds its lock ${lockFile}`, {
      hint:
        stopped.length > 0
          ? `one file per server: give this one an --audit-log of its own; a stopped process keeps the lock until it is continued or ends: continue it (kill -CONT ${stopped.join(' ')}) or end it first`
          : 'one file per server: give this one an --audit-log of its own, or stop the other one first',
    });
  }
}

/**
 * The database refused a value as data (PostgreSQL's class 22: a NUL in text, a number out of
 * range). The database answered, so it is not unavailable; a value slipped past the checks that
 * should have refused it first. Its message names the SQLSTATE, never the value.
 */
export class StateDataError extends RwsError {
  constructor(sqlState: string, cause?: unknown) {
    super('RWS_STATE_INVALID', `the state database refused a value as invalid (SQLSTATE ${sqlState}); nothing was changed`, {
      cause,
      hint: 'a value secrets-server should have refused first: please report it with the command line, not the secrets',
    });
  }
}

/**
 * A row holds what secrets-server never writes (edited by hand, or damaged): the request or
 * command that reads it is refused, never given a guess. The message names the table, the row
 * and the column, never the value, so a server may log it as it is.
 */
export class DamagedRowError extends RwsError {
  constructor(table: string, row: string, problem: string) {
    super('RWS_STATE_INVALID', `the ${table} row ${row} of the state database is damaged: ${problem}`, {
      hint: 'it was edited by hand or damaged: fix the row (or restore the database from a backup); secrets-server audit verify names a damaged audit row',
    });
  }
}

/**
 * An API key's row does not carry the MAC of its grants (grant-seal.ts): a column the server never
 * changes was changed outside it, the row was inserted by hand, or it is damaged. The key is
 * refused as an unknown key (the client learns nothing of why); this is what the server logs,
 * once per key, naming its id and never its hash or MAC.
 */
export class KeyGrantsAlteredError extends RwsError {
  constructor(readonly keyId: string) {
    super('RWS_STATE_INVALID', `the api_keys row ${printable(keyId.slice(0, 64))} of the state database does not match its grant MAC (changed outside secrets-server, or damaged); the key is refused as unknown`, {
      hint: 'revoke it (secrets-server apikey revoke ID), make a new key if it is still needed, and find out who else can write the state database',
    });
  }
}

/**
 * A table or column secrets-server made is gone (dropped or renamed by hand, a partial restore):
 * both drivers pass such an error on as it is (it is no outage), and it was reported as
 * `RWS_INTERNAL: internal error (SqliteError SQLITE_ERROR)`. Only the name the database quotes
 * is kept, and only when it reads as an identifier.
 */
export function explainMissingSchema(error: unknown): RwsError | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  const message = error instanceof Error ? error.message : '';
  const sqlite = code === 'SQLITE_ERROR' ? /no such (table|column): ([^\s]+)|has no column named ([^\s]+)/.exec(message) : null;
  const postgres = code === '42P01' || code === '42703' ? /"([^"]+)"/.exec(message) : null;
  if (sqlite === null && postgres === null) return undefined;
  const kind = sqlite !== null ? (sqlite[1] ?? 'column') : code === '42P01' ? 'table' : 'column';
  const name = sqlite !== null ? (sqlite[2] ?? sqlite[3]) : postgres?.[1];
  const named = name !== undefined && /^[A-Za-z_][A-Za-z0-9_.]{0,63}$/.test(name) ? ` ${name}` : '';
  return new RwsError('RWS_STATE_INVALID', `the state database has no ${kind}${named} that secrets-server made (dropped or renamed by hand, or restored in part); nothing was changed`, {
    cause: error,
    hint: 'restore the database from a backup; secrets-server db status shows its schema version',
  });
}

/** Migrating found tables (or columns) of the same names that secrets-server did not make. */
export class ForeignSchemaError extends RwsError {
  constructor(location: string, cause?: unknown) {
    super('RWS_STATE_INVALID', `the state database ${location} holds tables not made by secrets-server (a table such as api_keys exists with another shape); nothing was changed`, {
      cause,
      hint: 'give secrets-server an empty database of its own (CREATE DATABASE rws), not one another application uses',
    });
  }
}

/**
 * The SQLite file this process has open is no longer the one at its path: deleted, replaced
 * (a backup renamed over it) or truncated while the server ran. Serving on from the open file
 * would answer from, and record into, a database nobody else sees, so every later use of the
 * state fails with this, until the server is restarted and opens what is at the path now.
 */
export class StateReplacedError extends StateUnavailableError {
  constructor(
    readonly file: string,
    readonly how: string,
  ) {
    super(
      `the state database ${file} was ${how} while this server had it open; every request is refused until the server is restarted`,
      undefined,
      'restart the server: it then opens the file now at that path (see README, Tokens fail closed)',
    );
  }
}

/**
 * The SQLite file `audit --follow` reads was deleted, replaced or truncated: the rows written at
 * the path from then on are in another file, which this process would never see. It ends, as a
 * server refuses, rather than print nothing more without a word.
 */
export class FollowedStateReplacedError extends StateUnavailableError {
  constructor(replaced: StateReplacedError, lastSeq: number) {
    super(
      `the state database ${replaced.file} was ${replaced.how} while audit --follow read it; the last row printed is seq ${lastSeq}`,
      undefined,
      'start audit --follow again (with --limit to cover the rows since): it reads the database now at that path',
    );
  }
}

/**
 * A commit found the audit chain shorter than (or different at) the newest row this process
 * had committed or seen: the database went back in time (a backup restored in place). The
 * commit is refused, so nothing is served from the restored state before the rollback guard
 * has revoked what it must.
 */
export class StateWentBackError extends StateUnavailableError {
  constructor(seen: number, found: number) {
    super(`the state database went back in time (audit row ${found}, this server had seen ${seen}); the request was not served`);
  }
}

/**
 * An edit waited its whole bound for a named lock another holder kept. With PostgreSQL a holder
 * that stalls loses its lock well within that bound (the database ends its session), so one still
 * held is working, or is not one of ours; a SQLite file lock stays with a stopped process. Either
 * way the message names the holder as the driver finds it.
 */
export class LockBusyError extends StateUnavailableError {
  constructor(name: string, holder: string, waitedSeconds: number, hint: string) {
    super(`the lock ${name} is held by ${holder}; waited ${waitedSeconds} s, nothing was changed`, undefined, hint);
  }
}

/** The driver was closed (a server told to stop) before a named lock was held: the edit did nothing. */
export class ClosedBeforeLockError extends StateUnavailableError {
  constructor(location: string, name: string) {
    super(`the state database ${location} was closed (the server is stopping) before the lock ${name} was held; nothing was changed`);
  }
}
