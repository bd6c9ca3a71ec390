// The directory a fallback copy lives in, checked by every read of the copy as by every write. The
// copy's own 0600 is not enough: whoever may write the directory may rename or remove entries in
// it (a copy hidden from the removal a revoked key's 401 makes, and put back; queued offline uses
// gone before the vault hears of them), and one open to others lists the jobs and when they ran.
// - The default place is ours alone: 0700, made so and narrowed so by a write (the vault has just
//   answered, so the copy written there is fresh), refused by a read while it is anything else.
// - A directory named by --fallback=PATH is the user's: it must be theirs and closed to writes by
//   group and others, on a read as on a write; it is never narrowed (a 0755 project directory).
// - A path a read cannot follow to the directory at all (ENOTDIR, EACCES) names the part in its way.
import { chmod, lstat, mkdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { realpathSync, statSync, type Stats } from 'node:fs';
import { FallbackError } from '../errors.js';
import { type DirectoryProblem, directoryProblem, otherOwnerHint } from '../config/private-file.js';
import { findBlocker, leftByRoot, leftByRootHint } from '../blocked-path.js';
import { modeText } from '../local-file.js';

export type CacheDirectoryKind = 'default' | 'chosen';

/** Before a read: refused unless private (default) or closed to writes (chosen); a missing one holds no copy. */
export async function checkCacheDirectory(path: string, uid: number, kind: CacheDirectoryKind): Promise<void> {
  let info: Stats | undefined;
  try {
    info = await lstat(dirname(path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw await unreachable(path, uid, kind, error);
  }
  const problem = cacheDirectoryProblem(info, uid, kind);
  if (problem !== undefined) throw refusal(path, uid, kind, info, problem);
}

/** Before a write: made 0700 if missing; the default place is narrowed to 0700, anything else refused as a read refuses it. */
export async function prepareCacheDirectory(path: string, uid: number, kind: CacheDirectoryKind): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await lstat(dir);
  const problem = cacheDirectoryProblem(info, uid, kind);
  // A write closes an open default place itself.
  if (problem?.kind === 'open' && kind === 'default') await chmod(dir, 0o700);
  else if (problem !== undefined) throw refusal(path, uid, kind, info, problem);
}

/**
 * A lookup of the copy stopped above it (ENOTDIR, EACCES): RWS_FALLBACK_UNREADABLE, naming the
 * file in the way or the directory this user may not enter. Any other failure is returned as it is.
 */
export async function unreachable(path: string, uid: number, kind: CacheDirectoryKind, error: unknown): Promise<unknown> {
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== 'ENOTDIR' && code !== 'EACCES') return error;
  const blocker = await findBlocker(path);
  const elsewhere = kind === 'default' ? 'point XDG_STATE_HOME at a directory of yours, or give --fallback=PATH' : 'give --fallback=PATH in a directory of yours';
  let reason: string;
  let hint: string;
  // Every directory may be entered: the copy itself is what refuses this user (chmod 000, another's 0600).
  const copy = blocker === undefined && code === 'EACCES' ? await lstat(path).catch(() => undefined) : undefined;
  if (copy !== undefined) {
    reason = `you (uid ${uid}) may not read it (${code}: mode ${modeText(copy.mode)}, owned by uid ${copy.uid})`;
    hint = copy.uid === uid ? `chmod 600 ${path}` : `it is uid ${copy.uid}'s: run as that user, or ${elsewhere}`;
  } else if (blocker === undefined) {
    reason = `${code === 'EACCES' ? 'permission denied' : 'a part of the path is not a directory'} (${code})`;
    hint = `check the permissions of ${path} and of the directories above it`;
  } else if (blocker.kind === 'not-directory') {
    reason = `${blocker.path} is not a directory (${code})`;
    hint = `move ${blocker.path} aside, or ${elsewhere}`;
  } else {
    reason = `you (uid ${uid}) may not enter ${blocker.path} (${code}: mode ${modeText(blocker.mode)}, owned by uid ${blocker.owner})`;
    // Another user's HOME kept by sudo -u is the usual way here: the fix is to use one's own.
    hint = blocker.owner === uid ? `chmod u+x ${blocker.path}` : leftByRoot(blocker, uid) ? leftByRootHint(blocker, uid) : kind === 'default' ? `run with your own HOME (sudo -H), or ${elsewhere}` : `${elsewhere}, or have uid ${blocker.owner} let you into ${blocker.path}`;
  }
  return new FallbackError('RWS_FALLBACK_UNREADABLE', `the fallback cache ${path} cannot be reached: ${reason}`, hint);
}

/** The default place is held as every private directory of ours; a chosen one only closed to writes. */
function cacheDirectoryProblem(info: Stats, uid: number, kind: CacheDirectoryKind): DirectoryProblem | undefined {
  return directoryProblem(info, uid, kind === 'default' ? 0o077 : 0o022);
}

function refusal(path: string, uid: number, kind: CacheDirectoryKind, info: Stats, { kind: problem }: DirectoryProblem): FallbackError {
  const dir = dirname(path);
  const yours = 'give --fallback=PATH in a directory of yours that only you can write';
  const elsewhere = `or ${yours}`;
  let reason: string;
  let hint: string;
  if (problem === 'not-directory') {
    reason = info.isSymbolicLink() ? 'is a symbolic link, not a directory' : 'is not a directory';
    hint = kind === 'default' ? `rm ${dir} (a link goes without its target), and let a --fallback run make the directory again` : (info.isSymbolicLink() && throughTarget(path)) || yours;
  } else if (problem === 'other-owner') {
    reason = `is owned by uid ${info.uid}, not by you (uid ${uid})`;
    // Root's directory in a user's HOME is what a sudo without -H left: the user may have it back,
    // with root's copies and the uses they queued. A user's directory read by root is theirs.
    if (kind === 'default') hint = otherOwnerHint(info.uid, 'XDG_STATE_HOME', `chown -R ${uid} ${dir}`, 'run again');
    else hint = info.uid === 0 ? `sudo chown ${uid} ${dir}, ${elsewhere}` : `it is uid ${info.uid}'s: run as that user, ${elsewhere}`;
  } else if (kind === 'default') {
    reason = `is open to group or others (mode ${modeText(info.mode)})`;
    hint = `chmod 700 ${dir}: copies are kept 0600 in a 0700 directory (a --fallback run that reaches the vault narrows it too)`;
  } else {
    reason = `may be written by group or others (mode ${modeText(info.mode)})`;
    hint = `chmod go-w ${dir}, ${elsewhere}`;
  }
  return new FallbackError('RWS_FALLBACK_UNSAFE', `the fallback cache ${path} is refused: its directory ${dir} ${reason}`, hint);
}

/** A --fallback=PATH through a linked directory (~/jobs -> /data/jobs): the same PATH without the link. */
function throughTarget(path: string): string | undefined {
  try {
    const target = realpathSync(dirname(path));
    if (!statSync(target).isDirectory()) return undefined;
    return `give --fallback=${join(target, basename(path))}, the directory the link points to, not the link`;
  } catch {
    return undefined;
  }
}
