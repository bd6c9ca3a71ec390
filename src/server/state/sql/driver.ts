// The little the state model needs from a database: queries, write transactions, and named
// locks that die with the process. Queries are written once, in PostgreSQL's `$1` style; the
// SQLite driver rewrites the placeholders (better-sqlite3 binds `?` positionally).

export type Row = Record<string, unknown>;

export interface Queryable {
  query<T extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<T[]>;
}

export interface Transaction extends Queryable {
  /** Holds `name` until the transaction ends (PostgreSQL: an advisory lock; SQLite's write lock already covers it). */
  lock(name: string): Promise<void>;
  /**
   * `lock(name)`, then `sql` (no parameters) seeing everything committed before the lock was
   * granted; one round trip where the database allows.
   */
  lockThen<T extends Row = Row>(name: string, sql: string): Promise<T[]>;
  /**
   * A statement whose answer nothing in the transaction needs: sent now, and where the database
   * allows, its answer is awaited with the COMMIT's (one round trip for both). If it fails, the
   * transaction fails and nothing of it is committed.
   */
  write(sql: string, params?: readonly unknown[]): void;
}

export interface SqlDriver extends Queryable {
  readonly dialect: 'sqlite' | 'postgres';
  /** For output: a path, or a URL without its password. */
  readonly location: string;
  /**
   * Runs `fn` in one write transaction; commits if it resolves, rolls back if it throws. A
   * `durable` commit is on stable storage before this resolves (it survives a power loss); any
   * other survives a crash of this process and reaches the disk with the next durable commit.
   */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * How long a group commit may take from when a request asks for it (its wait for its turn
   * included); `deadline` (epoch ms) then bounds the transaction's statements. Undefined where
   * the driver bounds its own waits (SQLite's write lock).
   */
  readonly commitWaitMs?: number;
  /**
   * Holds `name` against every other process until `release`, or until this process dies; with
   * PostgreSQL, also until this process stalls (stopped, paused) for over 10 s. Fails with
   * `StateUnavailableError` when another holder keeps it past the wait (PostgreSQL: 15 s, naming it).
   */
  lock(name: string): Promise<HeldLock>;
  /**
   * Throws `StateReplacedError` when the database open here is no longer the one at its location
   * (SQLite: the file deleted, replaced or truncated), and from then on so does every call. A
   * server database has no such case.
   */
  checkStorage?(): Promise<void>;
  close(): Promise<void>;
}

export interface TransactionOptions {
  durable?: boolean;
  /** Epoch ms: statements are bounded by it, and the COMMIT is not sent past it. */
  deadline?: number;
  /**
   * The BEGIN goes out with the first statements instead of a round trip of its own (PostgreSQL).
   * Should it fail, what was sent before its answer came runs outside any transaction: only for a
   * transaction whose statements sent before it awaits its first answer are reads, or writes that
   * check IN_TRANSACTION. Every answer is then withheld until the BEGIN's, and its error thrown.
   */
  pipelined?: boolean;
  /**
   * A statement that returns a row only if this transaction committed: its own last audit row,
   * by seq and hash. Asked (PostgreSQL) after a COMMIT whose answer was lost, once the database
   * says the transaction's id committed: after a crash or a failover the id may have been given
   * to another transaction. Without it, such a transaction is reported failed, as before.
   */
  committedIf?: () => { sql: string; params: readonly unknown[] } | undefined;
}

/**
 * True only inside a transaction that this driver began (PostgreSQL): a write sent behind a
 * pipelined BEGIN that failed would otherwise commit on its own, outside the batch and its audit.
 */
export const IN_TRANSACTION = "COALESCE(current_setting('rws.in_transaction', true), '') = 'on'";

/** A named lock while it is held. */
export interface HeldLock {
  /**
   * Throws `StateUnavailableError` if the lock is no longer held: PostgreSQL releases an
   * advisory lock when its session ends (a restart, a failover, `pg_terminate_backend`, or the
   * holder idle past the bound because it was stopped), and another process may hold it now.
   */
  check(): Promise<void>;
  release(): Promise<void>;
}

/** `$1 … $n` to `?` with the parameters reordered to match, for drivers that bind positionally. */
export function positional(sql: string, params: readonly unknown[]): { sql: string; params: unknown[] } {
  const ordered: unknown[] = [];
  const text = sql.replace(/\$(\d+)/g, (_, index: string) => {
    ordered.push(params[Number(index) - 1]);
    return '?';
  });
  return { sql: text, params: ordered };
}

/** A 63-bit lock key for a name: the same in every process and replica. */
export function lockKey(name: string): bigint {
  let hash = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(name, 'utf8')) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return hash & 0x7fffffffffffffffn;
}
