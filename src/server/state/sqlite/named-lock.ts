// The named locks of SQLite state (`sops:ENV`, held while a secrets file is rewritten): the write
// lock of a small SQLite file per name beside the state, `state-locks.sops-ENV.db`, so that an
// edit of one environment never waits for another's, and the state's own writers — the servers —
// stay free meanwhile. The lock dies with its holder (nothing is ever left behind); a holder that
// is stopped (SIGSTOP, a paused container) keeps it until it is continued or ends: a file lock
// cannot be taken from it, so the edit that waits says who it is.
//
// Releases before this one held the write lock of `state-locks.db` for every name. Each holder
// here also holds a read lock on that file for as long as it holds its own, so an edit by one of
// those (a server or a `secret set` not yet upgraded, on the same store) and an edit by this
// release still keep each other out; edits of this release do not exclude each other there.
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { ClosedBeforeLockError, LockBusyError } from '../state-errors.js';
import { type HeldLock, lockKey } from '../sql/driver.js';
import { ensurePrivateFile } from './private-file.js';

const LEGACY_LOCKS_FILE = 'state-locks.db';

export interface NamedLockDeps {
  /** The directory of the state database; the lock files live beside it. */
  dir: string;
  /** The state database, as errors name it. */
  location: string;
  Sqlite: typeof BetterSqlite3;
  busyTimeoutMs: number;
  /** How long one attempt may block this thread on another process's lock. */
  tryMs: number;
  /** True once the driver is closing: a server told to stop takes no lock and ends a wait. */
  closing(): boolean;
  /** A SQLite error other than SQLITE_BUSY on `file`, as the driver reports it. */
  wrap(cause: unknown, file: string): unknown;
}

/** `sops:production` → `state-locks.sops-production.db`; any other shape of name by its hash. */
function lockFileName(name: string): string {
  const readable = /^([a-z]+):([A-Za-z0-9][A-Za-z0-9_-]{0,63})$/.exec(name);
  return readable === null ? `state-locks.${lockKey(name).toString(16)}.db` : `state-locks.${readable[1]}-${readable[2]}.db`;
}

export async function takeNamedLock(deps: NamedLockDeps, name: string): Promise<HeldLock> {
  // Each edit queued behind another holder would otherwise keep a stopping server for its whole bound in turn.
  if (deps.closing()) throw new ClosedBeforeLockError(deps.location, name);
  const ownFile = path.join(deps.dir, lockFileName(name));
  const legacyFile = path.join(deps.dir, LEGACY_LOCKS_FILE);
  await ensurePrivateFile(ownFile);
  await ensurePrivateFile(legacyFile);
  const own = new deps.Sqlite(ownFile, { timeout: deps.tryMs });
  let legacy: BetterSqlite3.Database;
  try {
    legacy = new deps.Sqlite(legacyFile, { timeout: deps.tryMs });
  } catch (cause) {
    own.close();
    throw deps.wrap(cause, legacyFile);
  }
  const closeBoth = (): void => {
    if (own.inTransaction) own.exec('ROLLBACK');
    if (legacy.inTransaction) legacy.exec('ROLLBACK');
    own.close();
    legacy.close();
  };
  const deadline = Date.now() + deps.busyTimeoutMs;
  let ownHeld = false;
  for (let pause = 1; ; pause = Math.min(pause * 2, 25)) {
    if (deps.closing()) {
      closeBoth();
      throw new ClosedBeforeLockError(deps.location, name);
    }
    try {
      if (!ownHeld) {
        own.exec('BEGIN EXCLUSIVE');
        ownHeld = true;
      }
      // A read transaction keeps its read lock until it ends: no writer of that file gets in meanwhile.
      legacy.exec('BEGIN');
      legacy.prepare('SELECT count(*) FROM sqlite_master').get();
      break;
    } catch (cause) {
      if (legacy.inTransaction) legacy.exec('ROLLBACK');
      const busy = sqliteCode(cause) === 'SQLITE_BUSY';
      if (!busy || Date.now() >= deadline) {
        closeBoth();
        throw busy ? await lockBusy(deps, name, ownHeld ? legacyFile : ownFile) : deps.wrap(cause, ownHeld ? legacyFile : ownFile);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
  return {
    // The handles are this process's own: the lock ends only with release or with the process.
    check: async () => undefined,
    release: async () => closeBoth(),
  };
}

async function lockBusy(deps: NamedLockDeps, name: string, file: string): Promise<LockBusyError> {
  const { describeHolders, lockHolders } = await import('./lock-holders.js');
  const holders = lockHolders(file);
  const stopped = holders.filter((holder) => holder.stopped === true).map((holder) => holder.pid);
  const hint =
    stopped.length > 0
      ? `a stopped process keeps the lock until it is continued or ends: continue it (kill -CONT ${stopped.join(' ')}) or end it, then try again`
      : 'let it finish (a large import takes a while) and try again; if it never ends, stop it';
  return new LockBusyError(name, describeHolders(holders) ?? `another process (${path.basename(file)}'s lock)`, Math.round(deps.busyTimeoutMs / 1000), hint);
}

function sqliteCode(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'error';
}
