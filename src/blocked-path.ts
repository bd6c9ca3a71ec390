// Which part of a path stops a lookup that failed with ENOTDIR or EACCES, so that a message can
// name the file sitting where a directory is needed, or the directory the process may not enter,
// rather than the path it was asked for (which may be several levels below either).
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/** `parentOwner`: whose directory it was made in (root's inside a user's is what a sudo without -H leaves). */
export type Blocker = { path: string; kind: 'not-directory' } | { path: string; kind: 'not-searchable'; mode: number; owner: number; parentOwner: number | undefined };

/** The first ancestor of `path`, from the root down, that is not a directory or that this process may not search. */
export async function findBlocker(path: string): Promise<Blocker | undefined> {
  const ancestors: string[] = [];
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    ancestors.unshift(dir);
    if (dirname(dir) === dir) break;
  }
  let parentOwner: number | undefined;
  for (const dir of ancestors) {
    // stat, not lstat: a link to a directory (/var/run) is passed through like the directory.
    const info = await stat(dir).catch(() => undefined);
    if (info === undefined) return undefined; // missing, or stopped above: nothing to name
    if (!info.isDirectory()) return { path: dir, kind: 'not-directory' };
    const searchable = await access(dir, constants.X_OK).then(
      () => true,
      () => false,
    );
    if (!searchable) return { path: dir, kind: 'not-searchable', mode: info.mode, owner: info.uid, parentOwner };
    parentOwner = info.uid;
  }
  return undefined;
}

/**
 * Root's directory that a user may not enter, made inside one of theirs: a run as root that kept
 * their HOME (sudo without -H). Theirs to have back; a HOME of their own is what they already use.
 */
export function leftByRoot(blocker: Blocker, uid: number): boolean {
  return blocker.kind === 'not-searchable' && blocker.owner === 0 && uid !== 0 && blocker.parentOwner === uid;
}

export function leftByRootHint(blocker: Blocker, uid: number): string {
  return `root made it (sudo without -H keeps your HOME): sudo chown -R ${uid} ${blocker.path}, then run again`;
}
