// The optional `--audit-log FILE`: the audit rows again, as JSON lines, for log shippers. Lines
// are written inside the transaction that stores the rows (a failed write rolls it back and the
// request gets a 503; a failed commit takes the lines back), in one write per batch, and never
// torn: a short write (a full disk) is cut back to the last whole line. SIGHUP reopens the file, so logrotate can move it away. One
// server per file: the cut-back assumes no other writer appends at the same time.
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { AuditSinkError } from '../state/state-errors.js';
import { explainSystemError } from '../system-errors.js';
import { auditJson, type StoredAuditRow } from './record.js';

const FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;

export class AuditFileSink {
  #fd: number;

  private constructor(
    readonly file: string,
    fd: number,
  ) {
    this.#fd = fd;
  }

  static open(file: string): AuditFileSink {
    return new AuditFileSink(file, openSink(file));
  }

  /** Appends the rows; returns how to take them back (if the transaction they belong to fails). */
  write(rows: readonly StoredAuditRow[]): () => void {
    const data = Buffer.from(rows.map((row) => `${auditJson(row)}\n`).join(''), 'utf8');
    let size: number | undefined;
    try {
      size = fstatSync(this.#fd).size;
      let offset = 0;
      while (offset < data.length) offset += writeSync(this.#fd, data, offset);
    } catch (cause) {
      if (size !== undefined) {
        try {
          ftruncateSync(this.#fd, size);
        } catch {
          // A file that cannot even be cut back (e.g. /dev/full) holds no torn line either.
        }
      }
      throw new AuditSinkError(`the audit log ${this.file} could not be written (${(cause as NodeJS.ErrnoException).code ?? 'error'})`, cause);
    }
    const fd = this.#fd;
    const before = size;
    return () => {
      // After a SIGHUP the old descriptor is closed and its number may belong to another file.
      if (fd !== this.#fd) return;
      try {
        ftruncateSync(fd, before);
      } catch {
        // reopened or closed meanwhile: nothing more to take back
      }
    };
  }

  /** After logrotate moved the file: continue in a new one at the same path. */
  reopen(): void {
    const fd = openSink(this.file);
    const old = this.#fd;
    this.#fd = fd;
    closeQuietly(old);
  }

  close(): void {
    try {
      fsyncSync(this.#fd);
    } catch {
      // e.g. EINVAL on /dev/full: nothing was buffered by us anyway
    }
    closeQuietly(this.#fd);
  }
}

function openSink(file: string): number {
  try {
    return openSync(file, FLAGS, 0o600);
  } catch (cause) {
    // A read-only file system, a missing directory…: said with the path and a hint, as at start-up.
    throw explainSystemError(cause) ?? new AuditSinkError(`cannot open the audit log ${file} (${(cause as NodeJS.ErrnoException).code ?? 'error'})`, cause);
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
