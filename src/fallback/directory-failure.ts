// Why an operation on a fallback directory (the offline-use queue, the copies' directory) failed,
// and the fix, for the one line that says so: the warning of a run that reached the vault and
// could not report its queued uses, the error of a `fallback clean` that could not remove
// everything, the warning of a 401 that could not remove the refused key's copies. Said, never
// passed over: uses left queued without a word stay unaudited for ever, and a copy left behind
// can still serve a revoked key offline.
import { constants } from 'node:fs';
import { access, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { findBlocker, leftByRoot, leftByRootHint } from '../blocked-path.js';
import { modeText } from '../local-file.js';

export interface DirectoryFailure {
  reason: string;
  hint: string;
}

export interface FailureContext {
  /** The entry the operation was on, when it was one (a queue entry unreadable, or a directory). */
  entry?: string;
  /** What makes `dir` usable again when it is yours: `chmod 700 DIR` for the ones this tool makes. */
  fix: string;
}

export async function directoryFailure(dir: string, uid: number, error: unknown, { entry, fix }: FailureContext): Promise<DirectoryFailure> {
  const code = (error as { code?: unknown }).code;
  const errno = typeof code === 'string' && /^[A-Z0-9_]{1,32}$/.test(code) ? code : 'error';
  // Node's rm refuses a directory itself (ERR_FS_EISDIR): one by an entry's name was put there by hand.
  if (entry !== undefined && (errno === 'ERR_FS_EISDIR' || errno === 'EISDIR')) return { reason: `${entry} is a directory, not an entry the queue wrote (${errno})`, hint: `move it out of ${dir}` };
  if (errno === 'EROFS') return { reason: `${dir} is on a read-only file system (${errno})`, hint: 'do it on a host where it is writable' };
  if (errno !== 'EACCES' && errno !== 'EPERM' && errno !== 'ENOTDIR') return { reason: `(${errno})`, hint: `check ${dir} and the directories above it` };
  // The directory itself is the last ancestor findBlocker looks at.
  const blocker = await findBlocker(join(dir, 'entry'));
  if (blocker?.kind === 'not-directory') return { reason: `${blocker.path} is not a directory (${errno})`, hint: `move ${blocker.path} aside` };
  if (blocker !== undefined) {
    const reason = `you (uid ${uid}) may not enter ${blocker.path} (${errno}: mode ${modeText(blocker.mode)}, owned by uid ${blocker.owner})`;
    // Another user's HOME kept by sudo -u is the usual way here: the fix is to use one's own.
    if (leftByRoot(blocker, uid)) return { reason, hint: leftByRootHint(blocker, uid) };
    return { reason, hint: blocker.owner === uid ? `chmod u+x ${blocker.path}` : `it is uid ${blocker.owner}'s: run as that user, or with a HOME of your own (sudo -H)` };
  }
  const info = await lstat(dir).catch(() => undefined);
  // Listing it, claiming an entry by rename, removing one: all need the three bits.
  const usable = await access(dir, constants.R_OK | constants.W_OK | constants.X_OK).then(
    () => true,
    () => false,
  );
  if (info !== undefined && !usable) {
    const owner = info.uid === uid ? '' : `, owned by uid ${info.uid}`;
    const theirs = info.uid === 0 ? `root made it (sudo without -H keeps your HOME): sudo chown -R ${uid} ${dir}` : `it is uid ${info.uid}'s: run as that user`;
    return { reason: `you (uid ${uid}) may not read and write ${dir} (${errno}: mode ${modeText(info.mode)}${owner})`, hint: info.uid === uid ? fix : theirs };
  }
  const file = entry === undefined ? undefined : await lstat(entry).catch(() => undefined);
  if (file !== undefined && errno === 'EACCES') {
    return { reason: `you (uid ${uid}) may not read ${entry} (${errno}: mode ${modeText(file.mode)})`, hint: file.uid === uid ? `chmod 600 ${entry}` : `it is uid ${file.uid}'s: run as that user` };
  }
  // Allowed by its mode, refused all the same: an immutable attribute, a security module.
  return { reason: `(${errno})`, hint: `check ${dir}: its mode lets you in, something else refuses (lsattr, a security module)` };
}
