// A SQLite state file that cannot be written, said as the operator can act on it: which file, what
// went wrong in words, and what to check there. It read `the state database could not be written
// (SQLITE_FULL)` with a hint about PostgreSQL URLs: no file, and the disk full only as a code.
import path from 'node:path';
import { StateUnavailableError } from '../state-errors.js';

type Explain = readonly [words: string, hint: (file: string, dir: string) => string];

const EXPLAINED: Readonly<Record<string, Explain>> = {
  SQLITE_FULL: ['its file system is full', (_file, dir) => `free space on the file system holding ${dir} (df -h ${dir}); requests are answered again at the first commit that goes through`],
  SQLITE_READONLY: ['it is read-only to this process', (file, dir) => `check that the user running secrets-server may write ${file}, its -wal and -shm files and ${dir}, and that the file system is not mounted read-only`],
  SQLITE_IOERR: ['the disk reported an I/O error', (_file, dir) => `check the disk and file system holding ${dir} (dmesg): full, failing or gone`],
  SQLITE_CANTOPEN: ['it cannot be opened', (_file, dir) => `check that ${dir} exists and that the user running secrets-server may write it`],
  SQLITE_BUSY: ['another process held its write lock too long', (file) => `another process keeps ${file} locked (a sqlite3 shell left in a transaction, a tool holding it): end it`],
  SQLITE_LOCKED: ['another process held its write lock too long', (file) => `another process keeps ${file} locked (a sqlite3 shell left in a transaction, a tool holding it): end it`],
  SQLITE_PROTOCOL: ['its locks failed', (_file, dir) => `check that the file system holding ${dir} supports POSIX locks (a local disk, not NFS)`],
  SQLITE_NOMEM: ['SQLite ran out of memory', () => 'the machine is short of memory: check what else runs there'],
};

/** `code`'s family (SQLITE_IOERR_WRITE → SQLITE_IOERR), when it is one an operator can fix. */
function family(code: string): string | undefined {
  const base = code.split('_').slice(0, 2).join('_');
  return EXPLAINED[base] === undefined ? undefined : base;
}

/** A StateUnavailableError naming `file` for a SQLite error an operator can fix; else the error as it is. */
export function explainSqliteError(cause: unknown, file: string, doing: 'opened' | 'written' = 'written'): unknown {
  const code = (cause as { code?: unknown } | undefined)?.code;
  const base = typeof code === 'string' ? family(code) : undefined;
  if (base === undefined) return cause;
  const [words, hint] = EXPLAINED[base] as Explain;
  return new StateUnavailableError(`the state database ${file} could not be ${doing}: ${words} (${code as string})`, cause, hint(file, path.dirname(file)));
}
