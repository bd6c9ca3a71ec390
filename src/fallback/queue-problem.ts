// Why the offline-use queue could not be worked through, and the fix, for the warning a run that
// reached the vault gives instead of failing (it has its secrets; failing it would report nothing
// either). Uses left queued without a word would stay unaudited for ever, so every failure is
// said; only a claim another reporter won (ENOENT) is not a failure at all.
import { constants } from 'node:fs';
import { access, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { findBlocker } from '../blocked-path.js';
import { modeText } from '../local-file.js';

export interface QueueProblem {
  reason: string;
  hint: string;
}

/** `entry`: the entry that could not be removed, when that was what failed. */
export async function queueProblem(dir: string, uid: number, error: unknown, entry?: string): Promise<QueueProblem> {
  const code = (error as { code?: unknown }).code;
  const errno = typeof code === 'string' && /^[A-Z0-9_]{1,32}$/.test(code) ? code : 'error';
  // Node's rm refuses a directory itself (ERR_FS_EISDIR): one by an entry's name was put there by hand.
  if (entry !== undefined && (errno === 'ERR_FS_EISDIR' || errno === 'EISDIR')) return { reason: `${entry} is a directory, not an entry the queue wrote (${errno})`, hint: `move it out of ${dir}` };
  if (errno === 'EROFS') return { reason: `it is on a read-only file system (${errno})`, hint: 'an online run on a host where it is writable reports them' };
  if (errno !== 'EACCES' && errno !== 'EPERM' && errno !== 'ENOTDIR') return { reason: `(${errno})`, hint: `check ${dir} and the directories above it` };
  // The queue's directory itself is the last ancestor findBlocker looks at.
  const blocker = await findBlocker(join(dir, 'entry'));
  if (blocker?.kind === 'not-directory') return { reason: `${blocker.path} is not a directory (${errno})`, hint: `move ${blocker.path} aside` };
  if (blocker !== undefined) {
    const reason = `you (uid ${uid}) may not enter ${blocker.path} (${errno}: mode ${modeText(blocker.mode)}, owned by uid ${blocker.owner})`;
    return { reason, hint: blocker.owner === uid ? `chmod u+x ${blocker.path}` : `have uid ${blocker.owner} let you into ${blocker.path}` };
  }
  const info = await lstat(dir).catch(() => undefined);
  // Renaming an entry to claim it, and removing it once sent, are writes to the directory.
  const usable = await access(dir, constants.R_OK | constants.W_OK | constants.X_OK).then(
    () => true,
    () => false,
  );
  if (info !== undefined && !usable) {
    const reason = `you (uid ${uid}) may not read and write it (${errno}: mode ${modeText(info.mode)})`;
    return { reason, hint: info.uid === uid ? `chmod 700 ${dir}` : `it is uid ${info.uid}'s: run as that user` };
  }
  // Allowed by its mode, refused all the same: an immutable attribute, a security module.
  return { reason: `(${errno})`, hint: `check ${dir}: its mode lets you in, something else refuses (lsattr, a security module)` };
}
