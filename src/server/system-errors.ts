// Errors of the operating system that an operator can fix, turned into one line with a stable
// code, the path or address, and a hint. Before this, `serve` said `internal error (Error
// EADDRINUSE)`. Only the syscall, the errno code and the path or address are used: Node's
// messages for these errors hold nothing else.
import { RwsError } from '../errors.js';

interface SystemError {
  code: string;
  syscall?: string;
  path?: string;
  address?: string;
  port?: number;
  hostname?: string;
}

const LISTEN_HINTS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'another process listens there: stop it, or choose another --port',
  EACCES: 'ports below 1024 need privileges: choose --port 1024 or above',
  EADDRNOTAVAIL: 'no interface of this machine has that address: check --host',
};

// The metrics listener's own flag: a metrics port in use read "choose another --port", the
// vault listener's flag, and sent the operator to the wrong one.
const METRICS_LISTEN_HINTS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'another process listens there (another secrets-server on this host?): stop it, or give --metrics-listen another HOST:PORT',
  EACCES: 'ports below 1024 need privileges: give --metrics-listen a port of 1024 or above',
  EADDRNOTAVAIL: 'no interface of this machine has that address: check --metrics-listen',
};

const FILE_HINTS: Readonly<Record<string, string>> = {
  EROFS: 'the file system is mounted read-only: give a path on a writable one (for the audit log, --audit-log FILE)',
  EACCES: 'check the permissions of the file and its directory for the user running secrets-server',
  EPERM: 'check the permissions of the file and its directory for the user running secrets-server',
  ENOENT: 'check that the path exists',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'the path is a directory; give a file',
  ENOSPC: 'the file system is full: free some space',
  EDQUOT: 'the disk quota is exhausted: free some space',
  ELOOP: 'the path is a symbolic link, which secrets-server never follows: give the real path',
  EFBIG: 'the file reached the largest size allowed (ulimit -f, or the file system): rotate it',
};

const WHAT: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address in use',
  EADDRNOTAVAIL: 'address not available',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  ELOOP: 'symbolic link',
  EFBIG: 'file too large',
};

function isSystemError(error: unknown): error is SystemError {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'string' && typeof (error as { syscall?: unknown }).syscall === 'string';
}

/** An RwsError for a system error we can explain, else undefined; `listener`: whose address failed to listen. */
export function explainSystemError(error: unknown, listener: 'vault' | 'metrics' = 'vault'): RwsError | undefined {
  if (!isSystemError(error)) return undefined;
  const what = WHAT[error.code] ?? error.code;
  const hints = listener === 'metrics' ? METRICS_LISTEN_HINTS : LISTEN_HINTS;
  if ((error.syscall === 'listen' || error.syscall === 'bind') && hints[error.code] !== undefined) {
    // Node leaves the port out of the error for --port 0 (any port): "HOST:undefined" said nothing.
    const port = error.port === undefined || error.port === 0 ? undefined : error.port;
    const host = error.address === undefined ? undefined : error.address.includes(':') ? `[${error.address}]` : error.address;
    const where = host === undefined ? (port === undefined ? 'any port' : `port ${port}`) : port === undefined ? `${host} (any port)` : `${host}:${port}`;
    return new RwsError('RWS_LISTEN_FAILED', `cannot listen on ${where}${listener === 'metrics' ? ' (--metrics-listen)' : ''}: ${what} (${error.code})`, { hint: hints[error.code], cause: error });
  }
  // A --host or --metrics-listen name that does not resolve: it came out as RWS_INTERNAL. The
  // database's own lookups are reported where it is opened, with its URL masked.
  if (error.syscall === 'getaddrinfo' && typeof error.hostname === 'string') {
    return new RwsError('RWS_LISTEN_FAILED', `cannot listen on ${error.hostname}: no such host (${error.code})`, { hint: 'check --host / --metrics-listen: give an address of this machine, such as 127.0.0.1', cause: error });
  }
  if (error.path !== undefined && FILE_HINTS[error.code] !== undefined) {
    return new RwsError('RWS_FILE_ACCESS', `cannot ${error.syscall} ${error.path}: ${what} (${error.code})`, { hint: FILE_HINTS[error.code], cause: error });
  }
  return undefined;
}

/** A file's errno in words (`no space left on device (ENOSPC)`) and its hint, for a message that names the file itself. */
export function explainFileErrno(error: unknown): { words: string; hint?: string } {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return { words: 'error' };
  const what = WHAT[code];
  return { words: what === undefined ? code : `${what} (${code})`, hint: FILE_HINTS[code] };
}
