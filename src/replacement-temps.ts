// The temp files that a file is replaced through (written whole, fsynced, renamed over it), named
// `.NAME.PID.RANDOM.tmp` beside it, and the sweep of those a killed writer left: one naming, so the
// sweep finds exactly what the writers make. Used for the wrapper's private files and the store's.
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A new temp file's path beside `file`, naming this process. */
export function replacementTemp(file: string): string {
  return join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * The temp files of writers of `file` killed before their rename (SIGKILL runs no cleanup): each
 * holds a whole copy (a stored API key, a sealed cache, a SOPS file). Only those whose writer is
 * gone, unless `all` (under a lock that every writer holds).
 */
export async function removeLeftoverTemps(file: string, isAlive: (pid: number) => boolean, all = false): Promise<void> {
  for (const temp of await leftoverTemps(file, all ? () => false : isAlive)) await rm(temp, { force: true });
}

/** The paths of the temp files of `file` whose writer is not alive. */
export async function leftoverTemps(file: string, isAlive: (pid: number) => boolean): Promise<string[]> {
  const prefix = `.${basename(file)}.`;
  const found: string[] = [];
  for (const name of await readdir(dirname(file)).catch(() => [] as string[])) {
    const pid = name.startsWith(prefix) ? /^(\d+)\.[0-9a-f]{12}\.tmp$/.exec(name.slice(prefix.length))?.[1] : undefined;
    if (pid !== undefined && !isAlive(Number(pid))) found.push(join(dirname(file), name));
  }
  return found;
}
