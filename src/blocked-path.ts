// Which part of a path stops a lookup that failed with ENOTDIR or EACCES, so that a message can
// name the file sitting where a directory is needed, or the directory the process may not enter,
// rather than the path it was asked for (which may be several levels below either).
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

export type Blocker = { path: string; kind: 'not-directory' } | { path: string; kind: 'not-searchable'; mode: number; owner: number };

/** The first ancestor of `path`, from the root down, that is not a directory or that this process may not search. */
export async function findBlocker(path: string): Promise<Blocker | undefined> {
  const ancestors: string[] = [];
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    ancestors.unshift(dir);
    if (dirname(dir) === dir) break;
  }
  for (const dir of ancestors) {
    // stat, not lstat: a link to a directory (/var/run) is passed through like the directory.
    const info = await stat(dir).catch(() => undefined);
    if (info === undefined) return undefined; // missing, or stopped above: nothing to name
    if (!info.isDirectory()) return { path: dir, kind: 'not-directory' };
    const searchable = await access(dir, constants.X_OK).then(
      () => true,
      () => false,
    );
    if (!searchable) return { path: dir, kind: 'not-searchable', mode: info.mode, owner: info.uid };
  }
  return undefined;
}
