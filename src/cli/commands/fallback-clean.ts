// `fallback clean [--fallback=PATH]`: forgets the offline copies, offline. Every copy in the
// default place, or the one at PATH, with its queue of offline uses not yet reported (said, since
// the vault's audit log will then never hear of them). Only names this tool writes are removed.
import { constants } from 'node:fs';
import { lstat, open, readdir, rmdir, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { FallbackError, UsageError } from '../../errors.js';
import { defaultCacheDir } from '../../fallback/cache-file.js';
import { type DirectoryFailure, directoryFailure } from '../../fallback/directory-failure.js';
import { isQueuedUse, isQueueFile } from '../../fallback/use-queue.js';
import type { CommandContext } from './context.js';

const DEFAULT_NAMES = /^\.?[0-9a-f]{32}\.bin(\.uses|\.\d+\.[0-9a-f]{12}\.tmp)?$/;
const DEFAULT_COPY = /^[0-9a-f]{32}\.bin$/;

export async function fallbackClean(context: CommandContext): Promise<number> {
  const { values, facts } = context;
  const explicit = typeof values.fallback === 'string' && values.fallback !== '' ? values.fallback : undefined;
  let dir: string;
  let matches: (name: string) => boolean;
  // The copy itself, of the names that match (its queue and temp files are not counted as copies).
  let isCopy: (name: string) => boolean;
  if (explicit !== undefined) {
    const path = isAbsolute(explicit) ? explicit : resolve(facts.cwd, explicit);
    dir = dirname(path);
    const name = basename(path);
    // PATH is any name the user chose, not only one in .bin.
    isCopy = (entry) => entry === name;
    matches = (entry) => entry === name || (entry.startsWith(`${name}.`) && /^[0-9a-f]{12}\.uses$/.test(entry.slice(name.length + 1))) || (entry.startsWith(`.${name}.`) && entry.endsWith('.tmp'));
  } else {
    const found = defaultCacheDir(facts.env);
    if (found === undefined) throw new UsageError('neither XDG_STATE_HOME nor HOME is set', 'set one, or give --fallback=PATH');
    dir = found;
    isCopy = (entry) => DEFAULT_COPY.test(entry);
    matches = (entry) => DEFAULT_NAMES.test(entry);
  }
  let entries: string[];
  try {
    if ((await lstat(dir)).isSymbolicLink()) throw new UsageError(`${dir} is a symbolic link; remove it by hand if it is yours`);
    entries = (await readdir(dir)).filter(matches);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (error instanceof UsageError || (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'EACCES')) throw error;
    // A file where a directory is needed holds no copy: there is nothing to forget, but the path is
    // likely not the one meant. A directory that cannot be entered may hold copies: not cleaned.
    if (code !== 'ENOENT') {
      const { reason, hint } = await failure(dir, error);
      if (code === 'EACCES') throw new FallbackError('RWS_FALLBACK_UNREADABLE', `cannot clean ${dir}: ${reason}`, hint);
      context.log.warn('RWS_FALLBACK_UNREADABLE', `no fallback copy can be in ${dir}: ${reason}; nothing to remove`);
    }
    entries = [];
  }
  let copies = 0;
  let unreported = 0;
  let left = 0;
  let first: { dir: string; error: unknown } | undefined;
  const failed = (where: string, error: unknown) => {
    left++;
    first ??= { dir: where, error };
  };
  for (const entry of entries) {
    const path = join(dir, entry);
    // Never a recursive removal: a name that matches (`--fallback=.` names the current
    // directory) is removed only if it has the shape this tool gives it.
    const info = await lstat(path).catch(() => undefined);
    if (info === undefined) continue;
    if (entry.endsWith('.uses') && info.isDirectory()) {
      const queue = await removeQueue(path);
      unreported += queue.uses;
      if (queue.failure !== undefined) failed(queue.where ?? path, queue.failure);
      else if (queue.foreign) context.log.warn('RWS_FALLBACK_NOT_REMOVED', `${path} holds files this tool did not write; left in place`);
    } else if (info.isFile() && isCopy(entry) && explicit !== undefined && (await begins(path)) === false) {
      // PATH is typed by hand: a slip (--fallback=config.yaml) must not cost the file it names.
      context.log.warn('RWS_FALLBACK_NOT_REMOVED', `${path} is not a fallback copy (it does not begin as one); left in place`);
    } else if (info.isFile() || info.isSymbolicLink()) {
      try {
        await unlink(path);
        if (isCopy(entry)) copies++;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') failed(dir, error);
      }
    } else {
      context.log.warn('RWS_FALLBACK_NOT_REMOVED', `${path} is not a fallback copy (a ${info.isDirectory() ? 'directory' : 'special file'}); left in place`);
    }
  }
  context.stdout.write(`removed ${copies} fallback cop${copies === 1 ? 'y' : 'ies'} from ${dir}\n`);
  if (unreported > 0) context.log.warn('RWS_FALLBACK_UNREPORTED', `${unreported} offline use(s) were never reported to the vault's audit log, and now never will be`);
  // A script that cleans before it trusts the copies to be gone (a revoked key) must hear of any left.
  if (first !== undefined) {
    const { reason, hint } = await failure(first.dir, first.error);
    throw new FallbackError('RWS_FALLBACK_NOT_REMOVED', `${left} fallback cop${left === 1 ? 'y or queue was' : 'ies or queues were'} left in ${dir}: ${reason}`, hint);
  }
  return 0;

  function failure(where: string, error: unknown): Promise<DirectoryFailure> {
    // The directories this tool makes are 0700; one named by --fallback=PATH is the user's (0755 is
    // fine): only the owner's bits are asked for.
    const fix = explicit !== undefined && where === dir ? `chmod u+rwx ${where}` : `chmod 700 ${where}`;
    return directoryFailure(where, facts.uid, error, { fix });
  }
}

/** Whether the file begins as a copy; undefined when it cannot be read (removed as before: the user named it). */
async function begins(path: string): Promise<boolean | undefined> {
  const { beginsAsCache } = await import('../../fallback/cache-format.js');
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const head = Buffer.alloc(8);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return beginsAsCache(head.subarray(0, bytesRead));
  } catch {
    return undefined;
  } finally {
    await handle?.close();
  }
}

/**
 * Removes a queue directory file by file (only names the queue writes), then the directory. Says
 * how many uses went, whether it holds names of others (left in place), and what stopped it.
 */
async function removeQueue(dir: string): Promise<{ uses: number; foreign: boolean; failure?: unknown; where?: string }> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? { uses: 0, foreign: false } : { uses: 0, foreign: false, failure: error };
  }
  let uses = 0;
  let foreign = false;
  for (const name of names) {
    const info = isQueueFile(name) ? await lstat(join(dir, name)).catch(() => undefined) : undefined;
    if (!(info?.isFile() || info?.isSymbolicLink())) {
      foreign ||= info !== undefined || !isQueueFile(name);
      continue;
    }
    try {
      await unlink(join(dir, name));
      if (isQueuedUse(name)) uses++;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return { uses, foreign, failure: error };
    }
  }
  if (foreign) return { uses, foreign };
  try {
    await rmdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // ENOTEMPTY: a run from the copy queued a use meanwhile; it stays, as a name of others would.
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return { uses, foreign: true };
    // Removing the queue itself is a write to the directory it is in.
    if (code !== 'ENOENT') return { uses, foreign, failure: error, where: dirname(dir) };
  }
  return { uses, foreign: false };
}
