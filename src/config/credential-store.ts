// The API keys `run-with-secrets login` stored: $XDG_CONFIG_HOME/run-with-secrets/credentials.yaml
// (~/.config/…), one entry per vault URL and profile, plaintext protected by the file's mode
// (0600, in a 0700 directory), as `aws` and `vault` keep theirs. Only this module reads or writes
// it, and it accepts exactly what it writes: a hand-edited file of any other shape is refused.
// Loaded only when a run has no other credential, or by login/logout/whoami.
import { constants } from 'node:fs';
import { link, lstat, open, rename, rm } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { CredentialError } from '../errors.js';
import { modeText } from '../local-file.js';
import { findBlocker, leftByRoot, leftByRootHint } from '../blocked-path.js';
import { checkPrivateDirectory, ensurePrivateDirectory, otherOwnerHint, PrivateDirectoryError, PrivateFileError, readPrivateFile, writePrivateFile } from './private-file.js';
import { processIsRunning } from '../inject/placement.js';
import { leftoverTemps, removeLeftoverTemps, replacementTemp } from '../replacement-temps.js';

export interface StoredLogin {
  vault_url: string;
  profile: string;
  api_key: string;
  key_id: string;
  key_name: string;
  environments: string[];
  key_patterns: string[];
  expires_at: string | null;
  admin: boolean;
  stored_at: string;
}

export const DEFAULT_PROFILE = 'default';
const FORMAT_VERSION = 1;
const MAX_BYTES = 1024 * 1024;
const FIELDS = ['vault_url', 'profile', 'api_key', 'key_id', 'key_name', 'environments', 'key_patterns', 'expires_at', 'admin', 'stored_at'] as const;
const API_KEY = /^rws_sk_[0-9a-f]{32}$/;
const KEY_ID = /^[A-Za-z0-9_-]{1,128}$/;
const PROFILE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** A key's name as the vault gave it (vault-client/responses.ts): shown only through printable(). */
const DISPLAY_TEXT = /^[^\p{Cc}\p{Cs}]{1,256}$/u;
const ENVIRONMENT = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const PATTERN = /^[A-Za-z0-9_*?]{1,256}$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
/** A lock is held for one read and one write; one this old was left by a login that was killed. */
const STALE_LOCK_MS = 10_000;
/** Longer than STALE_LOCK_MS, so that a waiter always outlives a lock left behind. */
const LOCK_WAIT_MS = 15_000;
const HEADER = '# Written by `run-with-secrets login`; edit with login and logout only.\n# API keys in plaintext, protected by this file\'s mode (0600): keep it so.\n';

/** Where the stored logins live; undefined with neither XDG_CONFIG_HOME nor HOME. */
export function credentialsPath(env: Readonly<Record<string, string | undefined>>): string | undefined {
  // The XDG spec: a relative XDG_CONFIG_HOME is invalid and must be ignored.
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : env.HOME ? join(env.HOME, '.config') : undefined;
  return base === undefined ? undefined : join(base, 'run-with-secrets', 'credentials.yaml');
}

/**
 * The form a vault URL is stored under, so that `https://Vault:443/` and `https://vault` find the
 * same key: scheme, lower-case host, port unless the default, path prefix without trailing slash.
 */
export function vaultUrlKey(raw: string): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password || url.search || url.hash) return undefined;
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

export function validProfile(profile: string): boolean {
  return PROFILE.test(profile);
}

/**
 * The logins in `path`, after the checks of its directory and of the file. `beforeWrite`: a login
 * or logout looking before it writes, whose write narrows an open directory of ours to 0700
 * (under the lock, before its own read): only what that write refuses is refused.
 */
export async function readLogins(path: string, uid: number, beforeWrite = false): Promise<StoredLogin[]> {
  let text: string | undefined;
  try {
    // A directory that holds no logins refuses nothing: a run without a credential says so, and
    // not that ~/.config/run-with-secrets (made 0755 for config.yaml) is open.
    if (await present(path)) await checkLoginDirectory(dirname(path), uid, beforeWrite);
    text = await readPrivateFile(path, uid, MAX_BYTES);
  } catch (error) {
    throw await storeProblem(error, path, uid);
  }
  return text === undefined ? [] : parseLogins(text, path);
}

/** Whoever may write the directory may remove the file, or rename another of ours over it. */
async function checkLoginDirectory(dir: string, uid: number, beforeWrite: boolean): Promise<void> {
  try {
    await checkPrivateDirectory(dir, uid);
  } catch (error) {
    if (!(beforeWrite && error instanceof PrivateDirectoryError && error.problem.kind === 'open')) throw error;
  }
}

/** Anything but ENOENT counts as there: the checks say what is wrong with it. */
async function present(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    (error: NodeJS.ErrnoException) => error.code !== 'ENOENT',
  );
}

export async function writeLogins(path: string, uid: number, logins: readonly StoredLogin[]): Promise<void> {
  const { stringify } = await import('yaml');
  // No anchors for lists two entries share: the reader refuses aliases.
  const body = stringify({ version: FORMAT_VERSION, credentials: logins.map((login) => Object.fromEntries(FIELDS.map((field) => [field, login[field]]))) }, { aliasDuplicateObjects: false });
  try {
    await ensurePrivateDirectory(dirname(path), uid);
    await writePrivateFile(path, HEADER + body);
  } catch (error) {
    throw await storeProblem(error, path, uid);
  }
}

/** logout --all: the file, the temp files of logins killed while writing (each holds a key), and a lock left behind. */
export async function removeLogins(path: string, uid: number): Promise<void> {
  try {
    await rm(path, { force: true });
    await removeLeftoverTemps(path, () => false, true);
    await removeLeftoverTemps(`${path}.lock`, () => false, true);
    await rm(`${path}.lock`, { force: true });
  } catch (error) {
    // The way out of a refused store must say what keeps it (a directory root made), not RWS_INTERNAL.
    throw await storeProblem(error, path, uid);
  }
}

/**
 * Reads the stored logins, changes them and writes them (or removes the file when none is left)
 * while holding `<path>.lock`: without it, two logins at once (or a login and a logout) each
 * wrote what they had read, and the one renamed first was lost though it said "key stored".
 */
export async function updateLogins(path: string, uid: number, change: (logins: StoredLogin[]) => StoredLogin[]): Promise<void> {
  const release = await lockLogins(path, uid);
  try {
    // A login killed before its rename left its temp file, with the key in it: under the lock,
    // none of them is being written.
    await removeLeftoverTemps(path, () => false, true);
    const next = change(await readLogins(path, uid));
    if (next.length > 0) await writeLogins(path, uid, next);
    else await rm(path, { force: true });
  } finally {
    await release();
  }
}

async function lockLogins(path: string, uid: number): Promise<() => Promise<void>> {
  const lock = `${path}.lock`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  try {
    await ensurePrivateDirectory(dirname(path), uid);
  } catch (error) {
    throw await storeProblem(error, path, uid);
  }
  for (;;) {
    await restoreAbandoned(lock);
    try {
      await (await open(lock, constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_WRONLY, 0o600)).close();
      return () => rm(lock, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw await storeProblem(error, path, uid);
    }
    const since = (await lstat(lock).catch(() => undefined))?.mtimeMs;
    if (since !== undefined && Date.now() - since > STALE_LOCK_MS) {
      await takeOverStale(lock);
      continue;
    }
    if (Date.now() > deadline) throw new CredentialError('RWS_CREDENTIAL_STORE_BUSY', `the stored logins ${path} are being changed by another login or logout (${lock} exists)`, `try again; if no login or logout is running, remove ${lock}`);
    await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 30));
  }
}

/**
 * Removes a lock left by a killed login or logout. Two waiters can find it stale at once: had
 * each simply removed it, the second could remove the lock the first had just taken, and both
 * would write (one swept the other's temp file, or renamed over its write). So the lock is moved
 * aside under a name of this process's own, and what was moved is looked at: still stale, it is
 * removed; taken since (fresh), it goes back, by `link`, which never replaces a lock a third
 * waiter took meanwhile, and this one waits for its holder. A lock put back after its holder let
 * go is stale in 10 s, within every waiter's 15. Only three at once, with a third taking the lock
 * in the moment it was aside, could still both hold it.
 */
async function takeOverStale(lock: string): Promise<void> {
  const aside = replacementTemp(lock);
  try {
    await rename(lock, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw await storeProblem(error, lock);
  }
  try {
    const moved = await lstat(aside);
    if (Date.now() - moved.mtimeMs <= STALE_LOCK_MS) await link(aside, lock).catch(() => undefined);
  } finally {
    await rm(aside, { force: true });
  }
}

/**
 * A takeover killed between its move aside and its putting back (SIGKILL, or a Ctrl-C: a login
 * has no handler for it) leaves what it moved under its own name: when that was the lock of a
 * live holder, no lock is left while the holder writes, and the next login would take one and
 * write too (sweeping the holder's temp file, or renaming over its write). So before each try,
 * what a dead taker moved aside is put back while it is fresh, its holder maybe still writing
 * (a link, which never replaces a lock taken since), and removed either way. A pid reused since
 * hides a dead taker: the race is then as before, as narrow as the takeover itself.
 */
async function restoreAbandoned(lock: string): Promise<void> {
  for (const aside of await leftoverTemps(lock, processIsRunning)) {
    const moved = await lstat(aside).catch(() => undefined);
    if (moved !== undefined && Date.now() - moved.mtimeMs <= STALE_LOCK_MS) await link(aside, lock).catch(() => undefined);
    await rm(aside, { force: true });
  }
}

export function findLogin(logins: readonly StoredLogin[], vaultUrl: string, profile: string): StoredLogin | undefined {
  return logins.find((login) => login.vault_url === vaultUrl && login.profile === profile);
}

async function parseLogins(text: string, path: string): Promise<StoredLogin[]> {
  const { parseDocument } = await import('yaml');
  const invalid = (what: string): CredentialError =>
    new CredentialError('RWS_CREDENTIAL_STORE_INVALID', `${path} is not a file run-with-secrets login wrote: ${what}`, `run-with-secrets logout --all removes it; then log in again`);
  let raw: unknown;
  try {
    // No aliases, tags or duplicate keys: what we write has none.
    const doc = parseDocument(text, { schema: 'core', uniqueKeys: true, logLevel: 'silent' });
    if (doc.errors.length > 0 || doc.warnings.length > 0) throw new Error('not valid YAML');
    raw = doc.toJS({ maxAliasCount: 0 });
  } catch {
    throw invalid('not valid YAML');
  }
  if (!isPlainObject(raw) || !sameKeys(raw, ['version', 'credentials'])) throw invalid('the top level must hold exactly version and credentials');
  if (raw.version !== FORMAT_VERSION) throw invalid(`version must be ${FORMAT_VERSION}`);
  if (!Array.isArray(raw.credentials)) throw invalid('credentials must be a list');
  const seen = new Set<string>();
  return raw.credentials.map((entry: unknown, index: number) => {
    const where = `entry ${index + 1}`;
    if (!isPlainObject(entry) || !sameKeys(entry, FIELDS)) throw invalid(`${where} must hold exactly ${FIELDS.join(', ')}`);
    const { vault_url, profile, api_key, key_id, key_name, environments, key_patterns, expires_at, admin, stored_at } = entry;
    if (typeof vault_url !== 'string' || vaultUrlKey(vault_url) !== vault_url) throw invalid(`${where}: vault_url is not a vault URL in stored form`);
    if (typeof profile !== 'string' || !PROFILE.test(profile)) throw invalid(`${where}: profile is not a profile name`);
    // Never quoted: it is the secret.
    if (typeof api_key !== 'string' || !API_KEY.test(api_key)) throw invalid(`${where}: api_key is not an API key`);
    if (typeof key_id !== 'string' || !KEY_ID.test(key_id)) throw invalid(`${where}: key_id is not a key id`);
    if (typeof key_name !== 'string' || !DISPLAY_TEXT.test(key_name)) throw invalid(`${where}: key_name is not printable text`);
    if (!isList(environments, ENVIRONMENT)) throw invalid(`${where}: environments is not a list of environment names`);
    if (!isList(key_patterns, PATTERN)) throw invalid(`${where}: key_patterns is not a list of patterns`);
    if (expires_at !== null && !isDate(expires_at)) throw invalid(`${where}: expires_at is neither null nor a UTC ISO 8601 time`);
    if (typeof admin !== 'boolean') throw invalid(`${where}: admin is not true or false`);
    if (!isDate(stored_at)) throw invalid(`${where}: stored_at is not a UTC ISO 8601 time`);
    const slot = `${vault_url} ${profile}`;
    if (seen.has(slot)) throw invalid(`${where} repeats vault ${vault_url}, profile ${profile}`);
    seen.add(slot);
    return { vault_url, profile, api_key, key_id, key_name, environments, key_patterns, expires_at, admin, stored_at } as StoredLogin;
  });
}

/** `uid`: the process's, for the chown a directory of root's needs (a lock's errors never are one). */
async function storeProblem(error: unknown, path: string, uid = -1): Promise<unknown> {
  if (error instanceof PrivateDirectoryError) return directoryProblem(error, path, uid);
  if (!(error instanceof PrivateFileError)) {
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') return error;
    // A directory above the store it may not enter (~/.config made by root under sudo without -H)
    // or a file in its way: named, with its fix, where the hint sent the user to the file.
    const blocker = code === 'EACCES' || code === 'ENOTDIR' ? await findBlocker(path) : undefined;
    if (blocker?.kind === 'not-directory') return new CredentialError('RWS_CREDENTIAL_UNREADABLE', `cannot use the stored logins ${path}: ${blocker.path} is not a directory (${code})`, `move ${blocker.path} aside, or point XDG_CONFIG_HOME at a directory of yours`);
    if (blocker !== undefined) {
      const hint = blocker.owner === uid ? `chmod u+x ${blocker.path}` : leftByRoot(blocker, uid) ? leftByRootHint(blocker, uid) : `it is uid ${blocker.owner}'s: run as that user, or point HOME (sudo -H) or XDG_CONFIG_HOME at your own`;
      return new CredentialError('RWS_CREDENTIAL_UNREADABLE', `cannot use the stored logins ${path}: you (uid ${uid}) may not enter ${blocker.path} (${code}: mode ${modeText(blocker.mode)}, owned by uid ${blocker.owner})`, hint);
    }
    return new CredentialError('RWS_CREDENTIAL_UNREADABLE', `cannot use the stored logins ${path} (${code})`, 'check the permissions of the file and its directory');
  }
  if (error.problem.kind === 'not-private') {
    return new CredentialError('RWS_CREDENTIAL_FILE_MODE', `the stored logins ${path} are readable or writable by group or others (mode ${modeText(error.problem.mode)})`, `chmod 600 ${path}, and treat the keys in it as exposed`);
  }
  // Another user's logins (sudo keeping HOME): logout --all, the hint for a broken file, would
  // remove them.
  const hint = error.problem.kind === 'other-owner' ? otherOwnerHint(error.problem.owner, 'XDG_CONFIG_HOME', 'remove it (run-with-secrets logout --all)', 'log in again') : 'remove it (run-with-secrets logout --all) and log in again';
  return new CredentialError('RWS_CREDENTIAL_STORE_INVALID', `refusing the stored logins ${path}: ${error.problem.reason}`, hint);
}

/** Said with the codes the file's own problems have: a mode (FILE_MODE), or a store not ours to use (STORE_INVALID). */
function directoryProblem({ dir, problem }: PrivateDirectoryError, path: string, uid: number): CredentialError {
  const refused = `refusing the stored logins ${path}: their directory ${dir}`;
  if (problem.kind === 'open') {
    return new CredentialError('RWS_CREDENTIAL_FILE_MODE', `${refused} is open to group or others (mode ${modeText(problem.mode)})`, `chmod 700 ${dir}: logins are kept 0600 in a 0700 directory (a login narrows it too)`);
  }
  if (problem.kind === 'not-directory') {
    return new CredentialError('RWS_CREDENTIAL_STORE_INVALID', `${refused} is ${problem.link ? 'a symbolic link, not a directory' : 'not a directory'}`, `rm ${dir} (a link goes without its target), then log in again`);
  }
  // Root's directory in a user's HOME is a sudo without -H: the user may have it back, with the
  // config.yaml it may hold beside the logins. A user's directory read by root is theirs.
  return new CredentialError('RWS_CREDENTIAL_STORE_INVALID', `${refused} is owned by uid ${problem.owner}, not by you (uid ${uid})`, otherOwnerHint(problem.owner, 'XDG_CONFIG_HOME', `chown -R ${uid} ${dir}`, 'run again'));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function sameKeys(value: Record<string, unknown>, keys: readonly string[]): boolean {
  const present = Object.keys(value);
  return present.length === keys.length && keys.every((key) => Object.hasOwn(value, key));
}

function isList(value: unknown, grammar: RegExp): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string' && grammar.test(item));
}

function isDate(value: unknown): value is string {
  return typeof value === 'string' && ISO_DATE.test(value) && !Number.isNaN(Date.parse(value));
}
