// The optional `--audit-log FILE`: the audit rows again, as JSON lines, for log shippers. Lines
// are written inside the transaction that stores the rows (a failed write rolls it back and the
// request gets a 503; a failed commit takes the lines back), in one write per batch, and never
// torn: a short write (a full disk) is cut back to the last whole line. SIGHUP reopens the file,
// so logrotate can move it away; a file deleted meanwhile is made again at the next row. An
// existing file others can read is refused, at start and at a reopen. One server per file: the
// cut-back assumes no other writer appends at the same time, so a regular file is locked
// (audit-log-lock.ts) and a second server is refused at start. Another process may truncate it
// (logrotate's copytruncate): O_APPEND carries on at the new end, and a cut-back never extends
// the file (ftruncate to a size past its end pads it with zeros).
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, openSync, type Stats, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { RwsError } from '../../errors.js';
import { AuditSinkError } from '../state/state-errors.js';
import { explainFileErrno, explainSystemError } from '../system-errors.js';
import { AuditLogLock } from './audit-log-lock.js';
import { auditJson, type StoredAuditRow } from './record.js';

const FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;

export class AuditFileSink {
  #fd: number;
  #lock: AuditLogLock | undefined;

  private constructor(
    readonly file: string,
    fd: number,
    lock: AuditLogLock | undefined,
  ) {
    this.#fd = fd;
    this.#lock = lock;
  }

  static open(file: string): AuditFileSink {
    const fd = openSink(file);
    try {
      return new AuditFileSink(file, fd, lockIfRegular(file, fd, undefined));
    } catch (error) {
      closeQuietly(fd);
      throw error;
    }
  }

  /** Appends the rows; returns how to take them back (if the transaction they belong to fails). */
  write(rows: readonly StoredAuditRow[]): () => void {
    const data = Buffer.from(rows.map((row) => `${auditJson(row)}\n`).join(''), 'utf8');
    let before = 0;
    let written = 0;
    try {
      before = this.#statReopenedIfDeleted().size;
      while (written < data.length) written += writeSync(this.#fd, data, written);
    } catch (cause) {
      if (cause instanceof AuditSinkError) throw cause;
      // From the first write to here nothing else of ours ran, so the bytes written are the
      // file's last ones, wherever a truncation between the stat and the write put them.
      cutTail(this.#fd, written);
      const { words, hint } = explainFileErrno(cause);
      throw new AuditSinkError(`the audit log ${this.file} could not be written: ${words}`, cause, hint);
    }
    const fd = this.#fd;
    const end = before + data.length;
    return () => {
      // After a SIGHUP the old descriptor is closed and its number may belong to another file.
      if (fd !== this.#fd) return;
      // Only while the lines are still the file's end. A copytruncate since (the commit waited on
      // the database) left them in the rotated copy, beyond taking back, and cutting to `before`
      // would pad the emptied file with zeros; rows appended after them are not ours to cut.
      cutTail(fd, data.length, end);
    };
  }

  /**
   * The file's stat, for the cut-back. A file deleted under the server (`rm audit.log` to free
   * space, a rotation that removed it with no SIGHUP) took every later row with it, each answered
   * as recorded: it is made again at its path before the rows are written; a failure to is a
   * failed write (503), never a lost row.
   */
  #statReopenedIfDeleted(): Stats {
    const stat = fstatSync(this.#fd);
    if (!stat.isFile() || stat.nlink > 0) return stat;
    try {
      this.reopen();
    } catch (cause) {
      throw cannotRemake(this.file, cause);
    }
    return fstatSync(this.#fd);
  }

  /** After logrotate moved the file: continue in a new one at the same path. */
  reopen(): void {
    const fd = openSink(this.file);
    let lock: AuditLogLock | undefined;
    try {
      lock = lockIfRegular(this.file, fd, this.#lock);
    } catch (error) {
      closeQuietly(fd);
      throw error;
    }
    const old = this.#fd;
    this.#fd = fd;
    this.#lock = lock;
    closeQuietly(old);
  }

  close(): void {
    try {
      fsyncSync(this.#fd);
    } catch {
      // e.g. EINVAL on /dev/full: nothing was buffered by us anyway
    }
    closeQuietly(this.#fd);
    this.#lock?.release();
  }
}

/**
 * A regular file is locked, and its lock followed to the file at the lock's path now (moved or
 * deleted since). A device or a pipe is not: /dev is no place for a lock file (/dev/null, /dev/full
 * are shared by design), and a pipe's writers are its reader's business.
 */
function lockIfRegular(file: string, fd: number, held: AuditLogLock | undefined): AuditLogLock | undefined {
  if (!fstatSync(fd).isFile()) return held;
  return held?.follow() ?? AuditLogLock.take(file);
}

/** Said in the server's log (once per outage): the path once, the errno in words, what to do. */
function cannotRemake(file: string, cause: unknown): AuditSinkError {
  // explainSystemError's error keeps the errno as its cause; a refusal of ours (others can read
  // the file, a pipe without a reader) has none and says it all itself.
  const errno = cause instanceof RwsError ? cause.cause : cause;
  const code = (errno as { code?: unknown } | undefined)?.code;
  if (cause instanceof RwsError && typeof code !== 'string') return new AuditSinkError(`the audit log ${file} was deleted and could not be made again: ${cause.message}`, cause, cause.hint);
  const { words, hint } = explainFileErrno(errno);
  // Its directory removed (a cleanup of the log directory): "check that the path exists" said too little.
  const next = code === 'ENOENT' ? `its directory ${dirname(file)} is gone: make it again; requests are refused (503) until then` : hint;
  return new AuditSinkError(`the audit log ${file} was deleted and could not be made again: ${words}`, cause, next);
}

function openSink(file: string): number {
  let fd = openOrExplain(file, FLAGS | constants.O_NONBLOCK);
  refuseIfShared(file, fd);
  if (fstatSync(fd).isFIFO()) {
    // O_NONBLOCK: a pipe with no reader is refused (ENXIO) instead of blocking the server's one
    // thread in open(2) until a shipper comes, signals included. With a reader there, the pipe is
    // opened again without it, so that a write waits for room rather than tearing a line.
    const blocking = openOrExplain(file, FLAGS);
    closeQuietly(fd);
    fd = blocking;
  }
  return fd;
}

function openOrExplain(file: string, flags: number): number {
  try {
    return openSync(file, flags, 0o600);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENXIO') {
      throw new RwsError('RWS_FILE_ACCESS', `the audit log ${file} is a pipe no process reads (ENXIO)`, { hint: 'start the log shipper that reads the pipe first, or give --audit-log a regular file' });
    }
    // A read-only file system, a missing directory…: said with the path and a hint, as at start-up.
    throw explainSystemError(cause) ?? new AuditSinkError(`cannot open the audit log ${file} (${(cause as NodeJS.ErrnoException).code ?? 'error'})`, cause);
  }
}

/**
 * The lines name keys, subjects, environments, secret names and client addresses, so a file others
 * can read is refused as the store's files are (made here it is 0600). Changing its mode ourselves
 * would quietly cut off whoever it was opened to: better the operator decides. Only a regular
 * file: a device or a pipe to a shipper is chosen for what it is, not for data at rest.
 */
function refuseIfShared(file: string, fd: number): void {
  const stat = fstatSync(fd);
  if (!stat.isFile() || (stat.mode & 0o077) === 0) return;
  closeQuietly(fd);
  throw new RwsError('RWS_FILE_ACCESS', `the audit log ${file} is readable by others (mode ${(stat.mode & 0o777).toString(8)})`, {
    hint: `chmod 600 ${file}; with logrotate, create 0600`,
  });
}

/** Cuts `bytes` off the end of a regular file: only when it is `end` bytes long, if given; never below 0. */
function cutTail(fd: number, bytes: number, end?: number): void {
  if (bytes === 0) return;
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile() || (end !== undefined && stat.size !== end)) return;
    ftruncateSync(fd, Math.max(0, stat.size - bytes));
  } catch {
    // Closed meanwhile, or a file that cannot be cut back: it holds no torn line of ours either.
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
