// Where a fallback cache lives and how it is read, written and removed. The default place is
// $XDG_STATE_HOME/run-with-secrets/fallback/<digest>.bin (0700 directory, 0600 file): the digest
// covers the vault URL, environment, selection and API key fingerprint, so each job has its own
// file. Reads never follow a link and check the open descriptor; writes go to a temp file created
// O_EXCL|O_NOFOLLOW and renamed over the target, so concurrent runs leave one whole file.
import { createHash } from 'node:crypto';
import { lstat, open, readdir, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { processIsAlive } from '../inject/placement.js';
import { FallbackError } from '../errors.js';
import { otherOwnerHint, PrivateFileError, readPrivateBytes, writePrivateFile } from '../config/private-file.js';
import { removeLeftoverTemps } from '../replacement-temps.js';
import { modeText } from '../local-file.js';
import { checkCacheDirectory, prepareCacheDirectory, unreachable } from './cache-directory.js';
import { CacheFormatProblem, type CacheMetadata, type CacheSelection, FORMAT_VERSION, openCache, peekMetadata, sealCache } from './cache-format.js';

/** A cache of a few thousand secrets is far below this; anything larger is not ours. */
const MAX_CACHE_BYTES = 16 * 1024 * 1024;
/** How far ahead of its 401 a refused mark is dated (see markRefused). */
const MARK_MARGIN_MS = 1000;
/** The names cacheFileName gives in the default place. */
const DEFAULT_CACHE_NAME = /^[0-9a-f]{32}\.bin$/;

export interface CacheIdentity {
  url: string;
  environment: string;
  selection: CacheSelection;
  /** keyFingerprint(apiKey). */
  keyId: string;
}

/**
 * Names the API key in the clear metadata and the file name without revealing it: a one-way
 * digest of a 128-bit random key. The server's own key id is not known to the client offline.
 */
export function keyFingerprint(apiKey: string): string {
  return createHash('sha256').update('run-with-secrets fallback key id\0').update(apiKey, 'utf8').digest('hex').slice(0, 32);
}

/** The same job must find the same file whatever the order of its -k and --key flags. */
export function normalSelection(patterns: readonly string[], keys: readonly string[]): CacheSelection {
  return { patterns: [...new Set(patterns)].sort(), keys: [...new Set(keys)].sort() };
}

/** $XDG_STATE_HOME/run-with-secrets/fallback, or ~/.local/state/…; undefined with neither set. */
export function defaultCacheDir(env: Readonly<Record<string, string | undefined>>): string | undefined {
  // As for XDG_CONFIG_HOME: a relative XDG_STATE_HOME is invalid and ignored.
  const xdg = env.XDG_STATE_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : env.HOME ? join(env.HOME, '.local', 'state') : undefined;
  return base === undefined ? undefined : join(base, 'run-with-secrets', 'fallback');
}

export function cacheFileName(identity: CacheIdentity): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([FORMAT_VERSION, identity.url, identity.environment, identity.selection.patterns, identity.selection.keys, identity.keyId]))
    .digest('hex')
    .slice(0, 32);
  return `${digest}.bin`;
}

export class CacheFile {
  /** `ownsDirectory`: the default place, held to its own rule (cache-directory.ts). */
  constructor(
    readonly path: string,
    private readonly uid: number,
    private readonly ownsDirectory = true,
  ) {}

  /** The authenticated metadata and secrets, after the checks of a private file; undefined when there is none. */
  async read(apiKey: string, identity: CacheIdentity): Promise<{ metadata: CacheMetadata; secrets: Map<string, string> } | undefined> {
    // Before the file: a copy in a directory others may change is refused unread, and no use of it queued.
    await this.checkDirectory();
    let bytes: Buffer | undefined;
    try {
      bytes = await readPrivateBytes(this.path, this.uid, MAX_CACHE_BYTES);
    } catch (error) {
      // EACCES here: a directory of ours we may not search (mode 600), or a copy we may not read.
      throw await unreachable(this.path, this.uid, this.directoryKind, this.unsafe(error));
    }
    if (bytes === undefined) return undefined;
    let opened;
    try {
      opened = openCache(bytes, apiKey);
    } catch (error) {
      if (!(error instanceof CacheFormatProblem)) throw error;
      throw this.invalid(error.message);
    } finally {
      bytes.fill(0);
    }
    const { metadata } = opened;
    // A file copied or renamed from another job (or made for another key) opens, but is not this job's.
    const same =
      metadata.url === identity.url &&
      metadata.environment === identity.environment &&
      metadata.key_id === identity.keyId &&
      JSON.stringify(metadata.selection) === JSON.stringify(identity.selection);
    if (!same) throw this.invalid('it was written for another vault URL, environment, selection or API key');
    return opened;
  }

  /**
   * 'refused': not kept, since a 401 in another run refused the key on this host (refusedMark)
   * at or after `askedAt`, the moment (this host's clock, ms) this run began asking the vault.
   */
  async write(metadata: CacheMetadata, secrets: ReadonlyMap<string, string>, apiKey: string, askedAt: number): Promise<'written' | 'refused'> {
    await prepareCacheDirectory(this.path, this.uid, this.directoryKind).catch(async (error: unknown) => {
      throw await unreachable(this.path, this.uid, this.directoryKind, error);
    });
    await removeLeftoverTemps(this.path, processIsAlive);
    const refused = () => this.ownsDirectory && keyRefusedSince(dirname(this.path), metadata.url, metadata.key_id, askedAt);
    if (await refused()) return 'refused';
    const sealed = sealCache(metadata, secrets, apiKey);
    try {
      await writePrivateFile(this.path, sealed);
    } finally {
      sealed.fill(0);
    }
    // Looked at again once the copy is in place: a 401 heard by another run while this one wrote
    // marked the key before it removed the copies, so either it removed this copy or this finds
    // its mark (refusedMark).
    if (await refused()) {
      await this.remove();
      return 'refused';
    }
    return 'written';
  }

  /** Before a read of the copy or of the uses queued beside it: RWS_FALLBACK_UNSAFE unless the directory is as writes keep it. */
  async checkDirectory(): Promise<void> {
    await checkCacheDirectory(this.path, this.uid, this.directoryKind);
  }

  private get directoryKind(): 'default' | 'chosen' {
    return this.ownsDirectory ? 'default' : 'chosen';
  }

  /** Gone whatever it was (a link is removed, never followed); true when something was there. */
  async remove(): Promise<boolean> {
    try {
      await rm(this.path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
  }

  invalid(reason: string): FallbackError {
    return new FallbackError('RWS_FALLBACK_INVALID', `the fallback cache ${this.path} is refused: ${reason}`, 'nothing else was tried; a successful online run rewrites it, or remove it with run-with-secrets fallback clean');
  }

  private unsafe(error: unknown): unknown {
    if (!(error instanceof PrivateFileError)) return error;
    const problem = error.problem;
    const reason = problem.kind === 'not-private' ? `group or others may access it (mode ${modeText(problem.mode)})` : problem.reason;
    // Another user's copy (sudo keeping HOME): fallback clean would remove it, and the uses it
    // queued that their vault has not heard of yet.
    const hint =
      problem.kind === 'other-owner'
        ? otherOwnerHint(problem.owner, 'XDG_STATE_HOME', 'remove it (run-with-secrets fallback clean)', 'let a --fallback run write it again')
        : problem.kind === 'not-private'
          ? `chmod 600 ${this.path}: a copy is kept 0600 (it is sealed with the API key, useless without it)`
          : 'a cache file must be a regular file of yours with mode 0600; remove it (run-with-secrets fallback clean) and let a successful run write a new one';
    return new FallbackError('RWS_FALLBACK_UNSAFE', `the fallback cache ${this.path} is refused: ${reason}`, hint);
  }
}

/**
 * The mark a 401 leaves in the default place for the API key it refused at one vault URL: an empty
 * `<digest>.refused`, named by a digest of both, never by the key, and dated (its mtime) by the
 * latest 401. A run that fetched just before the revocation writes its copy a moment later, and
 * could write it after another run's 401 had removed every copy: so the mark comes first, and
 * every write looks for it before and after (CacheFile.write). Only a mark dated after the writer
 * began asking counts: a vault that accepted the key since has the last word. Undated, one
 * mistaken 401 (a row the admin then repaired, a 401 taken for the key's) kept every later copy of
 * a good key from being written on this host, for ever. The mark holds no secret and stays.
 * A 401 from a wrong URL marks only that URL.
 */
function refusedMark(dir: string, url: string, keyId: string): string {
  const digest = createHash('sha256').update(JSON.stringify(['refused', url, keyId])).digest('hex').slice(0, 32);
  return join(dir, `${digest}.refused`);
}

async function markRefused(dir: string, url: string, keyId: string): Promise<void> {
  try {
    const handle = await open(refusedMark(dir, url, keyId), constants.O_CREAT | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600);
    try {
      // Dated a little ahead: a file system that keeps whole seconds (FAT, some network mounts)
      // would round the date down, before a writer that began asking just ahead of this 401.
      const dated = new Date(Date.now() + MARK_MARGIN_MS);
      await handle.utimes(dated, dated);
    } finally {
      await handle.close();
    }
  } catch (error) {
    // No directory: no copy to remove. Any other failure leaves only the race above open.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw error;
  }
}

async function keyRefusedSince(dir: string, url: string, keyId: string, since: number): Promise<boolean> {
  const mark = await lstat(refusedMark(dir, url, keyId)).catch(() => undefined);
  return mark !== undefined && mark.mtimeMs >= since;
}

/**
 * Every copy in `dir` (the default place) made with the API key of fingerprint `keyId`, judged by
 * the clear metadata (a revoked key opens nothing anyway); the paths removed. Files that are not
 * private copies of ours are left alone, as a read would refuse them. A copy of the key that
 * cannot be removed is an error, raised once the others are gone: it could still serve the
 * revoked key's secrets offline, and the run must say so.
 */
export async function removeKeyCopies(dir: string, uid: number, url: string, keyId: string): Promise<string[]> {
  let names: string[];
  try {
    await markRefused(dir, url, keyId);
    names = await readdir(dir);
  } catch (error) {
    // A file where a directory is needed (HOME a file) holds no copy either.
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw error;
  }
  const removed: string[] = [];
  let failure: unknown;
  for (const name of names) {
    const path = join(dir, name);
    if (!DEFAULT_CACHE_NAME.test(name)) continue;
    let keyOf: string;
    try {
      const bytes = await readPrivateBytes(path, uid, MAX_CACHE_BYTES);
      if (bytes === undefined) continue;
      keyOf = peekMetadata(bytes).key_id;
    } catch (error) {
      // Not a copy of ours (a read refuses it: another's, a link, damaged, another version's); but
      // one that cannot be opened (a directory we may not enter, 0600) may be the key's, and serve
      // it again once the directory is opened.
      if (!(error instanceof PrivateFileError || error instanceof CacheFormatProblem)) failure ??= error;
      continue;
    }
    if (keyOf !== keyId) continue;
    try {
      await rm(path);
      removed.push(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') failure ??= error;
    }
  }
  if (failure !== undefined) throw failure;
  return removed;
}
