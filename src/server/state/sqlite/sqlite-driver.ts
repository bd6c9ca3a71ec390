// SQLite through better-sqlite3: one file in the store directory (0600), WAL so readers never
// wait for the writer. A durable commit runs with `synchronous = FULL` (the WAL is fsynced before
// it resolves, and with it every commit before it); other commits with `NORMAL` (written to the
// WAL, safe against a crash of the process, synced by the next durable commit or checkpoint): an
// fsync costs milliseconds here, and the thread waits for it. Two connections: writes go through one (`BEGIN IMMEDIATE` takes SQLite's write lock
// at once, which is what serialises processes and makes counts exact), reads through the other,
// so a read never sees a transaction still open on this process's writer.
//
// better-sqlite3 is synchronous: a transaction's statements run without yielding. Waiting for
// another process's write lock must not freeze the event loop, so `BEGIN IMMEDIATE` is tried with
// a short busy timeout and retried from timers until the deadline; once begun, a transaction is
// short (a batch of one event-loop turn).
import { existsSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { StateReplacedError, StateUnavailableError } from '../state-errors.js';
import { takeNamedLock } from './named-lock.js';
import { ensurePrivateFile } from './private-file.js';
import { explainSqliteError } from './sqlite-errors.js';
import { otherOwner } from '../../store/owner.js';
import { describeChange, type FileIdentity, FileProbe } from './file-identity.js';
import { type HeldLock, positional, type Row, type SqlDriver, type Transaction } from '../sql/driver.js';

type Database = BetterSqlite3.Database;

export interface SqliteOptions {
  /** How long a writer waits for another process's write lock, in ms. */
  busyTimeoutMs?: number;
  /** A serving process: WAL checkpoints run on a thread of their own (checkpointer.ts). */
  backgroundCheckpoints?: boolean;
}

export async function openSqlite(file: string, options: SqliteOptions = {}): Promise<SqlDriver> {
  const identity = await ensurePrivateFile(file);
  // Opened before SQLite's connections and closed after them (file-identity.ts says why).
  let probe: FileProbe;
  try {
    probe = await FileProbe.open(file, identity);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? 'error';
    // Another user's state.db (a command run as root made it): say whose, and the chown.
    const other = code === 'EACCES' || code === 'EPERM' ? await otherOwner(file) : undefined;
    if (other !== undefined) throw new StateUnavailableError(`cannot open the state database ${file}: permission denied (${code})${other.whose}`, cause, other.hint);
    throw new StateUnavailableError(`cannot open the state database ${file}: ${code}`, cause);
  }
  const { default: Sqlite } = await import('better-sqlite3');
  const open = (timeout: number): Database => {
    const db = new Sqlite(file, { timeout });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    // Temporary tables (RETURNING's, a GROUP BY's) in memory, never in a file under the temp
    // directory: audit rows stay out of /var/tmp, and an UPDATE … RETURNING, which every charged
    // use runs, costs about 5 µs instead of 16 (with a temp file, strace shows the heap grown and
    // trimmed again on every statement). Queries that need them are bounded (LIMIT, per-minute groups).
    db.pragma('temp_store = MEMORY');
    return db;
  };
  const busyTimeoutMs = options.busyTimeoutMs ?? 10_000;
  // Processes starting together on a new file race to switch it to WAL: wait for each other.
  let writer: Database | undefined;
  let reader: Database;
  try {
    writer = await retryWhileBusy(() => open(BLOCKING_WAIT_MS), busyTimeoutMs, file);
    reader = await retryWhileBusy(() => open(1_000), busyTimeoutMs, file);
  } catch (error) {
    writer?.close();
    await probe.close();
    throw error;
  }
  const pageSize = Number(writer.pragma('page_size', { simple: true }));
  const driver = new SqliteDriver(file, writer, reader, busyTimeoutMs, Sqlite, identity, pageSize, probe);
  if (options.backgroundCheckpoints === true) await driver.startCheckpointer();
  // The connections opened the path after it was checked: had it been swapped meanwhile, they
  // would hold another file than the one whose identity is kept.
  const moved = await describeChange(file, identity, pageSize, probe).catch(() => undefined);
  if (moved === 'deleted' || moved === 'replaced') {
    await driver.close();
    throw new StateUnavailableError(`the state database ${file} was ${moved} while it was being opened`);
  }
  return driver;
}

/** The WAL file is cut back to this after it restarts (the checkpointer restarts it past 16 MiB). */
const WAL_SIZE_LIMIT = 16 * 1024 * 1024;
/** SQLite's own default, restored should the checkpointer stop. */
const AUTO_CHECKPOINT_PAGES = 1000;

async function retryWhileBusy<T>(attempt: () => T, timeoutMs: number, file: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let pause = 1; ; pause = Math.min(pause * 2, 25)) {
    try {
      return attempt();
    } catch (cause) {
      const code = sqliteCode(cause);
      if (!code.startsWith('SQLITE_BUSY') || Date.now() >= deadline) {
        const explained = explainSqliteError(cause, file, 'opened');
        throw explained instanceof StateUnavailableError ? explained : new StateUnavailableError(`cannot open the state database ${file}: ${code}`, cause);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

/** How long one attempt may block this thread on another process's lock. */
const BLOCKING_WAIT_MS = 5;

function sqliteCode(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'error';
}

class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite';
  readonly #statements = new Map<Database, Map<string, { statement: BetterSqlite3.Statement; order: number[] }>>();
  #durable = false;
  #queue: Promise<unknown> = Promise.resolve();
  #checkpointer: Worker | undefined;
  #closing = false;
  /** Set once the open file is found not to be the one at the path (or malformed): every later call fails with it. */
  #lost: StateReplacedError | undefined;

  constructor(
    readonly location: string,
    private readonly writer: Database,
    private readonly reader: Database,
    private readonly busyTimeoutMs: number,
    private readonly Sqlite: typeof BetterSqlite3,
    private readonly identity: FileIdentity,
    private readonly pageSize: number,
    private readonly probe: FileProbe,
  ) {}

  #run<T>(db: Database, sql: string, params: readonly unknown[]): T[] {
    if (this.#lost) throw this.#lost;
    let cache = this.#statements.get(db);
    if (cache === undefined) this.#statements.set(db, (cache = new Map()));
    // Prepared once per query text (the audit insert has one text per batch size, up to 500).
    let prepared = cache.get(sql);
    if (prepared === undefined) {
      const converted = positional(sql, params.map((_, index) => index));
      prepared = { statement: db.prepare(converted.sql), order: converted.params as number[] };
      if (cache.size < 1_000) cache.set(sql, prepared);
    }
    const { statement, order } = prepared;
    const bound: unknown[] = new Array(order.length);
    for (let i = 0; i < order.length; i++) bound[i] = toSqlite(params[order[i] as number]);
    try {
      // An array binds as the list of positional parameters (no spread of up to 2,800 arguments).
      return (statement.reader ? statement.all(bound) : (statement.run(bound), [])) as T[];
    } catch (cause) {
      throw this.#wrap(cause);
    }
  }

  async query<T extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    if (/^\s*SELECT\b/i.test(sql)) return this.#run<T>(this.reader, sql, params);
    // A write outside a transaction still waits its turn on the writer.
    return this.transaction((tx) => tx.query<T>(sql, params));
  }

  transaction<T>(fn: (tx: Transaction) => Promise<T>, options: { durable?: boolean } = {}): Promise<T> {
    // One transaction at a time on the writer; the next waits for this one to end. The wait for
    // the write lock counts from here, not from this transaction's turn: while another process
    // holds the lock, each queued transaction fails by its own deadline instead of each waiting
    // the whole timeout after the one before it (requests answered minutes late).
    const deadline = Date.now() + this.busyTimeoutMs;
    const result = this.#queue.then(() => this.#transaction(fn, options.durable ?? true, deadline));
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async #transaction<T>(fn: (tx: Transaction) => Promise<T>, durable: boolean, deadline: number): Promise<T> {
    // Transactions queued before the file was found replaced must not write to it either.
    if (this.#lost) throw this.#lost;
    if (durable !== this.#durable) {
      this.writer.pragma(`synchronous = ${durable ? 'FULL' : 'NORMAL'}`);
      this.#durable = durable;
    }
    const tx: Transaction = {
      query: async <R extends Row = Row>(sql: string, params: readonly unknown[] = []) => this.#run<R>(this.writer, sql, params),
      lock: async () => undefined,
      lockThen: async <R extends Row = Row>(_name: string, sql: string) => this.#run<R>(this.writer, sql, []),
      // Synchronous: a failure throws here, inside the transaction's function.
      write: (sql: string, params: readonly unknown[] = []) => void this.#run(this.writer, sql, params),
    };
    await this.#begin(deadline);
    try {
      const value = await fn(tx);
      this.#exec('COMMIT');
      return value;
    } catch (error) {
      if (this.writer.inTransaction) this.writer.exec('ROLLBACK');
      throw error;
    }
  }

  async #begin(deadline: number): Promise<void> {
    for (let pause = 1; ; pause = Math.min(pause * 2, 25)) {
      try {
        this.writer.exec('BEGIN IMMEDIATE');
        return;
      } catch (cause) {
        if (sqliteCode(cause) !== 'SQLITE_BUSY' || Date.now() >= deadline) throw this.#wrap(cause);
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }

  #exec(sql: string): void {
    try {
      this.writer.exec(sql);
    } catch (cause) {
      throw this.#wrap(cause);
    }
  }

  /**
   * Checks that the file open here is still the one at the path, and whole. Costs an lstat and a
   * 16-byte read, so it runs from the rollback guard's once-a-second check, never
   * per request. Once it fails, it fails for good: reopening is the restart's job (README).
   */
  async checkStorage(): Promise<void> {
    if (this.#lost) throw this.#lost;
    const how = await describeChange(this.location, this.identity, this.pageSize, this.probe);
    if (how !== undefined) this.#lost ??= new StateReplacedError(this.location, how);
    if (this.#lost) throw this.#lost;
  }

  /** SQLite's own codes for a file that is not (or no longer) a whole database count as a replaced file. */
  #wrap(cause: unknown): unknown {
    const code = sqliteCode(cause);
    if (code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB')) {
      this.#lost ??= new StateReplacedError(this.location, `found malformed (${code})`);
      return this.#lost;
    }
    return explainSqliteError(cause, this.location);
  }

  lock(name: string): Promise<HeldLock> {
    return takeNamedLock(
      { dir: path.dirname(this.location), location: this.location, Sqlite: this.Sqlite, busyTimeoutMs: this.busyTimeoutMs, tryMs: BLOCKING_WAIT_MS, closing: () => this.#closing, wrap: explainSqliteError },
      name,
    );
  }

  /**
   * Moves checkpoints off the event loop (see checkpointer.ts). Where the worker cannot run (this
   * module loaded from source by the tests, a thread that fails to start), SQLite keeps
   * checkpointing inside commits, as it does for the admin commands: slower, never unsafe.
   */
  async startCheckpointer(): Promise<void> {
    const script = new URL('./checkpointer.js', import.meta.url);
    if (!existsSync(script)) return;
    const { Worker } = await import('node:worker_threads');
    const worker = new Worker(script, { workerData: { file: this.location } });
    const ready = await new Promise<boolean>((resolve) => {
      worker.once('message', (message: { kind?: unknown } | undefined) => resolve(message?.kind === 'ready'));
      worker.once('error', () => resolve(false));
      worker.once('exit', () => resolve(false));
    });
    if (!ready) {
      await worker.terminate();
      return;
    }
    this.writer.pragma('wal_autocheckpoint = 0');
    this.writer.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
    // Should the thread die, the commits take checkpointing back: the WAL never grows unchecked.
    worker.on('error', () => undefined);
    worker.once('exit', () => {
      this.#checkpointer = undefined;
      if (!this.#closing) this.writer.pragma(`wal_autocheckpoint = ${AUTO_CHECKPOINT_PAGES}`);
    });
    worker.unref();
    this.#checkpointer = worker;
  }

  async close(): Promise<void> {
    await this.#queue;
    this.#closing = true;
    const worker = this.#checkpointer;
    if (worker !== undefined) {
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.postMessage('stop');
      const timer = setTimeout(() => void worker.terminate(), 5_000);
      await exited;
      clearTimeout(timer);
    }
    this.writer.close();
    this.reader.close();
    await this.probe.close();
  }
}

/** Booleans and bigints as SQLite stores them; everything else as it is. */
function toSqlite(value: unknown): unknown {
  if (typeof value === 'boolean') return value ? 1 : 0;
  return value === undefined ? null : value;
}

