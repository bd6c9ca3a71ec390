// File primitives for the store: created exclusively without following links (mode 0600), and
// replaced atomically through a temp file in the same directory. Locks are the database's.
import { replacementTemp } from '../../replacement-temps.js';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { RwsError } from '../../errors.js';
import { syncDirectory } from '../../sync-directory.js';
import { giveToDirectoryOwner } from './owner.js';

const { O_CREAT, O_EXCL, O_NOFOLLOW, O_WRONLY } = constants;

/** Creates `file` with `data`, failing if anything (even a dangling link) is already there. */
export async function createExclusive(file: string, data: string | Uint8Array): Promise<void> {
  const handle = await fs.open(file, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY, 0o600);
  try {
    await giveToDirectoryOwner(handle, file);
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    throw naming(error, file);
  } finally {
    await handle.close();
  }
}

/**
 * Node leaves the path out of a write's error: a full disk stopped `serve` at start with
 * `internal error (Error ENOSPC)`, and no file named. With it, the error is explained as others are.
 */
function naming(error: unknown, file: string): unknown {
  const errno = error as NodeJS.ErrnoException;
  if (error instanceof Error && typeof errno.code === 'string' && errno.path === undefined) {
    errno.path = file;
    errno.syscall ??= 'write';
  }
  return error;
}

/** Replaces `file` by a complete new version: temp file (0600) in the same directory, fsync, rename. */
export async function replaceFile(file: string, data: string | Uint8Array): Promise<void> {
  const staged = await stageReplacement(file, data);
  await staged.commit();
}

export interface StagedFile {
  /** Renames the new version into place and syncs the directory. */
  commit(): Promise<void>;
  /** Removes the new version; the file is left as it was. */
  discard(): Promise<void>;
}

/**
 * The new version of `file`, written and synced beside it but not yet in place: a caller that must
 * record the change first (the admin API's audit row) commits it only once the record is stored.
 */
export async function stageReplacement(file: string, data: string | Uint8Array): Promise<StagedFile> {
  const dir = path.dirname(file);
  const temp = replacementTemp(file);
  const discard = () => fs.rm(temp, { force: true });
  try {
    await createExclusive(temp, data);
  } catch (error) {
    await discard();
    // The file being replaced, not its temp file's random name.
    if ((error as NodeJS.ErrnoException).path === temp) (error as NodeJS.ErrnoException).path = file;
    throw error;
  }
  return {
    discard,
    commit: async () => {
      try {
        await fs.rename(temp, file);
      } catch (error) {
        await discard();
        throw error;
      }
      await syncDirectory(dir);
    },
  };
}

/** Reads a file the store owns; refuses links and files others can read or write. */
export async function readPrivateFile(file: string): Promise<string> {
  return (await readPrivateBytes(file)).toString('utf8');
}

/**
 * As readPrivateFile, as bytes; `tooLarge` is thrown for a file over `maxBytes` before any of it
 * is read (a file past V8's longest string, about 512 MiB, failed as an internal RangeError).
 */
export async function readPrivateBytes(file: string, limit?: { maxBytes: number; tooLarge: (size: number) => Error }): Promise<Buffer> {
  // O_NONBLOCK: a FIFO in the file's place is refused below instead of waiting for a writer.
  const handle = await fs.open(file, constants.O_RDONLY | O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new RwsError('RWS_STORE_INVALID', `${file} is not a regular file`, { hint: `put the file itself at ${file} (0600), not a directory, pipe or device` });
    if ((stat.mode & 0o077) !== 0) {
      throw new RwsError('RWS_STORE_INVALID', `${file} is readable by others (mode ${(stat.mode & 0o777).toString(8)})`, {
        hint: `chmod 600 ${file}`,
      });
    }
    if (limit !== undefined && stat.size > limit.maxBytes) throw limit.tooLarge(stat.size);
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}
