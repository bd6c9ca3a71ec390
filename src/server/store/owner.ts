// Who a file made in the store belongs to. An operator who runs the admin commands with sudo on a
// store that belongs to the service user the server runs as made root's files there (a secrets
// file rewritten, state-seen.json, a lock file), 0600: the server could no longer read them, and
// every read of that environment was a 500. Run as root, a new file is given to the owner of its
// directory, as SQLite does for the WAL and journal files of a database root opens.
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { RwsError } from '../../errors.js';

/** Gives `handle`, a file just made at `file`, to its directory's owner when this process is root. */
export async function giveToDirectoryOwner(handle: FileHandle, file: string): Promise<void> {
  if (process.geteuid?.() !== 0) return;
  const dir = await fs.stat(path.dirname(file));
  if (dir.uid === 0 && dir.gid === 0) return;
  // Best effort: root without CAP_CHOWN (a user namespace, a rootless container) keeps the file
  // as before rather than failing the change.
  await handle.chown(dir.uid, dir.gid).catch(() => undefined);
}

/** Whose `file` is, when another user's than this process's: the words and the chown that fixes it. */
export async function otherOwner(file: string): Promise<{ whose: string; hint: string } | undefined> {
  const owner = await fs.lstat(file).then((stat) => stat.uid, () => undefined);
  const me = process.geteuid?.();
  if (owner === undefined || me === undefined || owner === me) return undefined;
  return {
    whose: `; it belongs to uid ${owner} and this process runs as uid ${me}`,
    hint: `give it to the user the server runs as (chown ${me} ${file}), or run the commands that write the store as that user`,
  };
}

/**
 * A store file this process may not read, said with whose it is: a server running as a service
 * user found a secrets file root had written, and logged `Error EACCES` with no file or user.
 */
export async function unreadableFile(file: string, cause: NodeJS.ErrnoException): Promise<RwsError> {
  const other = await otherOwner(file);
  return new RwsError('RWS_FILE_ACCESS', `cannot read ${file}: permission denied (${cause.code})${other?.whose ?? ''}`, {
    hint: other?.hint ?? `check the permissions of ${file} and its directory`,
    cause,
  });
}
