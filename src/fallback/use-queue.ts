// Runs served from the cache, kept until the vault hears of them (`secret.offline_use` rows).
// One 0600 file per use in a 0700 directory beside the cache: written by temp file and rename,
// so a crash leaves either the whole entry or none, and concurrent runs never share a file. A
// reporter claims an entry by renaming it to `<entry>.sending-<pid>` (one rename wins), deletes it
// once the vault stored it, and gives back the claims of reporters that died: at least once,
// never lost.
import { randomBytes } from 'node:crypto';
import { lstat, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { checkPrivateDirectory, ensurePrivateDirectory, otherOwnerHint, PrivateDirectoryError, PrivateFileError, readPrivateFile, writePrivateFile } from '../config/private-file.js';
import { FallbackError } from '../errors.js';
import type { CacheDirectoryKind } from './cache-directory.js';
import { modeText } from '../local-file.js';
import { isValidName } from '../names.js';

export interface OfflineUse {
  subject: string;
  environment: string;
  keys: string[];
  /** ISO 8601 UTC. */
  used_at: string;
}

const ENTRY = /^(\d{13})-(\d{1,10})-([0-9a-f]{12})\.json$/;
const CLAIMED = /^(\d{13}-\d{1,10}-[0-9a-f]{12}\.json)\.sending-(\d{1,10})$/;
/** An entry being written: `replacementTemp`'s name, with its writer's pid. */
const WRITING = /^\.\d{13}-\d{1,10}-[0-9a-f]{12}\.json\.(\d{1,10})\.[0-9a-f]{12}\.tmp$/;
const MAX_ENTRY_BYTES = 64 * 1024;
/** Every name the queue writes in its directory: entries, claimed entries, temp files of a write. */
export function isQueueFile(name: string): boolean {
  return ENTRY.test(name) || CLAIMED.test(name) || WRITING.test(name);
}
export interface ReportOutcome {
  sent: number;
  dropped: number;
  /** Refused by the vault for good (400, 403, 404): removed, so they block nothing. */
  refused: number;
  left: number;
  /** The vault did not store one: the rest wait for the next run. */
  failure?: unknown;
  /** The queue's directory refused a claim, a give-back or a removal (EACCES in a 0500 one): the rest stay queued. */
  blocked?: unknown;
  /** The entry it failed on, when one did (unreadable, or not removable): named by the warning. */
  blockedPath?: string;
}

/** Far longer than one report (a request's timeout times its attempts): a claim this old is abandoned. */
const STALE_CLAIM_MS = 15 * 60 * 1000;

/** Sent per successful run; the rest wait for the next one. */
export const MAX_REPORTED_PER_RUN = 100;

export class UseQueue {
  constructor(
    readonly dir: string,
    readonly uid: number,
    /** 'chosen': beside a --fallback=PATH copy, where XDG_STATE_HOME changes nothing. */
    private readonly place: CacheDirectoryKind = 'default',
  ) {}

  async add(use: OfflineUse, now: Date): Promise<void> {
    await ensurePrivateDirectory(this.dir, this.uid).catch((error: unknown) => {
      throw error instanceof PrivateDirectoryError ? this.refusal(error) : error;
    });
    const name = `${String(now.getTime()).padStart(13, '0')}-${process.pid}-${randomBytes(6).toString('hex')}.json`;
    await writePrivateFile(join(this.dir, name), `${JSON.stringify(use)}\n`);
  }

  /**
   * Sends the oldest entries through `send` (which throws when the vault did not store one), at
   * most MAX_REPORTED_PER_RUN; stops at the first failure (returned as `failure`) and leaves the
   * rest queued. Says how many were reported, dropped as malformed, and left waiting.
   */
  async report(send: (use: OfflineUse) => Promise<void>, isAlive: (pid: number) => boolean, refusedForGood: (failure: unknown) => boolean = () => false): Promise<ReportOutcome> {
    // As add leaves it, or refused unread (RWS_FALLBACK_UNSAFE): whoever may write it may have
    // removed uses before the vault heard of them, or renamed claims and entries about.
    await checkPrivateDirectory(this.dir, this.uid).catch((error: unknown) => {
      throw error instanceof PrivateDirectoryError ? this.refusal(error) : error;
    });
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { sent: 0, dropped: 0, refused: 0, left: 0 };
      throw error;
    }
    for (const name of names) {
      // A writer killed before its rename (SIGKILL runs no cleanup) left its temp file: that run
      // never started its child, so there is no use in it to report, only litter to sweep.
      const temp = WRITING.exec(name);
      if (temp !== null && Number(temp[1]) !== process.pid && !isAlive(Number(temp[1]))) await rm(join(this.dir, name), { force: true }).catch(() => undefined);
      const claimed = CLAIMED.exec(name);
      if (!claimed || !(await this.abandoned(name, Number(claimed[2]), isAlive))) continue;
      const blocked = await settled(rename(join(this.dir, name), join(this.dir, claimed[1]!)));
      if (blocked !== undefined) return { sent: 0, dropped: 0, refused: 0, left: names.filter(isQueuedUse).length, blocked };
    }
    const entries = (await readdir(this.dir)).filter((name) => ENTRY.test(name)).sort();
    let sent = 0;
    let dropped = 0;
    let refused = 0;
    const left = () => Math.max(0, entries.length - sent - dropped - refused);
    for (const name of entries.slice(0, MAX_REPORTED_PER_RUN)) {
      const path = join(this.dir, name);
      const mine = `${path}.sending-${process.pid}`;
      // Only a lost race is no failure: the same rename refused by the directory (EACCES in a
      // 0500 one) would leave every use unreported, run after run, and must be said.
      const claim = await rename(path, mine).then(
        () => 'claimed' as const,
        (error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? ('taken' as const) : error),
      );
      if (claim === 'taken') continue;
      if (claim !== 'claimed') return { sent, dropped, refused, left: left(), blocked: claim };
      const use = await this.readEntry(mine);
      if (use instanceof Unread) {
        await rename(mine, path).catch(() => undefined);
        return { sent, dropped, refused, left: left(), blocked: use.error, blockedPath: path };
      }
      let failure: unknown;
      if (use !== undefined) failure = await send(use).then(() => undefined, (error: unknown) => error ?? new Error('report failed'));
      // An entry the vault will never take (a date outside its window, a grant it no longer
      // holds) must not block every later one: it is dropped and counted, and the rest go on.
      if (failure !== undefined && !refusedForGood(failure)) {
        await rename(mine, path).catch(() => undefined);
        return { sent, dropped, refused, left: left(), failure };
      }
      const blocked = await settled(rm(mine, { force: true }));
      if (blocked !== undefined) {
        // Given back under its own name, which the warning names: a use already sent is sent again
        // by a later run, twice, never lost.
        await rename(mine, path).catch(() => undefined);
        return { sent, dropped, refused, left: left(), blocked, blockedPath: path };
      }
      if (use === undefined) dropped++;
      else if (failure !== undefined) refused++;
      else sent++;
    }
    return { sent, dropped, refused, left: left() };
  }

  /**
   * A claim whose reporter is gone. A pid names a process only while it lives: in a container the
   * wrapper is the same pid at every run, so a claim with our own pid was made by a predecessor
   * (this run claims nothing before this check), and a live pid holding a claim older than any
   * one report can take is another process that got the number. A claim given back too soon is
   * at worst reported twice, which is allowed; one never given back is lost.
   */
  private async abandoned(name: string, pid: number, isAlive: (pid: number) => boolean): Promise<boolean> {
    if (pid === process.pid || !isAlive(pid)) return true;
    // rename sets the ctime: it is the moment of the claim.
    const claimedAt = (await lstat(join(this.dir, name)).catch(() => undefined))?.ctimeMs;
    return claimedAt !== undefined && Date.now() - claimedAt > STALE_CLAIM_MS;
  }

  private refusal({ problem }: PrivateDirectoryError): FallbackError {
    const { dir, uid } = this;
    let reason: string;
    let hint: string;
    if (problem.kind === 'open') {
      reason = `it is open to group or others (mode ${modeText(problem.mode)})`;
      hint = `chmod 700 ${dir}: uses are queued 0600 in a 0700 directory (a run from the copy narrows it too)`;
    } else if (problem.kind === 'not-directory') {
      reason = problem.link ? 'it is a symbolic link, not a directory' : 'it is not a directory';
      hint = `rm ${dir} (a link goes without its target); a run from the copy makes it again`;
    } else {
      reason = `it is owned by uid ${problem.owner}, not by you (uid ${uid})`;
      // Root's queue in a user's HOME (sudo without -H): the uses are the user's runs, to be reported.
      if (this.place === 'default') hint = otherOwnerHint(problem.owner, 'XDG_STATE_HOME', `chown -R ${uid} ${dir}`, 'run again');
      // Beside a PATH both ran with: root's was left by a run as root, and the uses are of this key.
      else if (problem.owner === 0) hint = `root made it (a run as root with this --fallback=PATH): sudo chown -R ${uid} ${dir}, then run again`;
      else hint = `it is uid ${problem.owner}'s: run as that user, or give --fallback=PATH in a directory of yours; do not remove it`;
    }
    return new FallbackError('RWS_FALLBACK_UNSAFE', `the offline-use queue ${dir} is refused: ${reason}`, hint);
  }

  /** Entries waiting (claimed ones included); 0 without a queue, and throws when it cannot be listed. */
  async count(): Promise<number> {
    try {
      return (await readdir(this.dir)).filter(isQueuedUse).length;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw error;
    }
  }

  /** The use; undefined when the entry is not one (dropped); Unread when it could not be read (kept). */
  private async readEntry(path: string): Promise<OfflineUse | undefined | Unread> {
    let text: string | undefined;
    try {
      text = await readPrivateFile(path, this.uid, MAX_ENTRY_BYTES);
    } catch (error) {
      // A link, a special file, another mode: not an entry add wrote. An errno (EACCES on an
      // entry chmod 000) says nothing of what it holds: dropped, a use would be lost unheard of.
      if (error instanceof PrivateFileError) return undefined;
      return new Unread(error);
    }
    try {
      return parseUse(JSON.parse(text ?? ''));
    } catch {
      return undefined;
    }
  }
}

class Unread {
  constructor(readonly error: unknown) {}
}

/** A use waiting in the queue, claimed or not. */
export function isQueuedUse(name: string): boolean {
  return ENTRY.test(name) || CLAIMED.test(name);
}

/** The failure of an operation on the queue's directory, or undefined; a name gone (ENOENT) is another reporter's doing. */
async function settled(work: Promise<unknown>): Promise<unknown> {
  try {
    await work;
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : error;
  }
}

/** An entry as written by `add`, or undefined (hand-edited, truncated, or not ours). */
export function parseUse(value: unknown): OfflineUse | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { subject, environment, keys, used_at: usedAt, ...rest } = value as Record<string, unknown>;
  if (Object.keys(rest).length > 0) return undefined;
  // The vault's grammar for a subject, in code points: counted in UTF-16 units, a subject of emoji
  // the vault accepts would be dropped here as malformed, and its use never audited. Half an emoji
  // (a lone surrogate, from an entry edited or cut by hand) is never sent: the vault refuses it.
  if (typeof subject !== 'string' || !/^[^\p{Cc}\p{Cs}]{1,256}$/u.test(subject)) return undefined;
  if (typeof environment !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(environment)) return undefined;
  if (!Array.isArray(keys) || keys.length > 1000 || !keys.every((key) => typeof key === 'string' && isValidName(key))) return undefined;
  if (typeof usedAt !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(usedAt) || Number.isNaN(Date.parse(usedAt))) return undefined;
  return { subject, environment, keys: keys as string[], used_at: usedAt };
}
