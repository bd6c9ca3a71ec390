// A database file of the state (state.db, a lock file) made private: created 0600 (SQLite would
// use the umask), refused when others can read it or it is not a regular file.
//
// A file that exists is only looked at (lstat), never opened: POSIX locks belong to a process and
// a file, and closing any descriptor of the file drops every lock the process holds on it (SQLite
// documents this as a way to corrupt a database) — here, the edit lock another edit of this
// process holds through its own connection. So a descriptor is opened only to create the file,
// and no one in this process goes on to lock the file until that descriptor is closed.
import { constants, promises as fs, type Stats } from 'node:fs';
import { RwsError } from '../../../errors.js';
import { StateUnavailableError } from '../state-errors.js';
import type { FileIdentity } from './file-identity.js';
import { giveToDirectoryOwner } from '../../store/owner.js';

/** Files being created by this process, until their descriptor is closed. */
const creating = new Map<string, Promise<void>>();

/** Returns which file it is. */
export async function ensurePrivateFile(file: string): Promise<FileIdentity> {
  let stat: Stats | undefined;
  for (;;) {
    const inFlight = creating.get(file);
    if (inFlight !== undefined) {
      await inFlight;
      continue;
    }
    stat = await lstatOrNothing(file);
    // A creation begun meanwhile may still hold its descriptor: wait for it, then look again.
    if (creating.has(file)) continue;
    if (stat !== undefined) break;
    const made = create(file).finally(() => creating.delete(file));
    creating.set(file, made);
  }
  if (!stat.isFile()) throw new RwsError('RWS_STORE_INVALID', `${file} is not a regular file`, { hint: `move it away: the state database is made again there at the next start, or restore it from a backup` });
  if ((stat.mode & 0o077) !== 0) {
    throw new RwsError('RWS_STORE_INVALID', `${file} is readable by others (mode ${(stat.mode & 0o777).toString(8)})`, { hint: `chmod 600 ${file}` });
  }
  return { dev: stat.dev, ino: stat.ino };
}

async function lstatOrNothing(file: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(file);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw unavailable(file, cause);
  }
}

async function create(file: string): Promise<void> {
  try {
    // O_EXCL: another process that made it first keeps its file as it made it.
    const handle = await fs.open(file, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await giveToDirectoryOwner(handle, file);
    } finally {
      await handle.close();
    }
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'EEXIST') throw unavailable(file, cause);
  }
}

function unavailable(file: string, cause: unknown): StateUnavailableError {
  return new StateUnavailableError(`cannot open the state database ${file}: ${(cause as NodeJS.ErrnoException).code ?? 'error'}`, cause);
}
