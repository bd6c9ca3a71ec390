// `fallback clean [--fallback=PATH]`: forgets the offline copies, offline. Every copy in the
// default place, or the one at PATH, with its queue of offline uses not yet reported (said, since
// the vault's audit log will then never hear of them). Only names this tool writes are removed.
import { lstat, readdir, rmdir, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { UsageError } from '../../errors.js';
import { defaultCacheDir } from '../../fallback/cache-file.js';
import { QUEUE_FILE, UseQueue } from '../../fallback/use-queue.js';
import type { CommandContext } from './context.js';

const DEFAULT_NAMES = /^\.?[0-9a-f]{32}\.bin(\.uses|\.\d+\.[0-9a-f]{12}\.tmp)?$/;

export async function fallbackClean(context: CommandContext): Promise<number> {
  const { values, facts } = context;
  const explicit = typeof values.fallback === 'string' && values.fallback !== '' ? values.fallback : undefined;
  let dir: string;
  let matches: (name: string) => boolean;
  if (explicit !== undefined) {
    const path = isAbsolute(explicit) ? explicit : resolve(facts.cwd, explicit);
    dir = dirname(path);
    const name = basename(path);
    matches = (entry) => entry === name || (entry.startsWith(`${name}.`) && /^[0-9a-f]{12}\.uses$/.test(entry.slice(name.length + 1))) || (entry.startsWith(`.${name}.`) && entry.endsWith('.tmp'));
  } else {
    const found = defaultCacheDir(facts.env);
    if (found === undefined) throw new UsageError('neither XDG_STATE_HOME nor HOME is set', 'set one, or give --fallback=PATH');
    dir = found;
    matches = (entry) => DEFAULT_NAMES.test(entry);
  }
  let entries: string[];
  try {
    if ((await lstat(dir)).isSymbolicLink()) throw new UsageError(`${dir} is a symbolic link; remove it by hand if it is yours`);
    entries = (await readdir(dir)).filter(matches);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    entries = [];
  }
  let copies = 0;
  let unreported = 0;
  for (const entry of entries) {
    const path = join(dir, entry);
    // Never a recursive removal: a name that matches (`--fallback=.` names the current
    // directory) is removed only if it has the shape this tool gives it.
    const info = await lstat(path).catch(() => undefined);
    if (info === undefined) continue;
    if (entry.endsWith('.uses') && info.isDirectory()) {
      unreported += await new UseQueue(path, facts.uid).count();
      if (!(await removeQueue(path))) context.log.warn('RWS_FALLBACK_NOT_REMOVED', `${path} holds files this tool did not write; left in place`);
    } else if (info.isFile() || info.isSymbolicLink()) {
      if (entry.endsWith('.bin')) copies++;
      await unlink(path).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
    } else {
      context.log.warn('RWS_FALLBACK_NOT_REMOVED', `${path} is not a fallback copy (a ${info.isDirectory() ? 'directory' : 'special file'}); left in place`);
    }
  }
  context.stdout.write(`removed ${copies} fallback cop${copies === 1 ? 'y' : 'ies'} from ${dir}\n`);
  if (unreported > 0) context.log.warn('RWS_FALLBACK_UNREPORTED', `${unreported} offline use(s) were never reported to the vault's audit log, and now never will be`);
  return 0;
}

/** Removes a queue directory file by file (only names the queue writes), then the directory; false if anything else is in it. */
async function removeQueue(dir: string): Promise<boolean> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return false;
  }
  for (const name of names) {
    if (!QUEUE_FILE.test(name)) continue;
    const info = await lstat(join(dir, name)).catch(() => undefined);
    if (info?.isFile() || info?.isSymbolicLink()) await unlink(join(dir, name)).catch(() => undefined);
  }
  try {
    await rmdir(dir);
    return true;
  } catch {
    return false;
  }
}
