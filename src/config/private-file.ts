// The wrapper's own private files (the stored logins): read without following a link and checked
// on the open descriptor (so the checked file is the read file), written to a 0600 temp file
// created with O_EXCL|O_NOFOLLOW beside the target and renamed over it, so that a reader never
// sees half a file and a planted link is never written through.
import { constants, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { chmod, lstat, mkdir, open, rename, rm } from 'node:fs/promises';
import { replacementTemp } from '../replacement-temps.js';
import { syncDirectory } from '../sync-directory.js';

const { O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_WRONLY } = constants;

export type PrivateFileProblem =
  | { kind: 'not-private'; mode: number }
  | { kind: 'not-ours'; reason: string }
  /** Another user's file or directory: theirs to keep, not ours to remove (`sudo` keeping HOME). */
  | { kind: 'other-owner'; reason: string; owner: number };

export class PrivateFileError extends Error {
  constructor(readonly problem: PrivateFileProblem) {
    super(problem.kind);
  }
}

/**
 * What keeps a directory from holding our private files. Whoever may write it may rename or
 * remove the entries in it, whatever their own modes; one open to reads lists them.
 */
export type DirectoryProblem = { kind: 'not-directory'; link: boolean } | { kind: 'other-owner'; owner: number } | { kind: 'open'; mode: number };

export class PrivateDirectoryError extends Error {
  constructor(
    readonly dir: string,
    readonly problem: DirectoryProblem,
  ) {
    super(problem.kind);
  }
}

/**
 * What to do about a file of ours that another user owns. Root reading a user's file is sudo
 * keeping that user's HOME: theirs, never to be removed; a user reading root's file is what such
 * a sudo left behind in their HOME. The usual hint, remove it, was wrong for the first.
 */
export function otherOwnerHint(owner: number, ownHome: string, remove: string, redo: string): string {
  if (owner === 0) return `root made it (sudo without -H keeps your HOME): ${remove} as root, then ${redo}`;
  return `it is uid ${owner}'s: run as that user, or point HOME (sudo -H) or ${ownHome} at your own; do not remove it`;
}

/** The file's text, or undefined when there is none; refuses links, other owners, group/other access. */
export async function readPrivateFile(path: string, uid: number, maxBytes: number): Promise<string | undefined> {
  return (await readPrivateBytes(path, uid, maxBytes))?.toString('utf8');
}

/** As readPrivateFile, for binary files (the fallback cache). */
export async function readPrivateBytes(path: string, uid: number, maxBytes: number): Promise<Buffer | undefined> {
  let handle;
  try {
    // O_NONBLOCK: a named pipe put at this name would otherwise hold open(2) until a writer
    // comes, for ever; it is refused below like any file that is not a regular one.
    handle = await open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw new PrivateFileError({ kind: 'not-ours', reason: 'it is a symbolic link' });
    throw error;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new PrivateFileError({ kind: 'not-ours', reason: 'it is not a regular file' });
    if (uid >= 0 && info.uid !== uid) throw new PrivateFileError({ kind: 'other-owner', reason: `it is owned by uid ${info.uid}, not by you`, owner: info.uid });
    if ((info.mode & 0o077) !== 0) throw new PrivateFileError({ kind: 'not-private', mode: info.mode });
    if (info.size > maxBytes) throw new PrivateFileError({ kind: 'not-ours', reason: `it is larger than ${maxBytes} bytes` });
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/**
 * Makes the directory (0700) if missing; an existing one of ours is narrowed to 0700, since the
 * file's mode protects nothing if others may rename or replace entries beside it.
 */
export async function ensurePrivateDirectory(dir: string, uid: number): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await lstat(dir);
  const problem = directoryProblem(info, uid);
  if (problem !== undefined && problem.kind !== 'open') throw new PrivateDirectoryError(dir, problem);
  if (problem !== undefined) await chmod(dir, 0o700);
}

/**
 * Before a read: the directory as ensurePrivateDirectory leaves it (ours, 0700, not a link), or
 * none at all; anything else is a PrivateDirectoryError. A read does not narrow: what others
 * could do to the entries while it was open is done, and only its owner can tell.
 */
export async function checkPrivateDirectory(dir: string, uid: number): Promise<void> {
  const info = await lstat(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  const problem = info && directoryProblem(info, uid);
  if (problem !== undefined) throw new PrivateDirectoryError(dir, problem);
}

/** What keeps `info` from being a directory of ours; `open`: the mode bits that may not be set (0o022 for one only closed to writes). */
export function directoryProblem(info: Stats, uid: number, open = 0o077): DirectoryProblem | undefined {
  if (!info.isDirectory()) return { kind: 'not-directory', link: info.isSymbolicLink() };
  if (uid >= 0 && info.uid !== uid) return { kind: 'other-owner', owner: info.uid };
  if ((info.mode & open) !== 0) return { kind: 'open', mode: info.mode };
  return undefined;
}

/** Replaces `path` with `text`: a 0600 temp file in the same directory, fsync, rename. */
export async function writePrivateFile(path: string, text: string | Uint8Array): Promise<void> {
  const temp = replacementTemp(path);
  try {
    const handle = await open(temp, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY, 0o600);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  // A queued offline use is the only record of its run, a login the only copy of its key.
  await syncDirectory(dirname(path));
}
