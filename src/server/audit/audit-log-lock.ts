// One server per --audit-log file: two appenders interleave their lines, and each one's cut-back
// of a failed write (file-sink.ts) could cut the other's. The lock is SQLite's write lock on an
// empty file beside the log, FILE.lock, as named-lock.ts holds its edit locks: a POSIX lock, so it
// dies with its holder, SIGKILL included, and a restarted server takes it at once.
//
// It belongs to the path, not to the log's inode: logrotate's create mode moves the log away and
// makes a new one there, and a server started before the SIGHUP must still find the lock taken.
// Another spelling of the path (`./x`, a linked directory, another mount of it) reaches the same
// lock file; the log itself as a symbolic link is refused by the sink (O_NOFOLLOW). The lock file
// is never removed (a lock file deleted while another process has it open lets two holders in);
// if something moves or deletes it anyway (a logrotate pattern that matches it, a cleanup), the
// next SIGHUP, or the remaking of a deleted log, takes the one at the path again.
import { accessSync, closeSync, constants, lstatSync, openSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { RwsError } from '../../errors.js';
import { AuditLogInUseError } from '../state/state-errors.js';
import { describeHolders, lockHolders } from '../state/sqlite/lock-holders.js';
import { explainFileErrno } from '../system-errors.js';
import { modeText } from '../../local-file.js';

/**
 * How long a start waits on the lock. Taking SQLite's write lock passes through its shared lock:
 * two servers started at the same moment each held one and refused the other's write lock at
 * once (timeout 0), and both exited naming a holder that was gone. With a wait, one gives way
 * (SQLite drops its shared lock before it retries) and the other gets the lock.
 */
const START_WAIT_MS = 250;

export class AuditLogLock {
  private constructor(
    readonly lockFile: string,
    private readonly logFile: string,
    private readonly held: Stats,
    private readonly db: BetterSqlite3.Database,
  ) {}

  /** Throws AuditLogInUseError while another process holds it (after `waitMs` of SQLite's retries). */
  static take(logFile: string, waitMs = START_WAIT_MS): AuditLogLock {
    const lockFile = `${logFile}.lock`;
    const file = ensureLockFile(lockFile);
    // Loaded here, synchronously: a server without --audit-log, on PostgreSQL, never loads SQLite.
    const Sqlite = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;
    let db: BetterSqlite3.Database;
    try {
      db = new Sqlite(lockFile, { fileMustExist: true, timeout: waitMs });
    } catch (cause) {
      throw unusable(lockFile, cause);
    }
    try {
      // A journal file would be made beside the log while the lock is held, and left there by a SIGKILL.
      db.pragma('journal_mode = MEMORY');
      db.exec('BEGIN EXCLUSIVE');
    } catch (cause) {
      db.close();
      if ((cause as { code?: unknown }).code === 'SQLITE_BUSY') throw inUse(logFile, lockFile);
      throw cause instanceof RwsError ? cause : unusable(lockFile, cause);
    }
    return new AuditLogLock(lockFile, logFile, file, db);
  }

  /** The lock on the file at the lock's path now: this one, or that one (and this one is let go). */
  follow(): AuditLogLock {
    const now = lstatOrNothing(this.lockFile);
    if (now !== undefined && now.dev === this.held.dev && now.ino === this.held.ino) return this;
    // On a write's path too (a deleted log made again): a lock held elsewhere is refused without
    // blocking the thread, and the request is a 503 as any failed write is.
    const next = AuditLogLock.take(this.logFile, 0);
    this.release();
    return next;
  }

  release(): void {
    if (this.db.open) this.db.close();
  }
}

/** Made 0600 when missing; refused when it is not a regular file or others may open it. */
function ensureLockFile(lockFile: string): Stats {
  let stat = lstatOrNothing(lockFile);
  if (stat === undefined) {
    try {
      // Closed before SQLite opens it: closing any descriptor of a file drops this process's locks on it.
      closeSync(openSync(lockFile, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600));
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'EEXIST') throw cannotMake(lockFile, cause);
    }
    stat = lstatOrNothing(lockFile);
    if (stat === undefined) throw cannotMake(lockFile, Object.assign(new Error('gone'), { code: 'ENOENT' }));
  }
  if (!stat.isFile()) throw new RwsError('RWS_FILE_ACCESS', `the audit log's lock file ${lockFile} is not a regular file (a link is never followed)`, { hint: `move it away: it is made again, empty` });
  // Whoever may open it can hold a lock on it, and keep every server from starting.
  if ((stat.mode & 0o077) !== 0) throw new RwsError('RWS_FILE_ACCESS', `the audit log's lock file ${lockFile} is open to others (mode ${modeText(stat.mode)})`, { hint: `chmod 600 ${lockFile}` });
  // Its owner may always chmod it and open it, so another user's could be held by that user.
  const self = process.geteuid?.();
  if (self !== undefined && stat.uid !== self) {
    throw new RwsError('RWS_FILE_ACCESS', `the audit log's lock file ${lockFile} belongs to uid ${stat.uid}, not to the server's user (uid ${self})`, { hint: `chown ${self} ${lockFile} (it stays empty), or move it away: it is made again` });
  }
  // SQLite opens a file it may not write read-only, without a word (better-sqlite3's `readonly`
  // says only what was asked), and its BEGIN EXCLUSIVE then holds a read lock that a second
  // server shares: 0400 let two in.
  if ((stat.mode & 0o600) !== 0o600) throw new RwsError('RWS_FILE_ACCESS', `the audit log's lock file ${lockFile} is not readable and writable by its owner (mode ${modeText(stat.mode)})`, { hint: `chmod 600 ${lockFile}` });
  // Read-only for another reason than its mode, and so let two in alike: a read-only mount with
  // only the log made writable (systemd's ReadWritePaths= naming the file, a container's bind mount).
  try {
    accessSync(lockFile, constants.W_OK);
  } catch (cause) {
    throw cannotMake(lockFile, cause, 'written');
  }
  return stat;
}

/** "Stop the other one first" would not do for a holder already stopped: it must be continued or ended. */
function inUse(logFile: string, lockFile: string): AuditLogInUseError {
  const holders = lockHolders(lockFile);
  const stopped = holders.filter((holder) => holder.stopped === true).map((holder) => holder.pid);
  return new AuditLogInUseError(logFile, lockFile, describeHolders(holders, 'sharing this file'), stopped);
}

function lstatOrNothing(file: string): Stats | undefined {
  try {
    return lstatSync(file);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw cannotMake(file, cause);
  }
}

function cannotMake(lockFile: string, cause: unknown, verb: 'made' | 'written' = 'made'): RwsError {
  const { words, hint } = explainFileErrno(cause);
  const code = (cause as { code?: unknown }).code;
  // A log made by root in a directory the server may not write (/var/log): the lock file cannot be.
  // A log writable on a read-only mount (made so alone): the generic hint, to move the log, says not why.
  const next =
    code === 'EACCES' || code === 'EPERM'
      ? `let the user running secrets-server write its directory, or make it for that user: install -m 600 -o USER /dev/null ${lockFile}`
      : code === 'EROFS'
        ? `the lock lives beside the log: make ${dirname(lockFile)} writable for the server (systemd: ReadWritePaths= that directory, not the log alone), or give --audit-log a path on a writable file system`
        : hint;
  return new RwsError('RWS_FILE_ACCESS', `the audit log's lock file ${lockFile} cannot be ${verb}: ${words}`, { hint: next, cause });
}

/** SQLite's own refusal (not a database, an I/O error): by its code only. */
function unusable(lockFile: string, cause: unknown): RwsError {
  const code = (cause as { code?: unknown }).code;
  return new RwsError('RWS_FILE_ACCESS', `the audit log's lock file ${lockFile} cannot be used as a lock (${typeof code === 'string' ? code : 'error'})`, {
    hint: 'move it away (no server may run on this audit log meanwhile): it is made again, empty',
    cause,
  });
}
