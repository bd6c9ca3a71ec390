// `fallback clean [--fallback=PATH]`: forgets the offline copies, offline. Every copy in the
// default place, or the one at PATH, with its queue of offline uses not yet reported (said, since
// the vault's audit log will then never hear of them). Only names this tool writes are removed.
import { lstat, readdir, rm } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { UsageError } from '../../errors.js';
import { defaultCacheDir } from '../../fallback/cache-file.js';
import { UseQueue } from '../../fallback/use-queue.js';
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
    matches = (entry) => entry === name || entry === `${name}.uses` || (entry.startsWith(`.${name}.`) && entry.endsWith('.tmp'));
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
    if (entry.endsWith('.uses')) unreported += await new UseQueue(path, facts.uid).count();
    else if (entry.endsWith('.bin')) copies++;
    await rm(path, { recursive: true, force: true });
  }
  context.stdout.write(`removed ${copies} fallback cop${copies === 1 ? 'y' : 'ies'} from ${dir}\n`);
  if (unreported > 0) context.log.warn('RWS_FALLBACK_UNREPORTED', `${unreported} offline use(s) were never reported to the vault's audit log, and now never will be`);
  return 0;
}
